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


_SELFTEST_ARGS = {  # extern "C" signatures of selftest.cu: p = pointer, i = int, z = size_t
    "emu_copy": "ppii", "emu_rotate": "pppi", "emu_warp": "ppi", "emu_atomic": "pppi",
    "emu_stuck": "p", "emu_geometry": "p", "emu_bad_launch": "p", "emu_sort": "ppppiiipz",
    "emu_scan": "pppipz",
}


def selftest(function, *args):
    """Calls one extern "C" entry of selftest.cu; tensors are passed as device pointers and
    returned afterwards (in place), with the function's int result first."""
    import ctypes
    lib = ctypes.CDLL(str(build.build_selftest()))
    kinds = _SELFTEST_ARGS[function]
    conv = {"p": ctypes.c_void_p, "i": ctypes.c_int, "z": ctypes.c_size_t}
    fn = getattr(lib, function)
    fn.argtypes = [conv[k] for k in kinds]
    fn.restype = ctypes.c_int
    raw = [a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args]
    rc = fn(*raw)
    return (rc, *[a for a in args if isinstance(a, torch.Tensor)])


def fit_cuda(**kw):
    """backend_run.fit through the CUDA backend on the emulated kernels."""
    install()
    from gaussian_renderer import cuda_backend
    from tests.backend_run import fit
    cuda_backend._extension.cache_clear()
    return fit(cuda_backend.rasterize, "cpu", **kw)


def hard_case_grads(name):
    """Float32 gradients of the CUDA backend on the emulated kernels for one case of
    bench/raster_cases.hard_cases (bench/grad_fd.analytic_grads)."""
    install()
    from gaussian_renderer import cuda_backend
    from bench.grad_fd import analytic_grads
    from bench.raster_cases import hard_cases
    cuda_backend._extension.cache_clear()
    return analytic_grads(cuda_backend.rasterize, {c[0]: c for c in hard_cases()}[name])
