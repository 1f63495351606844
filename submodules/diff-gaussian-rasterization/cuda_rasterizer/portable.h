// Host/device portability: the per-Gaussian math compiles with nvcc for the CUDA kernels and
// with a plain C++ compiler for the CPU backend (gaussian_renderer/cpp), so the CPU build
// exercises the very code the GPU runs.
#pragma once

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define GS_HD __host__ __device__ __forceinline__
#else
#include <math.h>

#include <cmath>
#include <cstdint>
#define GS_HD inline

struct float3 { float x, y, z; };
struct float4 { float x, y, z, w; };
struct uint2 { unsigned int x, y; };
inline float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline uint2 make_uint2(unsigned int x, unsigned int y) { return uint2{x, y}; }
namespace gsr {
using std::isfinite;
using std::isnan;
}  // namespace gsr
#endif
