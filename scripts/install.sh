#!/usr/bin/env bash
# Create .venv and install the pinned requirements (idempotent: a no-op when nothing changed).
# Where CUDA is available, also build our CUDA extensions in submodules/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
if .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
   && command -v nvcc >/dev/null; then
  for ext in diff-gaussian-rasterization simple-knn; do
    mod=$([ "$ext" = simple-knn ] && echo simple_knn._C || echo diff_gaussian_rasterization._C)
    if ! .venv/bin/python -c "import $mod" 2>/dev/null; then
      echo "Building submodules/$ext (CUDA)"
      .venv/bin/python -m pip install -q --no-build-isolation "./submodules/$ext"
    fi
  done
else
  # Compiles gaussian_renderer/cpp once (about a minute; cached in build/raster_cpu).
  if .venv/bin/python -W ignore -c "import sys; from gaussian_renderer import cpp_backend; sys.exit(0 if cpp_backend.is_available() else 1)" 2>/dev/null; then
    echo "No CUDA here: the C++ CPU rasterizer (build/raster_cpu) will be used."
  else
    echo "No CUDA here and the C++ CPU rasterizer did not build: the pure-PyTorch backend will be used."
  fi
fi
