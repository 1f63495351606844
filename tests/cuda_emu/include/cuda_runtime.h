// Emulated <cuda_runtime.h>: this include folder shadows the CUDA toolkit's for the CPU build.
#pragma once
#include "../cuda_emu.h"
