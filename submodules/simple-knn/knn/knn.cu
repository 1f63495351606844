// Exact 3-NN on a uniform grid: counting sort of the points by cell, then each point scans
// shells of cells around its own until no unscanned point can beat its third-best distance.
#include <cub/device/device_scan.cuh>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "knn.h"

namespace sknn {
namespace {

struct Grid {
  float3 lo;
  float h, inv_h;
  int3 dims;
};

void check(const char* where) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("simple_knn: CUDA error in ") + where + ": " +
                             cudaGetErrorString(err));
}

// Cell size so that about n/2 cells span the box; flat or linear clouds get fewer dimensions.
Grid make_grid(int n, const float lo[3], const float hi[3]) {
  Grid g;
  g.lo = make_float3(lo[0], lo[1], lo[2]);
  double e[3], emax = 0.0;
  for (int k = 0; k < 3; ++k) {
    e[k] = std::isfinite(hi[k] - lo[k]) ? std::fmax(0.0, double(hi[k]) - double(lo[k])) : 0.0;
    emax = std::fmax(emax, e[k]);
  }
  const double target = std::fmax(1.0, 0.5 * n);
  double h = 1.0;
  if (emax > 0.0) {
    auto cells = [&](double hh) {
      double c = 1.0;
      for (int k = 0; k < 3; ++k) c *= std::fmax(1.0, e[k] / hh);
      return c;
    };
    double a = emax / target, b = emax;  // cells(a) >= target >= cells(b)
    for (int it = 0; it < 60; ++it) {
      const double m = std::sqrt(a * b);
      (cells(m) >= target ? a : b) = m;
    }
    h = b;
  }
  g.h = float(h);
  g.inv_h = float(1.0 / h);
  int d[3];
  for (int k = 0; k < 3; ++k) d[k] = int(std::fmin(e[k] / h, 1 << 20)) + 1;
  g.dims = make_int3(d[0], d[1], d[2]);
  return g;
}

__device__ __forceinline__ int3 cell_of(const Grid& g, float3 p) {
  // fmaxf drops NaN, so non-finite points land in a valid cell.
  const float fx = fminf(fmaxf((p.x - g.lo.x) * g.inv_h, 0.f), float(g.dims.x - 1));
  const float fy = fminf(fmaxf((p.y - g.lo.y) * g.inv_h, 0.f), float(g.dims.y - 1));
  const float fz = fminf(fmaxf((p.z - g.lo.z) * g.inv_h, 0.f), float(g.dims.z - 1));
  return make_int3(int(fx), int(fy), int(fz));
}

__device__ __forceinline__ uint32_t cell_id(const Grid& g, int3 c) {
  return (uint32_t(c.z) * uint32_t(g.dims.y) + uint32_t(c.y)) * uint32_t(g.dims.x) + uint32_t(c.x);
}

__global__ void count_kernel(int n, Grid g, const float* __restrict__ pts, uint32_t* cell,
                             uint32_t* count) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float3 p = make_float3(pts[3 * i], pts[3 * i + 1], pts[3 * i + 2]);
  const uint32_t c = cell_id(g, cell_of(g, p));
  cell[i] = c;
  atomicAdd(count + c, 1u);
}

__global__ void scatter_kernel(int n, const float* __restrict__ pts,
                               const uint32_t* __restrict__ cell,
                               const uint32_t* __restrict__ begin, uint32_t* fill,
                               float4* sorted) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint32_t c = cell[i];
  const uint32_t k = begin[c] + atomicAdd(fill + c, 1u);
  sorted[k] = make_float4(pts[3 * i], pts[3 * i + 1], pts[3 * i + 2], __int_as_float(i));
}

__device__ __forceinline__ void scan_range(const float4* __restrict__ sorted, uint32_t a,
                                           uint32_t b, uint32_t self, float3 p, float best[3]) {
  for (uint32_t k = a; k < b; ++k) {
    if (k == self) continue;
    const float4 q = sorted[k];
    const float dx = q.x - p.x, dy = q.y - p.y, dz = q.z - p.z;
    const float d = dx * dx + dy * dy + dz * dz;
    if (d < best[2]) {
      if (d < best[1]) {
        best[2] = best[1];
        if (d < best[0]) {
          best[1] = best[0];
          best[0] = d;
        } else {
          best[1] = d;
        }
      } else {
        best[2] = d;
      }
    }
  }
}

__global__ void search_kernel(int n, Grid g, const float4* __restrict__ sorted,
                              const uint32_t* __restrict__ begin, float* out) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  const float4 s = sorted[k];
  const float3 p = make_float3(s.x, s.y, s.z);
  if (!isfinite(p.x) || !isfinite(p.y) || !isfinite(p.z)) {
    out[__float_as_int(s.w)] = NAN;  // no meaningful neighbours
    return;
  }
  const int3 c = cell_of(g, p);
  float best[3] = {INFINITY, INFINITY, INFINITY};
  for (int r = 0;; ++r) {
    const int z0 = max(c.z - r, 0), z1 = min(c.z + r, g.dims.z - 1);
    const int y0 = max(c.y - r, 0), y1 = min(c.y + r, g.dims.y - 1);
    const int xa = c.x - r, xb = c.x + r;
    const int x0 = max(xa, 0), x1 = min(xb, g.dims.x - 1);
    for (int z = z0; z <= z1; ++z) {
      for (int y = y0; y <= y1; ++y) {
        const uint32_t row = (uint32_t(z) * uint32_t(g.dims.y) + uint32_t(y)) * uint32_t(g.dims.x);
        if (abs(z - c.z) == r || abs(y - c.y) == r) {
          // A whole row of the shell: its cells are contiguous in the sorted order.
          scan_range(sorted, begin[row + x0], begin[row + x1 + 1], k, p, best);
        } else {
          if (xa >= 0) scan_range(sorted, begin[row + xa], begin[row + xa + 1], k, p, best);
          if (xb < g.dims.x && xb != xa)
            scan_range(sorted, begin[row + xb], begin[row + xb + 1], k, p, best);
        }
      }
    }
    // Distance from p to the nearest unscanned cell; stop once the third best is closer.
    float gap = INFINITY;
    if (c.x - r > 0) gap = fminf(gap, p.x - (g.lo.x + (c.x - r) * g.h));
    if (c.x + r < g.dims.x - 1) gap = fminf(gap, g.lo.x + (c.x + r + 1) * g.h - p.x);
    if (c.y - r > 0) gap = fminf(gap, p.y - (g.lo.y + (c.y - r) * g.h));
    if (c.y + r < g.dims.y - 1) gap = fminf(gap, g.lo.y + (c.y + r + 1) * g.h - p.y);
    if (c.z - r > 0) gap = fminf(gap, p.z - (g.lo.z + (c.z - r) * g.h));
    if (c.z + r < g.dims.z - 1) gap = fminf(gap, g.lo.z + (c.z + r + 1) * g.h - p.z);
    if (gap == INFINITY) break;  // the whole grid has been scanned
    gap = fmaxf(gap, 0.f);
    if (best[2] <= gap * gap) break;
  }
  float sum = 0.f;
  int found = 0;
  for (int j = 0; j < 3; ++j)
    if (best[j] < INFINITY) {
      sum += best[j];
      ++found;
    }
  out[__float_as_int(s.w)] = found ? sum / float(found) : 0.f;
}

struct DeviceScope {
  int prev = -1;
  explicit DeviceScope(int device) {
    cudaGetDevice(&prev);
    if (device >= 0 && device != prev) cudaSetDevice(device);
  }
  ~DeviceScope() {
    if (prev >= 0) cudaSetDevice(prev);
  }
};

char* align(char* p) {
  return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(p) + 255) & ~uintptr_t(255));
}

}  // namespace

void mean_dist3(int device, int n, const float* points, const float lo[3], const float hi[3],
                BufferFn scratch, float* out) {
  if (n <= 0) return;
  DeviceScope scope(device);
  const Grid g = make_grid(n, lo, hi);
  const size_t cells = size_t(g.dims.x) * g.dims.y * g.dims.z;
  if (cells + 1 > 0xffffffffu) throw std::runtime_error("simple_knn: grid too large");
  const int m = int(cells) + 1;  // one extra entry: begin[cells] = n

  size_t scan_bytes = 0;
  cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, (uint32_t*)nullptr, (uint32_t*)nullptr, m);
  const size_t bytes = 4 * 256 + sizeof(uint32_t) * (size_t(n) + 2 * size_t(m)) +
                       sizeof(float4) * size_t(n) + scan_bytes + 256;
  char* p = align(scratch(bytes));
  uint32_t* cell = reinterpret_cast<uint32_t*>(p);
  p = align(p + sizeof(uint32_t) * n);
  uint32_t* count = reinterpret_cast<uint32_t*>(p);
  p = align(p + sizeof(uint32_t) * m);
  uint32_t* begin = reinterpret_cast<uint32_t*>(p);
  p = align(p + sizeof(uint32_t) * m);
  float4* sorted = reinterpret_cast<float4*>(p);
  p = align(p + sizeof(float4) * n);
  void* scan_tmp = p;

  const int threads = 256, blocks = (n + threads - 1) / threads;
  cudaMemset(count, 0, sizeof(uint32_t) * m);
  count_kernel<<<blocks, threads>>>(n, g, points, cell, count);
  check("count");
  cub::DeviceScan::ExclusiveSum(scan_tmp, scan_bytes, count, begin, m);
  check("scan");
  cudaMemset(count, 0, sizeof(uint32_t) * m);
  scatter_kernel<<<blocks, threads>>>(n, points, cell, begin, count, sorted);
  check("scatter");
  search_kernel<<<blocks, threads>>>(n, g, sorted, begin, out);
  check("search");
}

}  // namespace sknn
