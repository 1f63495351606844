// Definitions shared by the CUDA kernels and the CPU backend: constants of the contract, the
// per-call frame, per-Gaussian preprocessing results and point transforms. (The per-pixel
// pair test is per backend: scalar in common.cuh, 8-lane SIMD in gaussian_renderer/cpp.)
#pragma once

#include <cstddef>
#include <cstdint>

#include "portable.h"
#include "rasterizer.h"

namespace gsr {

constexpr int kTileX = 16;
constexpr int kTileY = 16;
constexpr int kBlock = kTileX * kTileY;

constexpr float kNearZ = 0.2f;
constexpr float kAlphaMin = 1.0f / 255.0f;
constexpr float kAlphaMax = 0.99f;
constexpr float kTMin = 1e-4f;
constexpr float kDilation = 0.3f;

// Scalars derived once per call on the host (float32, as the torch backend's Python scalars).
struct Frame {
  int W, H, tiles_x, tiles_y;
  float focal_x, focal_y;
  float lim_x0, lim_x1, lim_y0, lim_y1;  // clamp of x/z and y/z in the EWA Jacobian
  float box_t;      // min(mult,1) * 2: footprint box factor of ln(255 o)
  float support_t;  // mult * 2: support test factor of ln(255 o)
  float scale_modifier;
  bool antialiasing;  // opacity x sqrt(det(cov2D) / det(cov2D + 0.3 I)) (antialias_math.h)
  const float* view;
  const float* proj;
  const float* campos;
};

inline Frame make_frame(const Camera& cam) {
  Frame f;
  f.W = cam.width;
  f.H = cam.height;
  f.tiles_x = (cam.width + kTileX - 1) / kTileX;
  f.tiles_y = (cam.height + kTileY - 1) / kTileY;
  // Python-scalar arithmetic of the contract happens in double, then meets float32 tensors.
  f.focal_x = float(double(cam.width) / (2.0 * double(cam.tanfovx)));
  f.focal_y = float(double(cam.height) / (2.0 * double(cam.tanfovy)));
  f.lim_x0 = cam.frustum[0];
  f.lim_x1 = cam.frustum[1];
  f.lim_y0 = cam.frustum[2];
  f.lim_y1 = cam.frustum[3];
  f.box_t = float((cam.mult < 1.0f ? double(cam.mult) : 1.0) * 2.0);
  f.support_t = float(double(cam.mult) * 2.0);
  f.scale_modifier = cam.scale_modifier;
  f.antialiasing = cam.antialiasing;
  f.view = cam.viewmatrix;
  f.proj = cam.projmatrix;
  f.campos = cam.campos;
  return f;
}

// Per-Gaussian results of preprocessing.
struct GeomState {
  float4* pos;     // u, v (pixels), opacity, view-space depth
  float4* conic;   // conic a, b, c and the support bound mult * 2 ln(255 o)
  uint2* box;      // pixel box: x0 | x1 << 16, y0 | y1 << 16
  float* rgb;      // SH colour (P,3)
  uint8_t* clamped;  // bit c set: colour channel c was clamped at 0
  uint32_t* tiles_touched;
  uint32_t* offsets;  // inclusive prefix sum of tiles_touched
  void* scan_tmp;
  size_t scan_bytes;
  size_t bytes;  // total size of the carved layout
  static GeomState carve(char* base, int P);
};

GS_HD float3 transform_point(const float* m, float3 p) {
  // Row-vector convention: out_j = sum_i p_i m[4i+j] + m[12+j].
  return make_float3(m[0] * p.x + m[4] * p.y + m[8] * p.z + m[12],
                     m[1] * p.x + m[5] * p.y + m[9] * p.z + m[13],
                     m[2] * p.x + m[6] * p.y + m[10] * p.z + m[14]);
}

GS_HD float4 transform_point4(const float* m, float3 p) {
  return make_float4(m[0] * p.x + m[4] * p.y + m[8] * p.z + m[12],
                     m[1] * p.x + m[5] * p.y + m[9] * p.z + m[13],
                     m[2] * p.x + m[6] * p.y + m[10] * p.z + m[14],
                     m[3] * p.x + m[7] * p.y + m[11] * p.z + m[15]);
}

}  // namespace gsr
