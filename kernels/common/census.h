// Annotations for the census of the emulated build (tests/simt/simt_census.h): what the CUDA
// backend's host code tells it beyond the calls themselves. Safe to include anywhere; in the real
// CUDA build (SDGEN_SIMT undefined) everything here compiles to nothing.
#pragma once
#if defined(SDGEN_SIMT)
#include "simt_census.h"
#endif

namespace sdgen {
namespace cuda {

// While alive, library calls count as `cls` FLOPs ("attention" for the GEMMs of an unfused
// attention; GEMMs count as "gemm" and convolutions as "conv" otherwise).
class CensusFlopClass {
 public:
  explicit CensusFlopClass(const char* cls)
#if defined(SDGEN_SIMT)
      : guard_(cls)
#endif
  {
    (void)cls;
  }

 private:
#if defined(SDGEN_SIMT)
  simt::census::FlopClass guard_;
#endif
};

}  // namespace cuda
}  // namespace sdgen
