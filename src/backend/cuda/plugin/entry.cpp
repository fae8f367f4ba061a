// The entry point of the CUDA backend plugin (libsdgen_cuda.so): the backend's objects plus this
// function, loaded by sd-gen on first use of a GPU (src/backend/cuda_plugin.cpp). The plugin does
// not carry the core library: the core's symbols resolve to the program that loads it.
#include "sdgen/backend.h"

extern "C" __attribute__((visibility("default"))) sdgen::Backend* sdgen_cuda_backend_new() {
  return sdgen::make_cuda_backend().release();
}
