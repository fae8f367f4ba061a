# The CUDA backend's targets, included from tests/simt/CMakeLists.txt (and meant to be included
# from the top-level CMakeLists.txt as well):
#   sdgen_cuda      (SDGEN_WITH_CUDA only) kernels/*.cu by nvcc for CMAKE_CUDA_ARCHITECTURES +
#                   src/backend/cuda/*.cpp by the host compiler, against the real CUDA runtime.
#   sdgen_cuda_emu  the SAME sources compiled as C++ against the SIMT emulator (simt_runtime),
#                   built whenever the CUDA headers and Boost.Context are present; no GPU needed.
#   sdgen_ptxas_reports  (SDGEN_WITH_CUDA only) every kernel file once more as a cubin per
#                   architecture, with ptxas's resource report kept in <build>/ptxas/ for the
#                   static checks of tests/kernel_static (spills, tensor-core instructions).
# Both define SDGEN_CUDA_BACKEND_TU: src/backend/cuda/*.cpp compile to nothing without it, so a
# target that lists them by mistake gets no second copy of the backend.
get_filename_component(SDGEN_ROOT "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
file(GLOB SDGEN_KERNEL_SOURCES CONFIGURE_DEPENDS ${SDGEN_ROOT}/kernels/*.cu)
file(GLOB SDGEN_CUDA_HOST_SOURCES CONFIGURE_DEPENDS ${SDGEN_ROOT}/src/backend/cuda/*.cpp)
# cuDNN (convolutions) is optional: without cudnn.h the backend's conv2d reports that it is missing.
find_package(CUDAToolkit QUIET)
find_path(SDGEN_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
# Device-code flags of sdgen_cuda, shared with the ptxas reports so that they compile what ships.
set(SDGEN_NVCC_FLAGS --expt-relaxed-constexpr)

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
  # Position-independent: the same objects also make the plugin (sdgen_add_cuda_plugin).
  set_target_properties(sdgen_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_include_directories(sdgen_cuda PUBLIC ${SDGEN_ROOT}/kernels)
  target_compile_definitions(sdgen_cuda PUBLIC SDGEN_CUDA_BACKEND_TU=1)
  target_compile_options(sdgen_cuda PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${SDGEN_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CUDA>:${SDGEN_NVCC_FLAGS} -Xcompiler=-Wall>)
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

# The plugin libsdgen_cuda.so, beside sd-gen: sdgen_cuda's objects and the entry point, linked
# with the CUDA libraries but not with the core library (sdgen), whose symbols the program that
# opens it exports (sd-gen: ENABLE_EXPORTS, the whole core linked in). Call after
# sdgen_add_cuda_library.
function(sdgen_add_cuda_plugin)
  add_library(sdgen_cuda_plugin MODULE ${SDGEN_ROOT}/src/backend/cuda/plugin/entry.cpp $<TARGET_OBJECTS:sdgen_cuda>)
  set_target_properties(sdgen_cuda_plugin PROPERTIES OUTPUT_NAME sdgen_cuda PREFIX lib
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  target_include_directories(sdgen_cuda_plugin PRIVATE ${SDGEN_ROOT}/include)
  target_link_libraries(sdgen_cuda_plugin PRIVATE CUDA::cudart CUDA::cublas CUDA::cublasLt)
  if(SDGEN_CUDNN_LIBRARY AND SDGEN_CUDNN_INCLUDE_DIR)
    target_link_libraries(sdgen_cuda_plugin PRIVATE ${SDGEN_CUDNN_LIBRARY})
  endif()
endfunction()

# <build>/ptxas/<file>.sm_<arch>.txt (ptxas -v, demangled) and .cubin for every kernels/*.cu and
# every real architecture of CMAKE_CUDA_ARCHITECTURES, plus sm_80 and sm_90, which the SASS check
# needs whatever the list. Same sources, definitions, include paths and device flags as
# sdgen_cuda (call after sdgen_add_cuda_library), so the report is that of the code that ships:
# the template instantiations in a file are the ones its launchers use. Part of ALL.
function(sdgen_add_ptxas_reports)
  find_program(SDGEN_CXXFILT c++filt REQUIRED)
  set(archs 80 90)
  foreach(a ${CMAKE_CUDA_ARCHITECTURES})
    # "75-real" and "90" carry SASS; "-virtual" is PTX only and has no ptxas report.
    if(a MATCHES "^([0-9]+[af]?)(-real)?$")
      list(APPEND archs ${CMAKE_MATCH_1})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES archs)
  list(SORT archs)
  set(SDGEN_PTXAS_ARCHS ${archs} CACHE INTERNAL "architectures of the ptxas reports")
  set(dir ${CMAKE_BINARY_DIR}/ptxas)
  file(MAKE_DIRECTORY ${dir})
  # Any kernel header may change any kernel's code: depend on all of them (a header edit
  # recompiles sdgen_cuda's kernels as well, so this adds little).
  file(GLOB_RECURSE headers CONFIGURE_DEPENDS ${SDGEN_ROOT}/kernels/*.h ${SDGEN_ROOT}/kernels/*.cuh
    ${SDGEN_ROOT}/include/*.h)
  # The build type's flags too: -DNDEBUG decides whether device-side asserts are compiled.
  string(TOUPPER "${CMAKE_BUILD_TYPE}" config)
  separate_arguments(user_flags NATIVE_COMMAND "${CMAKE_CUDA_FLAGS} ${CMAKE_CUDA_FLAGS_${config}}")
  # Without the compiler's own include folders, which CMake leaves out of sdgen_cuda's compile too
  # (an explicit -I/usr/include would reorder the system headers).
  set(incs "$<REMOVE_DUPLICATES:$<FILTER:$<TARGET_PROPERTY:sdgen_cuda,INCLUDE_DIRECTORIES>,EXCLUDE,^/usr/include/?$>>")
  set(defs "$<TARGET_PROPERTY:sdgen_cuda,COMPILE_DEFINITIONS>")
  set(script ${SDGEN_ROOT}/src/backend/cuda/ptxas_report.sh)
  set(outputs)
  foreach(cu ${SDGEN_KERNEL_SOURCES})
    get_filename_component(name ${cu} NAME_WE)
    foreach(arch ${archs})
      set(out ${dir}/${name}.sm_${arch})
      add_custom_command(OUTPUT ${out}.txt ${out}.cubin
        COMMAND bash ${script} ${out} ${arch} ${SDGEN_CXXFILT} ${CMAKE_CUDA_COMPILER}
          -std=c++17 ${SDGEN_NVCC_FLAGS} ${user_flags} "$<$<BOOL:${incs}>:-I$<JOIN:${incs},;-I>>"
          "$<$<BOOL:${defs}>:-D$<JOIN:${defs},;-D>>" ${cu}
        DEPENDS ${cu} ${headers} ${script}
        COMMENT "ptxas -v: ${name}.cu for sm_${arch}"
        COMMAND_EXPAND_LISTS VERBATIM)
      list(APPEND outputs ${out}.txt)
    endforeach()
  endforeach()
  add_custom_target(sdgen_ptxas_reports ALL DEPENDS ${outputs})
endfunction()
