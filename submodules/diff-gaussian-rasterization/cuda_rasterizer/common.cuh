// CUDA-only internals: buffer carving, per-pair and per-pixel state, the pair test, kernel
// launchers. What the CPU backend shares (constants, frame, per-Gaussian state) is in geometry.h.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

#include "geometry.h"

namespace gsr {

constexpr unsigned kFullMask = 0xffffffffu;

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
GS_HD bool eval_pair(const float4& pos, const float4& con, const uint2& box, int px, int py,
                     float& dx, float& dy, float& G, float& alpha) {
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
                            const float* dL_dalpha, const float* dL_dinvdepth,
                            const Gradients& grads);

}  // namespace gsr
