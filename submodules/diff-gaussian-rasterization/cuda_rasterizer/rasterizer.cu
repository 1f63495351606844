// Orchestration: buffers, (tile, depth) key duplication, radix sort, tile ranges; runs the
// per-Gaussian and per-tile stages in order.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <stdexcept>
#include <string>

#include "common.cuh"

namespace gsr {

void check_cuda(const char* where, bool sync) {
  cudaError_t err = sync ? cudaDeviceSynchronize() : cudaSuccess;
  if (err == cudaSuccess) err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("diff_gaussian_rasterization: CUDA error in ") + where +
                             ": " + cudaGetErrorString(err));
}

GeomState GeomState::carve(char* base, int P) {
  GeomState s;
  Carver c{base};
  s.pos = c.take<float4>(P);
  s.conic = c.take<float4>(P);
  s.box = c.take<uint2>(P);
  s.rgb = c.take<float>(3 * size_t(P));
  s.clamped = c.take<uint8_t>(P);
  s.tiles_touched = c.take<uint32_t>(P);
  s.offsets = c.take<uint32_t>(P);
  s.scan_bytes = 0;
  cub::DeviceScan::InclusiveSum(nullptr, s.scan_bytes, s.tiles_touched, s.offsets, P);
  s.scan_tmp = c.take<char>(s.scan_bytes);
  s.bytes = c.used();
  return s;
}

BinningState BinningState::carve(char* base, int R) {
  BinningState s;
  Carver c{base};
  s.keys = c.take<uint64_t>(R);
  s.keys_sorted = c.take<uint64_t>(R);
  s.ids = c.take<uint32_t>(R);
  s.ids_sorted = c.take<uint32_t>(R);
  s.sort_bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, s.sort_bytes, s.keys, s.keys_sorted, s.ids,
                                  s.ids_sorted, R);
  s.sort_tmp = c.take<char>(s.sort_bytes);
  s.bytes = c.used();
  return s;
}

ImageState ImageState::carve(char* base, int pixels, int tiles) {
  ImageState s;
  Carver c{base};
  s.ranges = c.take<uint2>(tiles);
  s.final_T = c.take<float>(pixels);
  s.n_contrib = c.take<uint32_t>(pixels);
  s.bytes = c.used();
  return s;
}

namespace {

// Writes one (tile << 32 | depth bits) key per tile of each Gaussian's footprint box. Offsets
// follow the Gaussian index, and the radix sort is stable, so equal depths keep index order.
__global__ void duplicate_kernel(int P, int tiles_x, const float4* __restrict__ pos,
                                 const uint2* __restrict__ box,
                                 const uint32_t* __restrict__ tiles_touched,
                                 const uint32_t* __restrict__ offsets, uint64_t* keys,
                                 uint32_t* ids) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= P || tiles_touched[i] == 0) return;
  uint32_t off = i == 0 ? 0u : offsets[i - 1];
  const uint2 b = box[i];
  const int tx0 = int(b.x & 0xffff) / kTileX, tx1 = int(b.x >> 16) / kTileX;
  const int ty0 = int(b.y & 0xffff) / kTileY, ty1 = int(b.y >> 16) / kTileY;
  // Depth > near plane > 0, so its IEEE bits order like the value.
  const uint64_t depth_bits = __float_as_uint(pos[i].w);
  for (int ty = ty0; ty <= ty1; ++ty)
    for (int tx = tx0; tx <= tx1; ++tx) {
      keys[off] = (uint64_t(ty * tiles_x + tx) << 32) | depth_bits;
      ids[off] = uint32_t(i);
      ++off;
    }
}

__global__ void ranges_kernel(int R, const uint64_t* __restrict__ keys, uint2* ranges) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= R) return;
  const uint32_t tile = uint32_t(keys[k] >> 32);
  if (k == 0) {
    ranges[tile].x = 0;
  } else {
    const uint32_t prev = uint32_t(keys[k - 1] >> 32);
    if (prev != tile) {
      ranges[prev].y = k;
      ranges[tile].x = k;
    }
  }
  if (k == R - 1) ranges[tile].y = R;
}

int high_bit(uint32_t n) {
  int b = 0;
  while (b < 32 && (uint32_t(1) << b) < n) ++b;
  return b;
}

// Makes `device` current for the scope of a call; restores the caller's device afterwards.
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

}  // namespace

int forward(int device, const Camera& cam, const Gaussians& g, const uint8_t* metric_map,
            BufferFn geom_buffer, BufferFn binning_buffer, BufferFn image_buffer,
            const ForwardOutputs& out, bool debug) {
  DeviceScope scope(device);
  const Frame f = make_frame(cam);
  const int P = g.count;

  // Sizes come from carving at address 0 (see Carver).
  char* geom_base = geom_buffer(GeomState::carve(nullptr, P).bytes);
  const GeomState geom = GeomState::carve(geom_base, P);
  const int tiles = f.tiles_x * f.tiles_y;
  const int pixels = f.W * f.H;
  char* img_base = image_buffer(ImageState::carve(nullptr, pixels, tiles).bytes);
  const ImageState img = ImageState::carve(img_base, pixels, tiles);
  cudaMemset(img.ranges, 0, sizeof(uint2) * size_t(tiles));

  launch_preprocess(f, g, geom, out.radii);
  check_cuda("preprocess", debug);

  uint32_t R = 0;
  if (P > 0) {
    size_t bytes = geom.scan_bytes;
    cub::DeviceScan::InclusiveSum(geom.scan_tmp, bytes, geom.tiles_touched, geom.offsets, P);
    check_cuda("tile count scan", debug);
    cudaMemcpy(&R, geom.offsets + P - 1, sizeof(uint32_t), cudaMemcpyDeviceToHost);
    check_cuda("tile count copy", false);
  }
  if (R > 0x7fffffffu)
    throw std::runtime_error("diff_gaussian_rasterization: too many (Gaussian, tile) pairs");

  BinningState bin{};
  if (R > 0) {
    bin = BinningState::carve(binning_buffer(BinningState::carve(nullptr, int(R)).bytes), int(R));
    duplicate_kernel<<<(P + 255) / 256, 256>>>(P, f.tiles_x, geom.pos, geom.box,
                                               geom.tiles_touched, geom.offsets, bin.keys,
                                               bin.ids);
    check_cuda("duplicate", debug);
    size_t bytes = bin.sort_bytes;
    cub::DeviceRadixSort::SortPairs(bin.sort_tmp, bytes, bin.keys, bin.keys_sorted, bin.ids,
                                    bin.ids_sorted, int(R), 0, 32 + high_bit(uint32_t(tiles)));
    check_cuda("sort", debug);
    ranges_kernel<<<(int(R) + 255) / 256, 256>>>(int(R), bin.keys_sorted, img.ranges);
    check_cuda("tile ranges", debug);
  }

  const float* colors = g.colors_precomp ? g.colors_precomp : geom.rgb;
  launch_render(f, img.ranges, bin.ids_sorted, geom, colors, cam.bg, metric_map, img, out);
  check_cuda("render", debug);
  return int(R);
}

void backward(int device, const Camera& cam, const Gaussians& g, int num_rendered,
              char* geom_buffer, char* binning_buffer, char* image_buffer, const int* radii,
              const float* dL_dcolor, const float* dL_ddepth, const float* dL_dalpha,
              const float* dL_dinvdepth, const Gradients& grads, bool debug) {
  DeviceScope scope(device);
  const Frame f = make_frame(cam);
  const int P = g.count;
  const GeomState geom = GeomState::carve(geom_buffer, P);
  const ImageState img = ImageState::carve(image_buffer, f.W * f.H, f.tiles_x * f.tiles_y);
  const uint32_t* ids = nullptr;
  if (num_rendered > 0) ids = BinningState::carve(binning_buffer, num_rendered).ids_sorted;

  const float* colors = g.colors_precomp ? g.colors_precomp : geom.rgb;
  launch_render_backward(f, img.ranges, ids, geom, colors, cam.bg, img, dL_dcolor, dL_ddepth,
                         dL_dalpha, dL_dinvdepth, grads);
  check_cuda("render backward", debug);
  launch_preprocess_backward(f, g, geom, radii, grads);
  check_cuda("preprocess backward", debug);
}

}  // namespace gsr
