// Public interface of the tile-based Gaussian rasterizer (docs/RASTERIZER.md).
// Plain C++ on purpose: the torch glue includes this header, the CUDA sources implement it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace gsr {

// Grows a caller-owned device buffer to at least `bytes` and returns its address. The caller
// keeps the buffer alive between forward and backward (the torch glue uses uint8 tensors).
using BufferFn = std::function<char*(size_t)>;

struct Camera {
  int width = 0, height = 0;
  float tanfovx = 1.f, tanfovy = 1.f;
  const float* viewmatrix = nullptr;  // device, 16 floats, transposed world->view
  const float* projmatrix = nullptr;  // device, 16 floats, transposed world->clip
  const float* campos = nullptr;      // device, 3 floats
  const float* bg = nullptr;          // device, 3 floats
  float scale_modifier = 1.f;
  float mult = 1.f;                   // FastGS compact-footprint factor
  // EWA Jacobian clamp on x/z and y/z: left, right, top, bottom (the frustum widened by
  // 0.3 tan(fov/2) on each side; asymmetric for an off-centre principal point). The glue
  // always sets it; the default is that of a centred camera with tan(fov/2) = 1.
  float frustum[4] = {-1.3f, 1.3f, -1.3f, 1.3f};
  bool antialiasing = false;          // 2D mip filter (docs/RASTERIZER.md)
};

// Per-Gaussian inputs (device pointers). Exactly one of shs / colors_precomp and one of
// (scales, rotations) / cov3D_precomp is non-null.
struct Gaussians {
  int count = 0;
  const float* means3D = nullptr;        // (P,3)
  const float* opacities = nullptr;      // (P,1)
  const float* shs = nullptr;            // (P,K,3)
  int sh_degree = 0;
  int sh_coeffs = 0;                     // K
  const float* colors_precomp = nullptr; // (P,3)
  const float* scales = nullptr;         // (P,3)
  const float* rotations = nullptr;      // (P,4) w,x,y,z, normalised by the caller
  const float* cov3D_precomp = nullptr;  // (P,6) xx,xy,xz,yy,yz,zz
};

struct ForwardOutputs {
  float* color = nullptr;         // (3,H,W)
  float* depth = nullptr;         // (1,H,W)
  float* alpha = nullptr;         // (1,H,W)
  float* invdepth = nullptr;      // (1,H,W) alpha-blended 1/z
  int* radii = nullptr;           // (P,)
  int* metric_counts = nullptr;   // (P,), zero-filled by the caller; used iff metric_map
};

// Gradient buffers, all zero-filled by the caller.
struct Gradients {
  float* means2D = nullptr;    // (P,4) out: NDC gradient and its absolute (AbsGS) version
  float* conic = nullptr;      // (P,3) scratch
  float* depth = nullptr;      // (P,) scratch: dL/d(view-space z)
  float* opacities = nullptr;  // (P,1) out
  float* colors = nullptr;     // (P,3) out: dL/d(colour); equals dL/dcolors_precomp
  float* means3D = nullptr;    // (P,3) out
  float* cov3D = nullptr;      // (P,6) out (only with cov3D_precomp)
  float* shs = nullptr;        // (P,K,3) out (only with shs)
  float* scales = nullptr;     // (P,3) out (only with scales)
  float* rotations = nullptr;  // (P,4) out (only with rotations)
};

// Renders; returns the number of (Gaussian, tile) pairs. metric_map: (H,W) uint8 or null.
// Throws std::runtime_error on a CUDA error.
int forward(int device, const Camera& cam, const Gaussians& g, const uint8_t* metric_map,
            BufferFn geom_buffer, BufferFn binning_buffer, BufferFn image_buffer,
            const ForwardOutputs& out, bool debug);

// dL_dcolor (3,H,W), dL_ddepth, dL_dalpha, dL_dinvdepth (1,H,W); buffers as left by forward().
void backward(int device, const Camera& cam, const Gaussians& g, int num_rendered,
              char* geom_buffer, char* binning_buffer, char* image_buffer, const int* radii,
              const float* dL_dcolor, const float* dL_ddepth, const float* dL_dalpha,
              const float* dL_dinvdepth, const Gradients& grads, bool debug);

}  // namespace gsr
