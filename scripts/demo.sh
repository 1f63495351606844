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
IT=$(ls -d "$OUT"/point_cloud/iteration_* | sed 's/.*iteration_//' | sort -n | tail -1)
echo "Demo done:"
echo "  test renders:  $OUT/test/ours_$IT/renders (ground truth: $OUT/test/ours_$IT/gt)"
echo "  train renders: $OUT/train/ours_$IT/renders"
echo "  model:         $OUT/point_cloud/iteration_$IT/point_cloud.ply (any 3DGS viewer)"
echo "  scores:        $OUT/results.json, per view: $OUT/per_view.json"
