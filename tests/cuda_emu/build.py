"""Builds our CUDA extensions for the CPU through the emulation header, with AddressSanitizer.

Each `.cu` source is copied to build/cuda_emu/src with two mechanical changes: `#include
"cuda_emu.h"` in front, and the launch syntax `k<<<g, b>>>(args)` spelled
`::cuda_emu::Launch(k, g, b)(args)` (the host compiler has no `<<<`). A `#line` directive keeps
compiler and sanitizer messages pointing at the original file and line. The torch glue is
compiled unchanged after tests/cuda_emu/glue_prelude.h. `include/` shadows <cuda_runtime.h> and
CUB. Builds are cached by torch.utils.cpp_extension (ninja) in build/cuda_emu/<name>.

The modules must be imported by a process that has libasan preloaded (harness.py does that).
"""
import functools
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD = ROOT / "build" / "cuda_emu"
RASTER = ROOT / "submodules" / "diff-gaussian-rasterization"
KNN = ROOT / "submodules" / "simple-knn"
RUNTIME = (HERE / "runtime.cpp", HERE / "launch.cpp")

_LAUNCH = re.compile(r"\b([A-Za-z_]\w*)\s*<<<")
ASAN_FLAGS = ["-fsanitize=address", "-fno-omit-frame-pointer"]
CFLAGS = ["-O2", "-g1", "-std=c++17", "-pthread", *ASAN_FLAGS]
# The emulator's scheduler is trusted code on the hot path of every barrier and shuffle: not
# instrumented, but it still tells ASan about every stack switch (CUDA_EMU_ASAN).
RUNTIME_CFLAGS = ["-O2", "-g1", "-std=c++17", "-pthread", "-DCUDA_EMU_ASAN=1"]
# The glue only converts tensors to pointers: unoptimised (it is the slow compile: torch's headers)
# but instrumented like the kernels.
GLUE_CFLAGS = ["-O0", "-std=c++17", *ASAN_FLAGS]
LDFLAGS = ["-pthread", *ASAN_FLAGS]


def compiler() -> str:
    return os.environ.get("CXX", "c++")


def asan_runtime() -> str:
    """Absolute path of the compiler's shared ASan runtime (to LD_PRELOAD), or ''."""
    if shutil.which(compiler()) is None:
        return ""
    out = subprocess.run([compiler(), "-print-file-name=libasan.so"], capture_output=True,
                         text=True).stdout.strip()
    return out if os.path.isabs(out) and os.path.exists(out) else ""


def rewrite_launches(text: str) -> str:
    """`k<<<g, b>>>(args)` -> `::cuda_emu::Launch(k, g, b)(args)`; nothing else changes."""
    return _LAUNCH.sub(r"::cuda_emu::Launch(\1, ", text).replace(">>>", ")")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def emulated_source(src: Path) -> Path:
    """The build copy of one source: a kernel file gets the emulation header and launch
    rewrite, a torch glue file the glue prelude; the original text follows a #line."""
    out = BUILD / "src" / (src.parent.name + "__" + src.stem + ".cpp")
    if src.suffix == ".cu":
        head, body = '#include "cuda_emu.h"', rewrite_launches(src.read_text())
    else:
        head, body = '#include "glue_prelude.h"', src.read_text()
    _write_if_changed(out, f'{head}\n#line 1 "{src}"\n{body}')
    return out


def _digest(paths, flags) -> str:
    h = hashlib.sha256(" ".join(flags).encode())
    for p in paths:
        h.update(str(p).encode() + b"\0" + Path(p).read_bytes())
    return h.hexdigest()[:16]


def _compile_kernel(src: Path, include_dirs) -> Path:
    """One emulated kernel source (or the runtime) -> an ASan object, cached by content: the
    name carries a digest of the source, every header it can include and the flags."""
    cpp = emulated_source(src) if src.suffix == ".cu" else src
    incs = [HERE / "include", HERE, *include_dirs]
    headers = sorted(h for d in incs for h in Path(d).glob("**/*") if h.suffix in (".h", ".cuh"))
    flags = [*(RUNTIME_CFLAGS if src in RUNTIME else CFLAGS), "-fPIC", *(f"-I{d}" for d in incs)]
    obj = BUILD / "obj" / f"{cpp.stem}-{_digest([cpp, *headers], flags)}.o"
    if not obj.exists():
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(f".{os.getpid()}.tmp")
        r = subprocess.run([compiler(), "-c", *flags, str(cpp), "-o", str(tmp)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"compiling {src} for the CUDA emulation failed:\n{r.stderr[-4000:]}")
        os.replace(tmp, obj)
    return obj


def _glue_source() -> Path:
    """Both extensions' torch glue in one translation unit (torch's headers are parsed once):
    two PYBIND11_MODULEs, gsr_emu (the rasterizer) and gsr_emu_knn, in one library."""
    parts = ['#include "glue_prelude.h"']
    for name, src in (("gsr_emu", RASTER / "rasterize_points.cpp"), ("gsr_emu_knn", KNN / "ext.cpp")):
        parts += ["#undef TORCH_EXTENSION_NAME", f"#define TORCH_EXTENSION_NAME {name}",
                  f'#line 1 "{src}"', src.read_text()]
    out = BUILD / "src" / "glue.cpp"
    _write_if_changed(out, "\n".join(parts) + "\n")
    return out


@functools.lru_cache(maxsize=1)
def load():
    """(rasterizer `_C`, simple_knn `_C`), emulated; built on first use, cached in build/."""
    from torch.utils.cpp_extension import load as torch_load
    if shutil.which("ninja") is None:  # a venv's pip ninja when the venv is not activated
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    kernels = [(s, [RASTER / "cuda_rasterizer"]) for s in sorted((RASTER / "cuda_rasterizer").glob("*.cu"))]
    kernels += [(s, [KNN / "knn"]) for s in sorted((KNN / "knn").glob("*.cu"))]
    kernels += [(r, []) for r in RUNTIME]
    build_dir = BUILD / "glue"
    build_dir.mkdir(parents=True, exist_ok=True)
    glue = _glue_source()
    # The kernels compile while torch.utils.cpp_extension builds the (slower) glue; new object
    # names change the link line, which makes ninja relink.
    with ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 1))) as pool:
        objs = pool.map(lambda k: _compile_kernel(*k), kernels)
        objs = [str(o) for o in objs]
    raster = torch_load(name="gsr_emu", sources=[str(glue)],
                        extra_include_paths=[str(HERE), str(RASTER), str(KNN)],
                        extra_cflags=GLUE_CFLAGS, extra_ldflags=[*objs, *LDFLAGS],
                        build_directory=str(build_dir), verbose=False)
    spec = importlib.util.spec_from_file_location("gsr_emu_knn", raster.__file__)
    knn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(knn)
    return raster, knn


def build_selftest() -> Path:
    """The emulator's own test kernels (selftest.cu) as a plain shared library for ctypes."""
    objs = [_compile_kernel(s, []) for s in (HERE / "selftest.cu", *RUNTIME)]
    lib = BUILD / "selftest" / f"libselftest-{_digest(objs, LDFLAGS)}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        r = subprocess.run([compiler(), "-shared", *map(str, objs), *LDFLAGS, "-o", str(tmp)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("linking the emulator self-test failed:\n" + r.stderr[-4000:])
        os.replace(tmp, lib)
    return lib
