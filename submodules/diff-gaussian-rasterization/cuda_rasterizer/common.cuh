// Internal definitions shared by the rasterizer's CUDA sources: constants of the contract,
// per-Gaussian / per-pair / per-pixel state carved from caller-owned buffers, small math.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

#include "rasterizer.h"

namespace gsr {

constexpr int kTileX = 16;
constexpr int kTileY = 16;
constexpr int kBlock = kTileX * kTileY;
constexpr unsigned kFullMask = 0xffffffffu;

constexpr float kNearZ = 0.2f;
constexpr float kAlphaMin = 1.0f / 255.0f;
constexpr float kAlphaMax = 0.99f;
constexpr float kTMin = 1e-4f;
constexpr float kDilation = 0.3f;
constexpr float kFrustumSlack = 1.3f;

// Scalars derived once per call on the host (float32, as the torch backend's Python scalars).
struct Frame {
  int W, H, tiles_x, tiles_y;
  float focal_x, focal_y, limx, limy;
  float box_t;      // min(mult,1) * 2: footprint box factor of ln(255 o)
  float support_t;  // mult * 2: support test factor of ln(255 o)
  float scale_modifier;
  const float* view;
  const float* proj;
  const float* campos;
};

Frame make_frame(const Camera& cam);

// Bump allocator over a buffer; with base == nullptr it only measures.
struct Carver {
  char* p;
  template <typename T>
  T* take(size_t n) {
    uintptr_t v = (reinterpret_cast<uintptr_t>(p) + 127) & ~uintptr_t(127);
    p = reinterpret_cast<char*>(v + n * sizeof(T));
    return reinterpret_cast<T*>(v);
  }
  size_t used() const { return reinterpret_cast<size_t>(p) + 128; }
};

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

// Per (Gaussian, tile) pair.
struct BinningState {
  uint64_t* keys;
  uint64_t* keys_sorted;
  uint32_t* ids;
  uint32_t* ids_sorted;
  void* sort_tmp;
  size_t sort_bytes;
  size_t bytes;
  static BinningState carve(char* base, int R);
};

// Per tile and per pixel.
struct ImageState {
  uint2* ranges;       // [start, end) into the sorted pair list, per tile
  float* final_T;      // transmittance after the last composited Gaussian
  uint32_t* n_contrib; // list position (1-based) of the last composited Gaussian, 0 if none
  size_t bytes;
  static ImageState carve(char* base, int pixels, int tiles);
};

// Support and alpha test of one (pixel, Gaussian) pair, shared by forward and backward so both
// see the same set. Returns false when the pair is skipped.
__host__ __device__ __forceinline__ bool eval_pair(const float4& pos, const float4& con,
                                                   const uint2& box, int px, int py, float& dx,
                                                   float& dy, float& G, float& alpha) {
  const int x0 = box.x & 0xffff, x1 = box.x >> 16, y0 = box.y & 0xffff, y1 = box.y >> 16;
  if (px < x0 || px > x1 || py < y0 || py > y1) return false;
  dx = pos.x - float(px);
  dy = pos.y - float(py);
  const float q = con.x * dx * dx + 2.0f * con.y * dx * dy + con.z * dy * dy;
  if (!(q >= 0.0f && q <= con.w)) return false;
  G = expf(-0.5f * q);
  alpha = fminf(kAlphaMax, pos.z * G);
  return alpha >= kAlphaMin;
}

__host__ __device__ __forceinline__ float3 transform_point(const float* m, float3 p) {
  // Row-vector convention: out_j = sum_i p_i m[4i+j] + m[12+j].
  return make_float3(m[0] * p.x + m[4] * p.y + m[8] * p.z + m[12],
                     m[1] * p.x + m[5] * p.y + m[9] * p.z + m[13],
                     m[2] * p.x + m[6] * p.y + m[10] * p.z + m[14]);
}

__host__ __device__ __forceinline__ float4 transform_point4(const float* m, float3 p) {
  return make_float4(m[0] * p.x + m[4] * p.y + m[8] * p.z + m[12],
                     m[1] * p.x + m[5] * p.y + m[9] * p.z + m[13],
                     m[2] * p.x + m[6] * p.y + m[10] * p.z + m[14],
                     m[3] * p.x + m[7] * p.y + m[11] * p.z + m[15]);
}

void check_cuda(const char* where, bool sync);

// Kernel launchers (preprocess.cu, render.cu).
void launch_preprocess(const Frame& f, const Gaussians& g, const GeomState& geom, int* radii);
void launch_preprocess_backward(const Frame& f, const Gaussians& g, const GeomState& geom,
                                const int* radii, const Gradients& grads);
void launch_render(const Frame& f, const uint2* ranges, const uint32_t* ids, const GeomState& geom,
                   const float* colors, const float* bg, const uint8_t* metric_map,
                   const ImageState& img, const ForwardOutputs& out);
void launch_render_backward(const Frame& f, const uint2* ranges, const uint32_t* ids,
                            const GeomState& geom, const float* colors, const float* bg,
                            const ImageState& img, const float* dL_dcolor, const float* dL_ddepth,
                            const float* dL_dalpha, const Gradients& grads);

}  // namespace gsr
