// Per-Gaussian stage kernels; the math is in preprocess_math.h (shared with the CPU backend).
#include "common.cuh"
#include "preprocess_math.h"

namespace gsr {
namespace {

__global__ void preprocess_kernel(Frame f, Gaussians g, GeomState geom, int* radii) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < g.count) preprocess_one(i, f, g, geom, radii);
}

__global__ void preprocess_backward_kernel(Frame f, Gaussians g, GeomState geom, const int* radii,
                                           Gradients d) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < g.count) preprocess_backward_one(i, f, g, geom, radii, d);
}

}  // namespace

void launch_preprocess(const Frame& f, const Gaussians& g, const GeomState& geom, int* radii) {
  if (g.count == 0) return;
  const int threads = 256;
  preprocess_kernel<<<(g.count + threads - 1) / threads, threads>>>(f, g, geom, radii);
}

void launch_preprocess_backward(const Frame& f, const Gaussians& g, const GeomState& geom,
                                const int* radii, const Gradients& grads) {
  if (g.count == 0) return;
  const int threads = 256;
  preprocess_backward_kernel<<<(g.count + threads - 1) / threads, threads>>>(f, g, geom, radii,
                                                                             grads);
}

}  // namespace gsr
