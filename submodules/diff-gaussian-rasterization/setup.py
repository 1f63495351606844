"""Build: pip install ./submodules/diff-gaussian-rasterization --no-build-isolation

Targets the GPU of the build machine unless TORCH_CUDA_ARCH_LIST is set, e.g.
TORCH_CUDA_ARCH_LIST="7.5;8.0;8.6;8.9;9.0".
"""
import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    name="diff_gaussian_rasterization",
    version="0.1.0",
    description="Tile-based differentiable Gaussian rasterizer (CUDA)",
    packages=["diff_gaussian_rasterization"],
    ext_modules=[
        CUDAExtension(
            name="diff_gaussian_rasterization._C",
            sources=[
                "rasterize_points.cpp",
                "cuda_rasterizer/rasterizer.cu",
                "cuda_rasterizer/preprocess.cu",
                "cuda_rasterizer/render.cu",
            ],
            include_dirs=[os.path.join(HERE, "cuda_rasterizer")],
            extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-std=c++17"]},
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
