// CUDA emulation for the host compiler (tests only; never shipped): enough of the CUDA language,
// runtime and CUB for our unmodified kernels in submodules/ to build with g++/clang and run on
// the CPU with CUDA's semantics.
//
// Execution model (runtime.cpp): blocks of a launch run in parallel on a pool of OS threads; the
// threads of one block are fibers on one OS thread, switched only at __syncthreads* and warp
// collectives (cooperative, deterministic order). __syncthreads* is a real block barrier;
// __shfl_*_sync / __ballot_sync / __all_sync / __any_sync / __syncwarp are real 32-lane warp
// collectives (every lane named in the mask must arrive with the same mask and operation).
// A block whose threads can no longer all reach their barrier (exited threads, divergent
// barriers, a lane missing from a warp collective) aborts with a diagnosis instead of hanging.
// __shared__ is per-block (thread_local storage of the OS thread running the block). Atomics are
// hardware atomics (blocks really run concurrently). Launches are synchronous; launch errors
// (bad geometry) surface through cudaGetLastError as on a GPU.
//
// Not modelled (only a GPU shows these): speed, preemptive interleaving of threads inside a
// block (data races between threads of one block between barriers go unnoticed), memory limits,
// __launch_bounds__ limits, stale/uninitialised __shared__ contents (ours persist across blocks).
#pragma once

#ifndef __CUDACC__
#define __CUDACC__ 1  // the kernels' headers take their CUDA path (portable.h)
#endif

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- language --------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __align__(n) alignas(n)

struct alignas(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned int x, y; };
struct uint3 { unsigned int x, y, z; };
struct alignas(16) uint4 { unsigned int x, y, z, w; };
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace cuda_emu {
struct ThreadCtx {  // what the special registers read; one per emulated thread (fiber)
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
extern thread_local ThreadCtx* tl_current;  // the running fiber's context
}  // namespace cuda_emu

#define threadIdx (::cuda_emu::tl_current->thread_idx)
#define blockIdx (::cuda_emu::tl_current->block_idx)
#define blockDim (::cuda_emu::tl_current->block_dim)
#define gridDim (::cuda_emu::tl_current->grid_dim)
constexpr int warpSize = 32;

// ---- device functions --------------------------------------------------------------------------
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

template <typename To, typename From>
inline To cuda_emu_bits(From v) {
  static_assert(sizeof(To) == sizeof(From), "bit cast of different sizes");
  To t;
  std::memcpy(&t, &v, sizeof t);
  return t;
}
inline unsigned int __float_as_uint(float v) { return cuda_emu_bits<unsigned int>(v); }
inline int __float_as_int(float v) { return cuda_emu_bits<int>(v); }
inline float __uint_as_float(unsigned int v) { return cuda_emu_bits<float>(v); }
inline float __int_as_float(int v) { return cuda_emu_bits<float>(v); }
inline long long __double_as_longlong(double v) { return cuda_emu_bits<long long>(v); }
inline double __longlong_as_double(long long v) { return cuda_emu_bits<double>(v); }
inline int __popc(unsigned int v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(unsigned(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline float __saturatef(float v) { return fminf(fmaxf(v, 0.f), 1.f); }
inline float rsqrtf(float v) { return 1.0f / sqrtf(v); }
template <typename T>
inline T __ldg(const T* p) { return *p; }

// ---- block and warp synchronisation (runtime.cpp) ---------------------------------------------
namespace cuda_emu {
enum class WarpOp : int { Sync, Ballot, All, Any, ShflIdx, ShflUp, ShflDown, ShflXor };
int block_barrier(int predicate, int mode);  // mode 0: count, 1: and, 2: or
unsigned long long warp_collective(WarpOp op, unsigned mask, unsigned long long value, int arg,
                                   int width);
template <typename T>
inline T shfl(WarpOp op, unsigned mask, T v, int arg, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a large type");
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_collective(op, mask, bits, arg, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
}  // namespace cuda_emu

inline void __syncthreads() { cuda_emu::block_barrier(0, 0); }
inline int __syncthreads_count(int p) { return cuda_emu::block_barrier(p != 0, 0); }
inline int __syncthreads_and(int p) { return cuda_emu::block_barrier(p != 0, 1); }
inline int __syncthreads_or(int p) { return cuda_emu::block_barrier(p != 0, 2); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  cuda_emu::warp_collective(cuda_emu::WarpOp::Sync, mask, 0, 0, 32);
}
inline unsigned __ballot_sync(unsigned mask, int p) {
  return unsigned(cuda_emu::warp_collective(cuda_emu::WarpOp::Ballot, mask, p != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int p) {
  return int(cuda_emu::warp_collective(cuda_emu::WarpOp::All, mask, p != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int p) {
  return int(cuda_emu::warp_collective(cuda_emu::WarpOp::Any, mask, p != 0, 0, 32));
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return cuda_emu::shfl(cuda_emu::WarpOp::ShflIdx, mask, v, src, width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return cuda_emu::shfl(cuda_emu::WarpOp::ShflUp, mask, v, int(delta), width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return cuda_emu::shfl(cuda_emu::WarpOp::ShflDown, mask, v, int(delta), width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return cuda_emu::shfl(cuda_emu::WarpOp::ShflXor, mask, v, lane_mask, width);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- atomics (blocks run concurrently: these are real atomic read-modify-writes) -------------
template <typename T>
struct cuda_emu_type { using type = T; };
template <typename T>
using cuda_emu_same = typename cuda_emu_type<T>::type;  // not deduced: the pointer picks T
template <typename T>
inline T atomicAdd(T* p, cuda_emu_same<T> v) {
  if constexpr (std::is_integral<T>::value) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  } else {
    T old, next;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do {
      next = old + v;
    } while (!__atomic_compare_exchange(p, &old, &next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
  }
}
template <typename T>
inline T atomicSub(T* p, cuda_emu_same<T> v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
template <typename T>
inline T atomicExch(T* p, cuda_emu_same<T> v) {
  T old;
  __atomic_exchange(p, &v, &old, __ATOMIC_RELAXED);
  return old;
}
template <typename T>
inline T atomicCAS(T* p, cuda_emu_same<T> compare, cuda_emu_same<T> v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value either way
}
template <typename T>
inline T atomicMax(T* p, cuda_emu_same<T> v) {
  static_assert(std::is_integral<T>::value, "atomicMax on integers only (as CUDA)");
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename T>
inline T atomicMin(T* p, cuda_emu_same<T> v) {
  static_assert(std::is_integral<T>::value, "atomicMin on integers only (as CUDA)");
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename T>
inline T atomicOr(T* p, cuda_emu_same<T> v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }
template <typename T>
inline T atomicAnd(T* p, cuda_emu_same<T> v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }

// ---- runtime API -----------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
typedef struct CUstream_st* cudaStream_t;

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <typename T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);

// ---- kernel launch: `k<<<g, b>>>(args)` is rewritten at build time to
// `::cuda_emu::Launch(k, g, b)(args)` (tests/cuda_emu/build.py); the source stays CUDA. --------
namespace cuda_emu {
using ThreadBody = void (*)(void* launch);
// Runs body(launch) once per thread of the grid; returns false (and sets the last error) on an
// invalid geometry, as a GPU launch would.
bool launch(dim3 grid, dim3 block, size_t shared_bytes, ThreadBody body, void* ctx);

template <typename... P>
struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t shared_bytes;
  Launch(void (*k)(P...), dim3 g, dim3 b, size_t shm = 0, cudaStream_t = nullptr)
      : kernel(k), grid(g), block(b), shared_bytes(shm) {}
  template <typename... A>
  void operator()(A&&... a) const {
    // Arguments are converted to the parameter types once, as CUDA copies them to the device;
    // every thread then receives its own by-value copies.
    struct Ctx {
      void (*kernel)(P...);
      std::tuple<std::decay_t<P>...> args;
    } ctx{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(a)...)};
    launch(grid, block, shared_bytes,
           [](void* c) {
             auto* x = static_cast<Ctx*>(c);
             std::apply(x->kernel, x->args);
           },
           &ctx);
  }
};
}  // namespace cuda_emu
