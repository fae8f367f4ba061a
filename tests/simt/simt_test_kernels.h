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
// out[(4 * op + m) * 32 + lane] = the lane each lane reads by __shfl_{xor,up,down,idx}_sync(full
// mask, lane id, arg m, width 8), op 0..3, for the four args {1, 3, 8, 17}.
void shuffle_width_sources(int* out);
// C[M,N] = A[M,K] · B[K,N], row-major, 16x16 shared-memory tiles, any sizes.
void tiled_gemm(const float* A, const float* B, float* C, int M, int N, int K);
// C[M,N] = A[M,K] · W[N,K]ᵀ on tensor cores (mma m16n8k16: one instruction, or sm_75's two
// m16n8k8 under simt::set_emulated_arch(75)); M%16 == N%8 == K%16 == 0.
void mma_gemm(const __half* A, const __half* W, float* C, int M, int N, int K);
// D[16,8] = A[16,8] · W[8,8]ᵀ + C[16,8] by one mma m16n8k8 (all row-major).
void mma_k8(const __half* A, const __half* W, const float* C, float* D);
// D[16,8] = A[16,16] · W[8,16]ᵀ by two m16n8k8, with sm_75's split of the m16n8k16 fragments or,
// with `wrong_split`, a plausible wrong one.
void mma_split(const __half* A, const __half* W, float* D, bool wrong_split);

// y[i] = x[i+1] - x[i-1] within each block of 64, through static (or dynamic) shared memory;
// `barrier` false omits the __syncthreads between the shared write and the neighbours' reads.
void neighbour_exchange(const float* x, float* y, int blocks, bool barrier,
                        bool dynamic_shared = false);
// y[b*64 + t] = s[t] of a static __shared__ float s[64] that only block `writer` fills (s[t] = t).
void static_shared_reread(float* y, int blocks, int writer);

// Faulty kernels, one per fault the emulator must catch.
void fault_partial_barrier();       // threads >= 200 return before a __syncthreads
void fault_warp_exited_lanes();     // lanes >= 16 return, then a full-mask shuffle
void fault_shared_oob(int index);   // writes dynamic shared element `index` of 64
void fault_launch(int threads, size_t shared_bytes);  // a trivial kernel with this launch shape
void fault_divergent_barrier();     // even and odd warps wait at different __syncthreads
void opt_in_shared(int bytes);      // cudaFuncSetAttribute, then launch with that much

}  // namespace simt_test
