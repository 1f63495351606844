// Kernels that check the CUDA emulation itself (tests/test_cuda_emu.py calls them through
// ctypes in the ASan worker). Plain CUDA: with nvcc they would behave the same on a GPU.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda_runtime.h>

#include <cstdint>

namespace {

// out[i] = in[i] for i < n + extra: extra > 0 writes past the end (the sanitizer must object).
__global__ void copy_kernel(const float* in, float* out, int n, int extra) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n + extra) out[i] = in[i < n ? i : 0];
}

// Each thread reads its neighbour's shared slot after a barrier: wrong without a real barrier.
__global__ void __launch_bounds__(256) rotate_kernel(const int* in, int* out, int* counts) {
  __shared__ int s[256];
  const int t = threadIdx.x;
  const int n = blockDim.x;
  s[t] = in[blockIdx.x * n + t];
  __syncthreads();
  const int v = s[(t + 1) % n];
  const int c = __syncthreads_count(v % 3 == 0);
  out[blockIdx.x * n + t] = v;
  if (t == 0) counts[blockIdx.x] = c;
}

// Warp collectives of every kind; out has 8 ints per thread.
__global__ void warp_kernel(const int* in, int* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x & 31;
  const int v = in[i];
  int sum = v;
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, off);
  int bfly = v;
  for (int m = 1; m < 32; m <<= 1) bfly = max(bfly, __shfl_xor_sync(0xffffffffu, bfly, m));
  const unsigned ballot = __ballot_sync(0xffffffffu, v & 1);
  int* o = out + 8 * i;
  o[0] = sum;  // lane 0: the warp's sum
  o[1] = bfly;  // every lane: the warp's max
  o[2] = int(ballot);
  o[3] = __all_sync(0xffffffffu, v >= 0);
  o[4] = __any_sync(0xffffffffu, v == 7);
  o[5] = __shfl_sync(0xffffffffu, v, 3);              // lane 3's value
  o[6] = __shfl_up_sync(0xffffffffu, v, 1, 16);        // previous lane within 16-lane halves
  float f = float(lane) * 0.5f;
  o[7] = int(2.0f * __shfl_down_sync(0xffffffffu, f, 5, 8));  // within 8-lane groups
}

__global__ void atomic_kernel(float* fsum, int* isum, int* imax, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  atomicAdd(fsum, 0.5f);
  atomicAdd(isum, i);
  atomicMax(imax, (i * 7919) % 10007);
}

// Thread 0 leaves before the barrier the others wait at: a GPU may hang; we must abort.
__global__ void stuck_kernel(int* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void geometry_kernel(int* out) {
  const int i = ((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) *
                    (blockDim.x * blockDim.y * blockDim.z) +
                (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  out[i] = int(threadIdx.x + 10 * threadIdx.y + 100 * threadIdx.z + 1000 * blockIdx.x +
               10000 * blockIdx.y + 100000 * blockIdx.z);
}

}  // namespace

extern "C" {

int emu_copy(const float* in, float* out, int n, int extra) {
  copy_kernel<<<(n + extra + 63) / 64, 64>>>(in, out, n, extra);
  return cudaGetLastError();
}

int emu_rotate(const int* in, int* out, int* counts, int blocks) {
  rotate_kernel<<<blocks, 256>>>(in, out, counts);
  return cudaGetLastError();
}

int emu_warp(const int* in, int* out, int threads) {
  warp_kernel<<<threads / 64, 64>>>(in, out);
  return cudaGetLastError();
}

int emu_atomic(float* fsum, int* isum, int* imax, int n) {
  atomic_kernel<<<(n + 127) / 128, 128>>>(fsum, isum, imax, n);
  return cudaGetLastError();
}

int emu_stuck(int* out) {
  stuck_kernel<<<1, 64>>>(out);
  return cudaGetLastError();
}

int emu_geometry(int* out) {
  geometry_kernel<<<dim3(3, 2, 2), dim3(4, 3, 2)>>>(out);
  return cudaGetLastError();
}

// An invalid launch (2048 threads per block) must be reported, not run.
int emu_bad_launch(int* out) {
  geometry_kernel<<<1, 2048>>>(out);
  return cudaGetLastError();
}

int emu_sort(const uint64_t* keys, uint64_t* keys_out, const uint32_t* vals, uint32_t* vals_out,
             int n, int begin_bit, int end_bit, char* tmp, size_t tmp_bytes) {
  size_t need = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, need, keys, keys_out, vals, vals_out, n, begin_bit, end_bit);
  if (tmp_bytes < need) return -int(need);
  return cub::DeviceRadixSort::SortPairs(tmp, tmp_bytes, keys, keys_out, vals, vals_out, n,
                                         begin_bit, end_bit);
}

int emu_scan(const uint32_t* in, uint32_t* incl, uint32_t* excl, int n, char* tmp, size_t tmp_bytes) {
  size_t need = 0;
  cub::DeviceScan::InclusiveSum(nullptr, need, in, incl, n);
  if (tmp_bytes < need) return -int(need);
  int e = cub::DeviceScan::InclusiveSum(tmp, tmp_bytes, in, incl, n);
  if (e == 0) e = cub::DeviceScan::ExclusiveSum(tmp, tmp_bytes, in, excl, n);
  return e;
}

}  // extern "C"
