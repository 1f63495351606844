"""Compiles every source of our CUDA extensions to an object file (no GPU needed).

The .cu kernels (no torch headers) go through nvcc for one architecture; the torch glue (.cpp)
goes through the host C++ compiler against the installed torch wheel's headers, as
torch.utils.cpp_extension would. Skipped when nvcc is not installed.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.cuda_cpu

ROOT = Path(__file__).resolve().parents[1] / "submodules"
RASTER = ROOT / "diff-gaussian-rasterization"
KNN = ROOT / "simple-knn"
CU_SOURCES = sorted((RASTER / "cuda_rasterizer").glob("*.cu")) + sorted((KNN / "knn").glob("*.cu"))
CPP_SOURCES = [RASTER / "rasterize_points.cpp", KNN / "ext.cpp"]
ARCH = "sm_80"


def _nvcc():
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    cand = Path(home) / "bin" / "nvcc"
    return str(cand) if cand.exists() else None


def _command(src: Path, out: Path):
    if src.suffix == ".cu":
        return [_nvcc(), "-c", "-std=c++17", "-O3", f"-arch={ARCH}", f"-I{src.parent}",
                str(src), "-o", str(out)]
    import torch
    from torch.utils.cpp_extension import include_paths
    cxx = os.environ.get("CXX", "c++")
    abi = int(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True))
    incs = [f"-I{p}" for p in include_paths()] + [f"-I{sysconfig.get_paths()['include']}",
                                                 f"-I{src.parent}"]
    return [cxx, "-c", "-std=c++20", "-O1", "-fPIC", "-DTORCH_EXTENSION_NAME=_C",
            "-DTORCH_API_INCLUDE_EXTENSION_H", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *incs,
            str(src), "-o", str(out)]


@pytest.fixture(scope="module")
def compiled():
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found: install the CUDA toolkit (or set CUDA_HOME) to check that "
                    "the extensions compile")
    cxx = os.environ.get("CXX", "c++")
    have_cxx = shutil.which(cxx) is not None
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {}
        for i, src in enumerate(CU_SOURCES + CPP_SOURCES):
            if src.suffix == ".cpp" and not have_cxx:
                continue
            jobs[src] = _command(src, Path(tmp) / f"{i}_{src.stem}.o")

        def run(cmd):
            p = subprocess.run(cmd, capture_output=True, text=True)
            return p.returncode, " ".join(cmd) + "\n" + p.stdout + p.stderr

        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            results = dict(zip(jobs, pool.map(run, jobs.values())))
    return results, have_cxx


@pytest.mark.parametrize("src", CU_SOURCES + CPP_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_compiles(compiled, src):
    results, have_cxx = compiled
    if src not in results:
        pytest.skip(f"C++ compiler not found ({os.environ.get('CXX', 'c++')}): cannot compile {src.name}")
    rc, log = results[src]
    assert rc == 0, f"compiling {src} failed:\n{log}"


def test_kernels_do_not_include_torch():
    """The kernels must build against any torch: only the glue may include torch headers."""
    for src in CU_SOURCES + sorted((RASTER / "cuda_rasterizer").glob("*.h*")) + [KNN / "knn" / "knn.h"]:
        text = src.read_text()
        assert "#include <torch" not in text and "ATen/" not in text and "c10/" not in text, src
    for src in CPP_SOURCES:
        text = src.read_text()
        assert "CUDAContext" not in text and "c10/cuda" not in text, src


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
