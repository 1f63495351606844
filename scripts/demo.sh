#!/usr/bin/env bash
# Fresh machine -> trained demo: install, generate the procedural demo scene, train, render, score.
# Usage: bash scripts/demo.sh [extra train.py flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=.venv/bin/python
SCENE=demo_data/scene
OUT=demo_data/output
[ -d "$SCENE/sparse/0" ] || $PY scripts/make_demo_scene.py --out "$SCENE"
$PY train.py -s "$SCENE" -m "$OUT" --eval --iterations 1000 --densify_until_iter 800 \
    --test_iterations 500 1000 --save_iterations 1000 --checkpoint_iterations 1000 "$@"
$PY render.py -m "$OUT" --quiet
$PY metrics.py -m "$OUT"
echo "Demo done: model, renders and results.json in $OUT"
