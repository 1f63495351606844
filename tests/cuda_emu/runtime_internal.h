// Between the two halves of the emulation runtime (runtime.cpp schedules a block's threads,
// launch.cpp spreads blocks over OS threads).
#pragma once

#include "cuda_emu.h"

namespace cuda_emu {
void run_block(dim3 grid, dim3 block, uint3 bid, ThreadBody body, void* launch);
}  // namespace cuda_emu
