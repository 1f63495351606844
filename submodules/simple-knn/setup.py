"""Build: pip install ./submodules/simple-knn --no-build-isolation

Targets the GPU of the build machine unless TORCH_CUDA_ARCH_LIST is set.
"""
import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    name="simple_knn",
    version="0.1.0",
    description="Mean squared distance to the 3 nearest neighbours (CUDA)",
    packages=["simple_knn"],
    ext_modules=[
        CUDAExtension(
            name="simple_knn._C",
            sources=["ext.cpp", "knn/knn.cu"],
            include_dirs=[os.path.join(HERE, "knn")],
            extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-std=c++17"]},
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
