"""Worker-side entry points (run inside harness.Worker): the emulated extensions installed under
their real module names, so the product's Python wrappers run on top of them unchanged."""
import functools
import sys

import torch

from tests.cuda_emu import build


@functools.lru_cache(maxsize=1)
def install():
    """Builds (cached) and registers diff_gaussian_rasterization._C and simple_knn._C."""
    for pkg in (build.RASTER, build.KNN):
        if str(pkg) not in sys.path:
            sys.path.insert(0, str(pkg))
    raster, knn = build.load()
    sys.modules["diff_gaussian_rasterization._C"] = raster
    sys.modules["simple_knn._C"] = knn
    import diff_gaussian_rasterization  # noqa: F401  (the wrapper package over the emulated _C)
    return True


def run_raster(settings_kw, inputs, metric_map):
    """Outputs and gradients of the CUDA backend on the emulated kernels (backend_run.run)."""
    install()
    from gaussian_renderer import cuda_backend
    from tests.backend_run import run
    cuda_backend._extension.cache_clear()
    assert cuda_backend.is_available()
    return run(cuda_backend.rasterize, "cpu", settings_kw, inputs, metric_map)


def dist_cuda2(points: torch.Tensor) -> torch.Tensor:
    install()
    from simple_knn._C import distCUDA2
    return distCUDA2(points)
