// Launches and the runtime API of the CUDA emulation: a grid's blocks are spread over a pool of
// OS threads (CUDA_EMU_THREADS, default: all cores), each block run by runtime.cpp's scheduler.
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "cuda_emu.h"
#include "runtime_internal.h"

namespace cuda_emu {
namespace {

// ---- block pool ---------------------------------------------------------------------------------
class Pool {
 public:
  static Pool& get() {
    static Pool pool;
    return pool;
  }
  void run(dim3 grid, dim3 block, ThreadBody body, void* ctx) {
    const uint64_t total = uint64_t(grid.x) * grid.y * grid.z;
    std::unique_lock<std::mutex> guard(launch_mu_);  // one launch at a time (like one stream)
    if (workers_.empty() || total == 1) {
      for (uint64_t i = 0; i < total; ++i) run_one(grid, block, i, body, ctx);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = Job{grid, block, body, ctx, total};
      next_.store(0);
      busy_ = int(workers_.size());
      ++generation_;
    }
    cv_.notify_all();
    drain();
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return busy_ == 0; });
  }

 private:
  struct Job {
    dim3 grid, block;
    ThreadBody body = nullptr;
    void* ctx = nullptr;
    uint64_t total = 0;
  };
  Pool() {
    const char* e = std::getenv("CUDA_EMU_THREADS");
    int n = e ? std::atoi(e) : int(std::thread::hardware_concurrency());
    if (n < 1) n = 1;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  static void run_one(dim3 grid, dim3 block, uint64_t i, ThreadBody body, void* ctx) {
    const uint3 bid = make_uint3(unsigned(i % grid.x), unsigned((i / grid.x) % grid.y),
                                 unsigned(i / (uint64_t(grid.x) * grid.y)));
    run_block(grid, block, bid, body, ctx);
  }
  void drain() {
    for (uint64_t i; (i = next_.fetch_add(1)) < job_.total;) run_one(job_.grid, job_.block, i, job_.body, job_.ctx);
  }
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      drain();
      std::lock_guard<std::mutex> lk(mu_);
      if (--busy_ == 0) done_cv_.notify_all();
    }
  }
  std::vector<std::thread> workers_;
  std::mutex launch_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  Job job_;
  std::atomic<uint64_t> next_{0};
  int busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

thread_local cudaError_t tl_last_error = cudaSuccess;

}  // namespace

bool launch(dim3 grid, dim3 block, size_t shared_bytes, ThreadBody body, void* ctx) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  const bool ok = threads >= 1 && threads <= 1024 && block.z <= 64 && grid.x >= 1 &&
                  grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7fffffffu && grid.y <= 65535 &&
                  grid.z <= 65535 && shared_bytes <= 48 * 1024;
  if (!ok) {
    tl_last_error = cudaErrorInvalidConfiguration;
    return false;
  }
  Pool::get().run(grid, block, body, ctx);
  return true;
}

}  // namespace cuda_emu

// ---- runtime API ----------------------------------------------------------------------------------
using cuda_emu::tl_last_error;

cudaError_t cudaGetLastError() {
  const cudaError_t e = tl_last_error;
  tl_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return tl_last_error; }
const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
  }
  return "unrecognized error code";
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }  // launches are synchronous
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return tl_last_error = cudaErrorInvalidDevice;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = std::aligned_alloc(256, (bytes + 255) & ~size_t(255));
  return *p || bytes == 0 ? cudaSuccess : (tl_last_error = cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
