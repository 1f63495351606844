// Prepended to the torch glue of our extensions in the emulated build (tests/cuda_emu/build.py):
// there, "device" memory is host memory, so the glue's CUDA-tensor checks ask for CPU tensors.
// The glue's own text is compiled unchanged after this.
#pragma once
#include <torch/extension.h>
#define is_cuda() is_cpu()
