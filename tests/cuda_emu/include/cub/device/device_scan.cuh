// Emulated CUB header (tests/cuda_emu/cub_emu.h).
#pragma once
#include "../../../cub_emu.h"
