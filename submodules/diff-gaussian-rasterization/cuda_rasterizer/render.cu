// Per-tile stage: front-to-back blending of each 16x16 tile's depth-sorted Gaussians (forward)
// and the back-to-front replay that yields per-Gaussian gradients (backward).
#include "common.cuh"

namespace gsr {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(kFullMask, v, off);
  return v;
}

__global__ void __launch_bounds__(kBlock)
render_kernel(Frame f, const uint2* __restrict__ ranges, const uint32_t* __restrict__ ids,
              const float4* __restrict__ pos, const float4* __restrict__ conic,
              const uint2* __restrict__ box, const float* __restrict__ colors,
              const float* __restrict__ bg, const uint8_t* __restrict__ metric_map,
              ImageState img, ForwardOutputs out) {
  const int rank = threadIdx.y * kTileX + threadIdx.x;
  const int lane = rank & 31;
  const int px = blockIdx.x * kTileX + threadIdx.x;
  const int py = blockIdx.y * kTileY + threadIdx.y;
  const bool inside = px < f.W && py < f.H;
  const int pix = py * f.W + px;
  const uint2 range = ranges[blockIdx.y * f.tiles_x + blockIdx.x];
  const int total = int(range.y - range.x);
  const bool hot = inside && metric_map && metric_map[pix];

  __shared__ uint32_t s_id[kBlock];
  __shared__ float4 s_pos[kBlock];
  __shared__ float4 s_conic[kBlock];
  __shared__ uint2 s_box[kBlock];

  bool done = !inside;
  float T = 1.0f, C0 = 0.f, C1 = 0.f, C2 = 0.f, D = 0.f, ID = 0.f;
  uint32_t seen = 0, last = 0;

  for (int base = 0; base < total; base += kBlock) {
    // Everyone has stopped: the rest of the list cannot change this tile.
    if (__syncthreads_count(done) == kBlock) break;
    const int k = base + rank;
    if (k < total) {
      const uint32_t id = ids[range.x + k];
      s_id[rank] = id;
      s_pos[rank] = pos[id];
      s_conic[rank] = conic[id];
      s_box[rank] = box[id];
    }
    __syncthreads();
    const int n = min(kBlock, total - base);
    for (int j = 0; j < n; ++j) {
      if (__all_sync(kFullMask, done)) break;
      bool composited = false;
      if (!done) {
        ++seen;
        float dx, dy, G, alpha;
        if (eval_pair(s_pos[j], s_conic[j], s_box[j], px, py, dx, dy, G, alpha)) {
          const float test_T = T * (1.0f - alpha);
          if (test_T < kTMin) {
            done = true;  // this Gaussian and all later ones are not composited
          } else {
            const float w = alpha * T;
            const float* c = colors + 3 * s_id[j];
            C0 += c[0] * w;
            C1 += c[1] * w;
            C2 += c[2] * w;
            D += s_pos[j].w * w;
            ID += w / s_pos[j].w;
            T = test_T;
            last = seen;
            composited = true;
          }
        }
      }
      if (metric_map) {
        const unsigned hits = __ballot_sync(kFullMask, composited && hot);
        if (hits && lane == 0) atomicAdd(out.metric_counts + s_id[j], int(__popc(hits)));
      }
    }
  }

  if (inside) {
    const int HW = f.W * f.H;
    img.final_T[pix] = T;
    img.n_contrib[pix] = last;
    out.color[pix] = C0 + T * bg[0];
    out.color[HW + pix] = C1 + T * bg[1];
    out.color[2 * HW + pix] = C2 + T * bg[2];
    out.depth[pix] = D;
    out.invdepth[pix] = ID;
    out.alpha[pix] = 1.0f - T;
  }
}

__global__ void __launch_bounds__(kBlock)
render_backward_kernel(Frame f, const uint2* __restrict__ ranges, const uint32_t* __restrict__ ids,
                       const float4* __restrict__ pos, const float4* __restrict__ conic,
                       const uint2* __restrict__ box, const float* __restrict__ colors,
                       const float* __restrict__ bg, ImageState img,
                       const float* __restrict__ dL_dcolor, const float* __restrict__ dL_ddepth,
                       const float* __restrict__ dL_dalpha,
                       const float* __restrict__ dL_dinvdepth, Gradients d) {
  const int rank = threadIdx.y * kTileX + threadIdx.x;
  const int lane = rank & 31;
  const int px = blockIdx.x * kTileX + threadIdx.x;
  const int py = blockIdx.y * kTileY + threadIdx.y;
  const bool inside = px < f.W && py < f.H;
  const int pix = py * f.W + px;
  const int HW = f.W * f.H;
  const uint2 range = ranges[blockIdx.y * f.tiles_x + blockIdx.x];

  __shared__ uint32_t s_id[kBlock];
  __shared__ float4 s_pos[kBlock];
  __shared__ float4 s_conic[kBlock];
  __shared__ uint2 s_box[kBlock];
  __shared__ float s_col[3 * kBlock];
  __shared__ int s_last;

  // Only the prefix up to the tile's last composited entry matters.
  const int last = inside ? int(img.n_contrib[pix]) : 0;
  if (rank == 0) s_last = 0;
  __syncthreads();
  if (last > 0) atomicMax(&s_last, last);
  __syncthreads();
  const int total = s_last;

  float T = inside ? img.final_T[pix] : 1.0f;
  float gc0 = 0.f, gc1 = 0.f, gc2 = 0.f, gd = 0.f, ga = 0.f, gi = 0.f;
  if (inside) {
    gc0 = dL_dcolor[pix];
    gc1 = dL_dcolor[HW + pix];
    gc2 = dL_dcolor[2 * HW + pix];
    gd = dL_ddepth[pix];
    ga = dL_dalpha[pix];
    gi = dL_dinvdepth[pix];
  }
  // Gradient mass behind the current Gaussian: later Gaussians, background and alpha output.
  float tail = T * (gc0 * bg[0] + gc1 * bg[1] + gc2 * bg[2] - ga);

  for (int base = 0; base < total; base += kBlock) {
    __syncthreads();
    const int k = total - 1 - base - rank;  // list position, walking back to front
    if (k >= 0) {
      const uint32_t id = ids[range.x + k];
      s_id[rank] = id;
      s_pos[rank] = pos[id];
      s_conic[rank] = conic[id];
      s_box[rank] = box[id];
      s_col[3 * rank] = colors[3 * id];
      s_col[3 * rank + 1] = colors[3 * id + 1];
      s_col[3 * rank + 2] = colors[3 * id + 2];
    }
    __syncthreads();
    const int n = min(kBlock, total - base);
    for (int j = 0; j < n; ++j) {
      const int position = total - base - j;  // 1-based, as n_contrib
      float v[12] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      bool active = false;
      float dx, dy, G, alpha;
      if (position <= last &&
          eval_pair(s_pos[j], s_conic[j], s_box[j], px, py, dx, dy, G, alpha)) {
        active = true;
        const float4 p = s_pos[j];
        const float4 cn = s_conic[j];
        const float one_minus = 1.0f - alpha;
        T = T / one_minus;  // transmittance in front of this Gaussian
        const float w = alpha * T;
        const float inv_z = 1.0f / p.w;
        const float val = s_col[3 * j] * gc0 + s_col[3 * j + 1] * gc1 + s_col[3 * j + 2] * gc2 +
                          p.w * gd + inv_z * gi;
        const float g_alpha = T * val - tail / one_minus;
        tail += w * val;
        // Zero gradient through alpha where the 0.99 clamp is active.
        const float g_a = (p.z * G < kAlphaMax) ? g_alpha : 0.f;
        const float g_pow = g_a * p.z * G;
        const float gu = -g_pow * (cn.x * dx + cn.y * dy);
        const float gv = -g_pow * (cn.z * dy + cn.y * dx);
        v[0] = gu;
        v[1] = gv;
        v[2] = fabsf(gu);
        v[3] = fabsf(gv);
        v[4] = -0.5f * g_pow * dx * dx;
        v[5] = -g_pow * dx * dy;
        v[6] = -0.5f * g_pow * dy * dy;
        v[7] = g_a * G;
        v[8] = w * gc0;
        v[9] = w * gc1;
        v[10] = w * gc2;
        v[11] = w * (gd - gi * inv_z * inv_z);  // dL/dz: depth and inverse depth
      }
      // One atomic per value per warp instead of one per pixel.
      if (__any_sync(kFullMask, active)) {
#pragma unroll
        for (int c = 0; c < 12; ++c) v[c] = warp_sum(v[c]);
        if (lane == 0) {
          const uint32_t id = s_id[j];
          atomicAdd(d.means2D + 4 * id, v[0]);
          atomicAdd(d.means2D + 4 * id + 1, v[1]);
          atomicAdd(d.means2D + 4 * id + 2, v[2]);
          atomicAdd(d.means2D + 4 * id + 3, v[3]);
          atomicAdd(d.conic + 3 * id, v[4]);
          atomicAdd(d.conic + 3 * id + 1, v[5]);
          atomicAdd(d.conic + 3 * id + 2, v[6]);
          atomicAdd(d.opacities + id, v[7]);
          atomicAdd(d.colors + 3 * id, v[8]);
          atomicAdd(d.colors + 3 * id + 1, v[9]);
          atomicAdd(d.colors + 3 * id + 2, v[10]);
          atomicAdd(d.depth + id, v[11]);
        }
      }
    }
  }
}

}  // namespace

void launch_render(const Frame& f, const uint2* ranges, const uint32_t* ids, const GeomState& geom,
                   const float* colors, const float* bg, const uint8_t* metric_map,
                   const ImageState& img, const ForwardOutputs& out) {
  const dim3 grid(f.tiles_x, f.tiles_y), block(kTileX, kTileY);
  render_kernel<<<grid, block>>>(f, ranges, ids, geom.pos, geom.conic, geom.box, colors, bg,
                                 metric_map, img, out);
}

void launch_render_backward(const Frame& f, const uint2* ranges, const uint32_t* ids,
                            const GeomState& geom, const float* colors, const float* bg,
                            const ImageState& img, const float* dL_dcolor, const float* dL_ddepth,
                            const float* dL_dalpha, const float* dL_dinvdepth,
                            const Gradients& grads) {
  const dim3 grid(f.tiles_x, f.tiles_y), block(kTileX, kTileY);
  render_backward_kernel<<<grid, block>>>(f, ranges, ids, geom.pos, geom.conic, geom.box, colors,
                                          bg, img, dL_dcolor, dL_ddepth, dL_dalpha,
                                          dL_dinvdepth, grads);
}

}  // namespace gsr
