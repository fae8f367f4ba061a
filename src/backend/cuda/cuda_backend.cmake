# The CUDA backend's targets, included from tests/simt/CMakeLists.txt (and meant to be included
# from the top-level CMakeLists.txt as well):
#   sdgen_cuda      (SDGEN_WITH_CUDA only) kernels/*.cu by nvcc for CMAKE_CUDA_ARCHITECTURES +
#                   src/backend/cuda/*.cpp by the host compiler, against the real CUDA runtime.
#   sdgen_cuda_emu  the SAME sources compiled as C++ against the SIMT emulator (simt_runtime),
#                   built whenever the CUDA headers and Boost.Context are present; no GPU needed.
# Both define SDGEN_CUDA_BACKEND_TU: the library's recursive glob of src/backend/ also picks up
# src/backend/cuda/*.cpp, and those files compile to nothing without it.
get_filename_component(SDGEN_ROOT "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
file(GLOB SDGEN_KERNEL_SOURCES CONFIGURE_DEPENDS ${SDGEN_ROOT}/kernels/*.cu)
file(GLOB SDGEN_CUDA_HOST_SOURCES CONFIGURE_DEPENDS ${SDGEN_ROOT}/src/backend/cuda/*.cpp)
# cuDNN (convolutions) is optional: without cudnn.h the backend's conv2d reports that it is missing.
find_package(CUDAToolkit QUIET)
find_path(SDGEN_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS})

# Compiles `cu_files` as C++ by including each from a generated .cpp wrapper (a LANGUAGE source
# property would be per directory and clash with the real target's nvcc compile of the same file).
function(sdgen_emulated_sources out_var)
  set(out)
  foreach(cu ${ARGN})
    get_filename_component(name ${cu} NAME_WE)
    set(wrapper ${CMAKE_CURRENT_BINARY_DIR}/emulated/${name}.cu.cpp)
    file(CONFIGURE OUTPUT ${wrapper} CONTENT "// Generated: ${cu} compiled by the host compiler for the SIMT emulator.\n#include \"${cu}\"\n")
    list(APPEND out ${wrapper})
  endforeach()
  set(${out_var} ${out} PARENT_SCOPE)
endfunction()

function(sdgen_add_cuda_emu_library simt_target)
  sdgen_emulated_sources(emu_kernels ${SDGEN_KERNEL_SOURCES})
  add_library(sdgen_cuda_emu STATIC ${emu_kernels} ${SDGEN_CUDA_HOST_SOURCES})
  target_include_directories(sdgen_cuda_emu PUBLIC ${SDGEN_ROOT}/kernels)
  target_compile_definitions(sdgen_cuda_emu PUBLIC SDGEN_CUDA_BACKEND_TU=1 SDGEN_SIMT=1
    SDGEN_HAVE_CUDNN=$<BOOL:${SDGEN_CUDNN_INCLUDE_DIR}>)
  target_compile_options(sdgen_cuda_emu PRIVATE ${SDGEN_WARNINGS})
  target_link_libraries(sdgen_cuda_emu PUBLIC sdgen ${simt_target})
endfunction()

function(sdgen_add_cuda_library)
  find_package(CUDAToolkit REQUIRED)
  add_library(sdgen_cuda STATIC ${SDGEN_KERNEL_SOURCES} ${SDGEN_CUDA_HOST_SOURCES})
  target_include_directories(sdgen_cuda PUBLIC ${SDGEN_ROOT}/kernels)
  target_compile_definitions(sdgen_cuda PUBLIC SDGEN_CUDA_BACKEND_TU=1)
  target_compile_options(sdgen_cuda PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${SDGEN_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-Wall>)
  target_link_libraries(sdgen_cuda PUBLIC sdgen CUDA::cudart CUDA::cublas CUDA::cublasLt)
  find_library(SDGEN_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(SDGEN_CUDNN_INCLUDE_DIR AND SDGEN_CUDNN_LIBRARY)
    target_include_directories(sdgen_cuda PUBLIC ${SDGEN_CUDNN_INCLUDE_DIR})
    target_compile_definitions(sdgen_cuda PUBLIC SDGEN_HAVE_CUDNN=1)
    target_link_libraries(sdgen_cuda PUBLIC ${SDGEN_CUDNN_LIBRARY})
  else()
    target_compile_definitions(sdgen_cuda PUBLIC SDGEN_HAVE_CUDNN=0)
    message(STATUS "sd-gen: cuDNN not found; the CUDA backend's conv2d will be unavailable")
  endif()
endfunction()
