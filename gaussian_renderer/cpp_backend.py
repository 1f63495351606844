"""`cpp` backend: the whole rasterizer in C++ on the CPU (docs/RASTERIZER.md contract).

The per-Gaussian stage is the CUDA extension's own host/device code (projection, EWA
covariance, SH and their backward, from submodules/diff-gaussian-rasterization), so the parity
tests of this backend against the PyTorch oracle also check that code; the tile binning and
blending (`cpp/raster_cpu.cpp`) are CPU-specific, with true early termination. The extension is
compiled on first use by torch.utils.cpp_extension and cached under `build/raster_cpu`
(scripts/install.sh triggers the build so that training does not pause). Where the checkout is
not writable (a shared install, cluster compute nodes) the build goes to a per-user cache,
`${XDG_CACHE_HOME:-~/.cache}/gaussian-splatting/raster_cpu-<cpu>`, one per CPU model since
the build is -march=native; `GS_CPP_BUILD_DIR` names another folder. Without a working C++
toolchain `is_available()` is False and `auto` keeps the PyTorch backend.
"""
import functools
import hashlib
import os
import platform
import shutil
import sys
import warnings
from typing import Optional

import torch

from gaussian_renderer.settings import RasterOutput, RasterSettings, frustum_limits

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
_SRC = os.path.join(_HERE, "cpp", "raster_cpu.cpp")
_SHARED = os.path.join(_ROOT, "submodules", "diff-gaussian-rasterization", "cuda_rasterizer")
_BUILD = os.path.join(_ROOT, "build", "raster_cpu")


def _writable(folder: str) -> bool:
    """Whether `folder` exists writable, or could be created in a writable parent."""
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)


def _cpu_key() -> str:
    """The CPU model and features a -march=native build depends on, hashed."""
    text = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            text += "".join(ln for ln in f if ln.startswith(("model name", "flags")))[:4096]
    except OSError:
        pass
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def build_dir() -> str:
    """Where the extension is compiled: GS_CPP_BUILD_DIR, else the checkout's build/raster_cpu
    when writable, else a per-user, per-CPU cache folder."""
    if os.environ.get("GS_CPP_BUILD_DIR"):
        return os.environ["GS_CPP_BUILD_DIR"]
    if _writable(_BUILD):
        return _BUILD
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "gaussian-splatting", f"raster_cpu-{_cpu_key()}")


def ninja_env() -> Optional[dict]:
    """The environment a build needs when pip's `ninja` sits in a venv that was not activated
    (cpp_extension looks for ninja on PATH): this environment with the venv's bin first on
    PATH. None when ninja is on PATH already, or the venv has none."""
    venv_bin = os.path.dirname(sys.executable)
    if shutil.which("ninja") is not None or not os.path.exists(os.path.join(venv_bin, "ninja")):
        return None
    env = dict(os.environ)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    return env


_NAME = "gs_raster_cpu"
_BUILD_IN_CHILD = ("import json, sys\n"
                   "from torch.utils.cpp_extension import load\n"
                   "load(**json.loads(sys.argv[1]))\n")


def _build_in_child(build_kwargs: dict, env: dict):
    """Build with `env` in a child process (this process's os.environ is never edited), then
    import the module it built."""
    import importlib.util
    import json
    import subprocess
    r = subprocess.run([sys.executable, "-c", _BUILD_IN_CHILD, json.dumps(build_kwargs)],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr or "").strip().splitlines() if ln.strip()]
        raise RuntimeError(lines[-1] if lines else f"build exited with {r.returncode}")
    path = os.path.join(build_kwargs["build_directory"], _NAME + ".so")
    spec = importlib.util.spec_from_file_location(_NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=1)  # a real cache: the built extension, loaded once per process
def _extension():
    """Build (once; cached on disk) and import the extension; None when that fails."""
    if os.environ.get("GS_CPP", "1") in ("0", "false", "no"):
        return None
    try:
        from torch.utils.cpp_extension import load
        folder = build_dir()
        os.makedirs(folder, exist_ok=True)
        # -march=native: the build serves this machine (the per-user cache is per CPU); the
        # pixel loops are written for SIMD. -ffp-contract=off: forward and backward must make
        # bit-identical pair decisions. -fopenmp: at::parallel_for is inline OpenMP.
        flags = ["-O3", "-std=c++17", "-march=native", "-ffp-contract=off", "-fopenmp"]
        kwargs = dict(name=_NAME, sources=[_SRC], extra_include_paths=[_SHARED],
                      build_directory=folder, extra_cflags=flags, extra_ldflags=["-fopenmp"],
                      verbose=False)
        env = ninja_env()
        return load(**kwargs) if env is None else _build_in_child(kwargs, env)
    except Exception as e:  # no compiler or ninja, read-only checkout, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        warnings.warn(f"C++ CPU rasterizer unavailable ({type(e).__name__}: {first}); "
                      "using the PyTorch backend")
        return None


def is_available() -> bool:
    return _extension() is not None


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means3D, means2D, opacities, shs, colors_precomp, scales, rotations,
                cov3D_precomp, frame, metric):
        outs = _extension().forward(means3D, opacities, shs, *frame[:1], colors_precomp, scales,
                                    rotations, cov3D_precomp, *frame[1:], metric)
        color, depth, alpha, radii, counts, invdepth = outs[:6]
        ctx.frame = frame
        ctx.save_for_backward(means3D, opacities, shs, colors_precomp, scales, rotations,
                              cov3D_precomp, radii, *outs[6:])
        ctx.mark_non_differentiable(radii, counts)
        return color, depth, alpha, radii, counts, invdepth

    @staticmethod
    def backward(ctx, g_color, g_depth, g_alpha, _g_radii, _g_counts, g_invdepth):
        means3D, opacities, shs, colors_precomp, scales, rotations, cov3D, *saved = \
            ctx.saved_tensors
        frame = ctx.frame
        H, W = frame[7], frame[8]

        def grad(g, shape):
            return g.contiguous().float() if g is not None else torch.zeros(shape)

        d = _extension().backward(means3D, opacities, shs, frame[0], colors_precomp, scales,
                                  rotations, cov3D, *frame[1:], saved, grad(g_color, (3, H, W)),
                                  grad(g_depth, (1, H, W)), grad(g_alpha, (1, H, W)),
                                  grad(g_invdepth, (1, H, W)))
        d_means3D, d_means2D, d_opac, d_shs, d_colors, d_scales, d_rot, d_cov = d
        given = lambda t, g: g if t.numel() else None  # noqa: E731
        return (d_means3D, d_means2D, d_opac, given(shs, d_shs), given(colors_precomp, d_colors),
                given(scales, d_scales), given(rotations, d_rot), given(cov3D, d_cov), None, None)


def rasterize(settings: RasterSettings, means3D, means2D, opacities, shs=None,
              colors_precomp=None, scales=None, rotations=None, cov3D_precomp=None,
              metric_map: Optional[torch.Tensor] = None) -> RasterOutput:
    s = settings
    if means3D.device.type != "cpu" or means3D.dtype != torch.float32:
        raise ValueError("the cpp backend renders float32 CPU tensors")
    if (shs is None) == (colors_precomp is None):
        raise ValueError("pass exactly one of shs / colors_precomp")
    if cov3D_precomp is None and (scales is None or rotations is None):
        raise ValueError("pass scales and rotations, or cov3D_precomp")
    if cov3D_precomp is not None:
        scales = rotations = None
    frame = (int(s.sh_degree), s.bg.float().contiguous(), s.viewmatrix.float().contiguous(),
             s.projmatrix.float().contiguous(), s.campos.float().contiguous(), float(s.tanfovx),
             float(s.tanfovy), int(s.image_height), int(s.image_width), float(s.scale_modifier),
             float(s.mult), list(frustum_limits(s)), bool(getattr(s, "antialiasing", False)))
    metric = (metric_map.reshape(-1).to(device="cpu", dtype=torch.bool).contiguous()
              if metric_map is not None else torch.zeros(0, dtype=torch.bool))
    empty = torch.empty(0)
    color, depth, alpha, radii, counts, invdepth = _Rasterize.apply(
        means3D.contiguous(), means2D, opacities.contiguous(),
        *(t.contiguous() if t is not None else empty
          for t in (shs, colors_precomp, scales, rotations, cov3D_precomp)), frame, metric)
    return RasterOutput(color, depth, alpha, radii, counts, invdepth)
