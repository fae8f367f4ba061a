// Host launchers for the emulator's own test kernels (simt_test_kernels.cu). Pointers are device
// memory (cudaMalloc); every launcher runs one kernel through SDGEN_LAUNCH.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace simt_test {

// out[b] = sum of x[b*256 .. b*256+255] (tree reduction in shared memory with __syncthreads).
void block_reduce(const float* x, float* out, int blocks);
// out[0] += sum of x[0..n): warp shuffles, then one atomicAdd per warp.
void shuffle_reduce(const float* x, float* out, int n);
// Per warp of 32 values: inclusive prefix sum (shfl_up), ballot of x > 0, any, all.
void warp_scan_votes(const float* x, float* scan, unsigned* ballot, int* any, int* all, int warps);
// C[M,N] = A[M,K] · B[K,N], row-major, 16x16 shared-memory tiles, any sizes.
void tiled_gemm(const float* A, const float* B, float* C, int M, int N, int K);
// C[M,N] = A[M,K] · W[N,K]ᵀ on tensor cores (mma m16n8k16); M%16 == N%8 == K%16 == 0.
void mma_gemm(const __half* A, const __half* W, float* C, int M, int N, int K);

// y[i] = x[i+1] - x[i-1] within each block of 64, through shared memory; `barrier` false omits the
// __syncthreads between the shared write and the neighbours' reads.
void neighbour_exchange(const float* x, float* y, int blocks, bool barrier);

// Faulty kernels, one per fault the emulator must catch.
void fault_partial_barrier();       // threads >= 200 return before a __syncthreads
void fault_warp_exited_lanes();     // lanes >= 16 return, then a full-mask shuffle
void fault_shared_oob(int index);   // writes dynamic shared element `index` of 64
void fault_launch(int threads, size_t shared_bytes);  // a trivial kernel with this launch shape
void fault_divergent_barrier();     // even and odd warps wait at different __syncthreads
void opt_in_shared(int bytes);      // cudaFuncSetAttribute, then launch with that much

}  // namespace simt_test
