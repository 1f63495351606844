#!/usr/bin/env bash
# One command for a lent GPU: bash bench/gpu_check.sh OUT_DIR
#
# Installs both CUDA extensions, runs the CUDA parity tests on the GPU, the renderer benchmark
# (fwd and fwd+bwd, 100k/1M/3M Gaussians at 1280x720 and 1920x1080) and trains a shared capture
# at full resolution (-i images, 7000 iterations) through --backend cuda and --backend torch.
# Every step has its own timeout (at most 8 minutes in all); each writes its log
# to OUT_DIR/<step>.log, and OUT_DIR/summary.md gets one line per step (ok / FAILED / TIMED OUT)
# plus the GPU, driver and versions. Exit status: 0 all steps ok, 1 a step failed, 2 no CUDA.
# Environment: GS_SCENES (folder of the shared captures), GS_SCENE (default juicebox_table),
# PYTHON (default .venv/bin/python; created by scripts/install.sh when missing, which needs
# the package index: on an offline GPU machine point PYTHON at an environment with CUDA torch).
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash bench/gpu_check.sh OUT_DIR" >&2
  exit 64
fi
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
mkdir -p "$1" || exit 1
OUT=$(cd "$1" && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
SCENE_NAME=${GS_SCENE:-juicebox_table}
SUMMARY=$OUT/summary.md
failed=()

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME SECONDS CMD...: runs CMD with a timeout, logs to OUT/NAME.log, records the outcome.
step() {
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  echo "== $name (limit ${limit}s): $*"
  timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  local took=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    note "- $name: ok (${took} s)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    note "- $name: TIMED OUT after ${limit} s (log: $name.log)"
    failed+=("$name")
  else
    note "- $name: FAILED with exit $rc after ${took} s (log: $name.log; last lines below)"
    tail -n 15 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$SUMMARY"
    failed+=("$name")
  fi
  return "$rc"
}

: >"$SUMMARY"
note "# GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# ---- 0. is there a GPU at all? ----------------------------------------------------------------
if [ ! -x "$PY" ]; then
  bash scripts/install.sh >"$OUT/venv.log" 2>&1 || { note "FAILED: scripts/install.sh (see venv.log)"; exit 1; }
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1 \
   || ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  note "NO CUDA AVAILABLE on $(hostname): nvidia-smi missing or failing, or torch.cuda.is_available()"
  note "is False (torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?')). Nothing was run."
  exit 2
fi
{
  echo "## Machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA (torch)', torch.version.cuda, '| cuDNN', torch.backends.cudnn.version(), '| GPU', torch.cuda.get_device_name())"
  nvcc --version 2>/dev/null | tail -n 2 || echo "nvcc: not found"
} >"$OUT/versions.txt" 2>&1
sed 's/^/    /' "$OUT/versions.txt" >>"$SUMMARY"
cat "$OUT/versions.txt"

# ---- 1. build and install both extensions ------------------------------------------------------
# Both builds in one pip call; ninja compiles in parallel (MAX_JOBS), for this GPU's arch only
# unless TORCH_CUDA_ARCH_LIST says otherwise.
MAX_JOBS=${MAX_JOBS:-$(nproc)}
export MAX_JOBS
step install 150 "$PY" -m pip install -q --no-build-isolation \
  ./submodules/diff-gaussian-rasterization ./submodules/simple-knn
step import 20 "$PY" -c "import diff_gaussian_rasterization, simple_knn._C; print('extensions import')"

# ---- 2. parity on the real GPU ----------------------------------------------------------------
step parity 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_parity.py tests/test_cuda_compile.py tests/test_knn.py \
  --junitxml="$OUT/parity.xml"

# ---- 3. renderer benchmark --------------------------------------------------------------------
step bench_renderer 55 "$PY" bench/bench_renderer.py --backends cuda --repeats 3 \
  --sizes 100000,1000000,3000000 --resolutions 1280x720,1920x1080
cp "$OUT/bench_renderer.log" "$OUT/bench_renderer.md" 2>/dev/null

# ---- 4. training on a shared capture, full resolution ------------------------------------------
SCENES=${GS_SCENES:-}
if [ -z "$SCENES" ]; then
  for cand in "$REPO/../shared/scenes" "$REPO/shared/scenes"; do
    if [ -d "$cand/$SCENE_NAME" ]; then SCENES=$cand; break; fi
  done
fi
if [ -z "$SCENES" ] || [ ! -d "$SCENES/$SCENE_NAME" ]; then
  note "- train: FAILED: capture $SCENE_NAME not found (set GS_SCENES; looked in ../shared/scenes, shared/scenes)"
  failed+=(train)
else
  for backend in cuda torch; do
    model=$OUT/train_$backend
    # 70 s (cuda) / 60 s (torch): what does not finish is reported with its last logged row.
    limit=70
    [ "$backend" = torch ] && limit=60
    if step "train_$backend" "$limit" "$PY" train.py -s "$SCENES/$SCENE_NAME" -m "$model" --eval -i images \
         --iterations 7000 --test_iterations 7000 --save_iterations 7000 --backend "$backend" \
         --device cuda --quiet; then
      step "eval_$backend" 12 bash -c "'$PY' render.py -m '$model' --skip_train --quiet && '$PY' metrics.py -m '$model'"
    fi
    if [ -f "$model/training_log.csv" ]; then
      note "    last logged row of $model/training_log.csv: $(tail -n 1 "$model/training_log.csv")"
    fi
    if [ -f "$model/results.json" ]; then
      note "    results.json: $(tr -d '\n ' <"$model/results.json")"
    fi
  done
fi

# ---- verdict ------------------------------------------------------------------------------------
if [ ${#failed[@]} -eq 0 ]; then
  note "ALL STEPS OK"
  exit 0
fi
note "FAILED STEPS: ${failed[*]}"
exit 1
