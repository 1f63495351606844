"""CUDA emulation for the tests: our unmodified CUDA kernels built with the host compiler
(cuda_emu.h, runtime.cpp) and run under AddressSanitizer in a worker process (harness.py)."""
