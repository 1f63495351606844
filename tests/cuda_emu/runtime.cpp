// Runtime of the CUDA emulation (cuda_emu.h): fibers, block and warp scheduling (launch.cpp
// spreads a grid's blocks over OS threads and implements the runtime API).
//
// A launch hands its blocks to a pool of OS threads. One OS thread runs one block at a time, its
// threads as fibers (own stacks with a guard page; x86-64 context switch below, ucontext
// elsewhere). A fiber runs until it reaches a barrier or a warp collective, then passes control
// to the next runnable fiber of its block; the last thread to arrive completes the operation and
// wakes the others. If no fiber of a block can run and some have not finished, the block can
// never complete on a GPU either: we abort with a description rather than hang.
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda_emu.h"
#include "runtime_internal.h"

#if defined(CUDA_EMU_ASAN)
// set by the build: the kernels are instrumented, this file is not
#elif defined(__SANITIZE_ADDRESS__)
#define CUDA_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDA_EMU_ASAN 1
#endif
#endif
#ifdef CUDA_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace cuda_emu {

thread_local ThreadCtx* tl_current = nullptr;

namespace {

[[noreturn]] void fatal(const std::string& msg) {
  std::fprintf(stderr, "cuda_emu: %s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

// ---- context switching ------------------------------------------------------------------------
#if defined(__x86_64__)
// emu_switch(save, next): saves callee-saved registers and the FP control words on the current
// stack, stores the stack pointer in *save and resumes the context whose stack pointer is next.
extern "C" void cuda_emu_switch(void** save, void* next);
extern "C" void cuda_emu_trampoline();
asm(R"(
.text
.globl cuda_emu_switch
.type cuda_emu_switch,@function
cuda_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size cuda_emu_switch,.-cuda_emu_switch
.globl cuda_emu_trampoline
.type cuda_emu_trampoline,@function
cuda_emu_trampoline:
  movq %r12, %rdi
  call *%r13
  ud2
.size cuda_emu_trampoline,.-cuda_emu_trampoline
.section .note.GNU-stack,"",@progbits
.text
)");
#endif

struct Block;

enum class State { Runnable, AtBarrier, AtWarp, Done };

struct Fiber {
  ThreadCtx ctx;
  State state = State::Done;
  int linear = 0, lane = 0, warp = 0;
  char* stack = nullptr;  // lowest usable byte (above the guard page)
  size_t stack_size = 0;
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
  Block* block = nullptr;
};

struct WarpState {
  unsigned arrived = 0;  // lanes waiting in the current collective
  unsigned mask = 0;
  WarpOp op = WarpOp::Sync;
  unsigned long long in[32], out[32];
  int arg[32], width[32];
};

struct Block {
  std::vector<Fiber> fibers;  // stacks reused across blocks and launches
  int n = 0, done = 0, current = 0;
  int barrier_arrived = 0, barrier_acc = 0, barrier_mode = 0, barrier_result = 0;
  WarpState warps[32];
  ThreadBody body = nullptr;
  void* launch = nullptr;
#if defined(__x86_64__)
  void* sched_sp = nullptr;
#else
  ucontext_t sched_uc;
#endif
  const void* sched_stack_bottom = nullptr;  // the OS thread's stack, for ASan
  size_t sched_stack_size = 0;
};

thread_local Block tl_block;
thread_local Fiber* tl_fiber = nullptr;

size_t stack_bytes() {
  static const size_t bytes = [] {
    const char* e = std::getenv("CUDA_EMU_STACK_KB");
    const long kb = e ? std::atol(e) : 256;
    return size_t(kb > 16 ? kb : 16) * 1024;
  }();
  return bytes;
}

void fiber_main(Fiber* f);

// Low-level transfer between the scheduler and fibers of this OS thread, with ASan's fiber
// annotations so that it tracks which stack is live.
void jump(void** save_sp, void* save_uc, Fiber* to, bool from_finished_fiber) {
  Block& b = tl_block;
#ifdef CUDA_EMU_ASAN
  void* fake = nullptr;
  const void* bottom = to ? to->stack : b.sched_stack_bottom;
  const size_t size = to ? to->stack_size : b.sched_stack_size;
  __sanitizer_start_switch_fiber(from_finished_fiber ? nullptr : &fake, bottom, size);
#else
  (void)from_finished_fiber;
#endif
#if defined(__x86_64__)
  (void)save_uc;
  cuda_emu_switch(save_sp, to ? to->sp : b.sched_sp);
#else
  (void)save_sp;
  swapcontext(static_cast<ucontext_t*>(save_uc), to ? &to->uc : &b.sched_uc);
#endif
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void* fiber_save_sp(Fiber* f) {
#if defined(__x86_64__)
  return &f->sp;
#else
  (void)f;
  return nullptr;
#endif
}
void* fiber_save_uc(Fiber* f) {
#if defined(__x86_64__)
  (void)f;
  return nullptr;
#else
  return &f->uc;
#endif
}

// Next runnable fiber after `from` (round robin), or null.
Fiber* next_runnable(int from) {
  Block& b = tl_block;
  for (int k = 1; k <= b.n; ++k) {
    Fiber& f = b.fibers[(from + k) % b.n];
    if (f.state == State::Runnable) return &f;
  }
  return nullptr;
}

// Called by a fiber that cannot continue (waiting or finished): runs the next runnable fiber
// of the block, or returns to the scheduler when there is none.
void pass_control(Fiber* self) {
  Fiber* next = next_runnable(self->linear);
  if (next == self) return;  // woken already (cannot happen while waiting, but harmless)
  const bool finished = self->state == State::Done;
  if (next) {
    tl_fiber = next;
    tl_current = &next->ctx;
  }
  jump(static_cast<void**>(fiber_save_sp(self)), fiber_save_uc(self), next, finished);
  // Resumed: someone made us runnable and switched here.
  tl_fiber = self;
  tl_current = &self->ctx;
}

void fiber_main(Fiber* f) {
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  tl_fiber = f;
  tl_current = &f->ctx;
  f->block->body(f->block->launch);
  f->state = State::Done;
  ++f->block->done;
  pass_control(f);
  fatal("internal error: a finished fiber was resumed");
}

#if !defined(__x86_64__)
void fiber_entry_uc(unsigned lo, unsigned hi) {
  fiber_main(reinterpret_cast<Fiber*>((uintptr_t(hi) << 32) | uintptr_t(lo)));
}
#else
extern "C" void cuda_emu_fiber_entry(Fiber* f) { fiber_main(f); }
#endif

void prepare_fiber(Fiber& f) {
  const size_t size = stack_bytes();
  if (!f.stack) {
    const long page = sysconf(_SC_PAGESIZE);
    void* mem = mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) fatal("cannot allocate a fiber stack");
    mprotect(mem, page, PROT_NONE);  // guard page: a stack overflow faults instead of corrupting
    f.stack = static_cast<char*>(mem) + page;
    f.stack_size = size;
  }
#ifdef CUDA_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(f.stack, f.stack_size);
#endif
#if defined(__x86_64__)
  uint64_t* top = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(f.stack + f.stack_size)) & ~uintptr_t(15));
  // Frame popped by cuda_emu_switch: [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp ret.
  uint64_t* sp = top - 8;
  uint32_t mx = 0;
  uint16_t cw = 0;
  asm volatile("stmxcsr %0" : "=m"(mx));
  asm volatile("fnstcw %0" : "=m"(cw));
  sp[0] = uint64_t(mx) | (uint64_t(cw) << 32);
  sp[1] = 0;                                                   // r15
  sp[2] = 0;                                                   // r14
  sp[3] = reinterpret_cast<uint64_t>(&cuda_emu_fiber_entry);   // r13: function to call
  sp[4] = reinterpret_cast<uint64_t>(&f);                      // r12: its argument
  sp[5] = 0;                                                   // rbx
  sp[6] = 0;                                                   // rbp
  sp[7] = reinterpret_cast<uint64_t>(&cuda_emu_trampoline);    // return address
  f.sp = sp;
#else
  getcontext(&f.uc);
  f.uc.uc_stack.ss_sp = f.stack;
  f.uc.uc_stack.ss_size = f.stack_size;
  f.uc.uc_link = nullptr;
  const uintptr_t p = reinterpret_cast<uintptr_t>(&f);
  makecontext(&f.uc, reinterpret_cast<void (*)()>(&fiber_entry_uc), 2, unsigned(p), unsigned(p >> 32));
#endif
}

std::string describe_stuck(const Block& b) {
  int exited = 0, at_barrier = 0, at_warp = 0;
  for (int i = 0; i < b.n; ++i) {
    exited += b.fibers[i].state == State::Done;
    at_barrier += b.fibers[i].state == State::AtBarrier;
    at_warp += b.fibers[i].state == State::AtWarp;
  }
  const ThreadCtx& c = b.fibers[0].ctx;
  return "block (" + std::to_string(c.block_idx.x) + "," + std::to_string(c.block_idx.y) + "," +
         std::to_string(c.block_idx.z) + ") can never finish: " + std::to_string(at_barrier) +
         " threads wait at __syncthreads, " + std::to_string(at_warp) +
         " at a warp collective, " + std::to_string(exited) +
         " have exited (undefined behaviour in CUDA: a barrier or *_sync mask must be reached "
         "by every thread it names)";
}

}  // namespace

// Runs one block to completion on the calling OS thread (declared in runtime_internal.h).
void run_block(dim3 grid, dim3 block, uint3 bid, ThreadBody body, void* launch) {
  Block& b = tl_block;
  if (!b.sched_stack_bottom) {  // the OS thread's own stack, where the scheduler runs
    pthread_attr_t attr;
    void* addr = nullptr;
    size_t size = 0;
    pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    b.sched_stack_bottom = addr;
    b.sched_stack_size = size;
  }
  b.n = int(block.x * block.y * block.z);
  if (int(b.fibers.size()) < b.n) b.fibers.resize(b.n);
  b.done = 0;
  b.barrier_arrived = b.barrier_acc = 0;
  for (auto& w : b.warps) w.arrived = 0;
  b.body = body;
  b.launch = launch;
  for (int i = 0; i < b.n; ++i) {
    Fiber& f = b.fibers[i];
    f.ctx.thread_idx = make_uint3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
    f.ctx.block_idx = bid;
    f.ctx.block_dim = block;
    f.ctx.grid_dim = grid;
    f.linear = i;
    f.lane = i & 31;
    f.warp = i >> 5;
    f.block = &b;
    f.state = State::Runnable;
    prepare_fiber(f);
  }
  ThreadCtx* outer = tl_current;
  while (b.done < b.n) {
    Fiber* next = next_runnable(b.n - 1);
    if (!next) fatal(describe_stuck(b));
    tl_fiber = next;
    tl_current = &next->ctx;
#if defined(__x86_64__)
    jump(&b.sched_sp, nullptr, next, false);
#else
    jump(nullptr, &b.sched_uc, next, false);
#endif
  }
  tl_fiber = nullptr;
  tl_current = outer;
}

// ---- barriers and warp collectives -------------------------------------------------------------
int block_barrier(int predicate, int mode) {
  Fiber* f = tl_fiber;
  if (!f) fatal("__syncthreads called outside a kernel");
  Block& b = *f->block;
  if (b.barrier_arrived == 0) {
    b.barrier_mode = mode;
    b.barrier_acc = mode == 1 ? 1 : 0;
  } else if (b.barrier_mode != mode) {
    fatal("threads of one block meet at different __syncthreads variants");
  }
  if (mode == 0) b.barrier_acc += predicate;
  if (mode == 1) b.barrier_acc &= predicate;
  if (mode == 2) b.barrier_acc |= predicate;
  if (++b.barrier_arrived == b.n) {
    b.barrier_result = b.barrier_acc;
    b.barrier_arrived = 0;
    for (int i = 0; i < b.n; ++i)
      if (b.fibers[i].state == State::AtBarrier) b.fibers[i].state = State::Runnable;
    return b.barrier_result;
  }
  f->state = State::AtBarrier;
  pass_control(f);
  return b.barrier_result;  // not overwritten before every thread has arrived again
}

namespace {
unsigned long long complete(WarpState& w, int lane, int lanes_in_warp) {
  const unsigned mask = w.mask;
  unsigned long long ballot = 0;
  for (int l = 0; l < 32; ++l)
    if ((mask >> l) & 1u) ballot |= (w.in[l] != 0 ? 1ull : 0ull) << l;
  for (int l = 0; l < 32; ++l) {
    if (!((mask >> l) & 1u)) continue;
    const int width = w.width[l];
    const int seg = l & ~(width - 1), pos = l & (width - 1);
    int src = l;
    switch (w.op) {
      case WarpOp::Sync: w.out[l] = 0; continue;
      case WarpOp::Ballot: w.out[l] = ballot; continue;
      case WarpOp::All: w.out[l] = ballot == mask; continue;
      case WarpOp::Any: w.out[l] = ballot != 0; continue;
      case WarpOp::ShflIdx: src = seg + (w.arg[l] & (width - 1)); break;
      case WarpOp::ShflUp: src = pos - w.arg[l] >= 0 ? l - w.arg[l] : l; break;
      case WarpOp::ShflDown: src = pos + w.arg[l] < width ? l + w.arg[l] : l; break;
      case WarpOp::ShflXor: src = ((l ^ w.arg[l]) & ~(width - 1)) == seg ? (l ^ w.arg[l]) : l; break;
    }
    if (src >= lanes_in_warp || !((mask >> src) & 1u))
      fatal("__shfl_*_sync reads lane " + std::to_string(src) +
            ", which is not in the mask (undefined in CUDA)");
    w.out[l] = w.in[src];
  }
  (void)lane;
  return w.out[lane];
}
}  // namespace

unsigned long long warp_collective(WarpOp op, unsigned mask, unsigned long long value, int arg,
                                   int width) {
  Fiber* f = tl_fiber;
  if (!f) fatal("warp intrinsic called outside a kernel");
  Block& b = *f->block;
  const int lanes_in_warp = std::min(32, b.n - 32 * f->warp);
  const unsigned existing = lanes_in_warp == 32 ? 0xffffffffu : ((1u << lanes_in_warp) - 1u);
  if (!((mask >> f->lane) & 1u)) fatal("a *_sync intrinsic is called by a lane outside its mask");
  if (mask & ~existing) fatal("a *_sync mask names lanes that do not exist in this warp");
  if (width < 1 || width > 32 || (width & (width - 1)))
    fatal("shuffle width must be a power of two in [1, 32]");
  WarpState& w = b.warps[f->warp];
  if (w.arrived == 0) {
    w.mask = mask;
    w.op = op;
  } else if (w.mask != mask || w.op != op) {
    fatal("lanes of one warp meet at different *_sync operations or masks (not modelled, and "
          "undefined in CUDA when the masks overlap)");
  }
  w.in[f->lane] = value;
  w.arg[f->lane] = arg;
  w.width[f->lane] = width;
  w.arrived |= 1u << f->lane;
  if (w.arrived == mask) {
    w.arrived = 0;
    for (int l = 0; l < lanes_in_warp; ++l) {
      Fiber& o = b.fibers[32 * f->warp + l];
      if (o.state == State::AtWarp) o.state = State::Runnable;
    }
    return complete(w, f->lane, lanes_in_warp);
  }
  f->state = State::AtWarp;
  pass_control(f);
  return w.out[f->lane];
}

}  // namespace cuda_emu

