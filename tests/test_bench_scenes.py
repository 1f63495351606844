"""bench/bench_scenes.py end to end on a tiny generated scene: it trains, renders, scores and
prints a table row whose numbers come from the run's own results.json and PLY."""
import json
import subprocess
import sys

import pytest

from scene.strategies import STRATEGIES
from tests.demo_scenes import REPO, make_scene, saved_params

pytestmark = pytest.mark.e2e


def test_bench_scenes_row_matches_outputs(tmp_path):
    scenes = tmp_path / "scenes"
    make_scene(scenes / "demo", views=8, width=48, height=36)
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, "bench/bench_scenes.py", "--out", str(out), "--scenes",
                        "demo", "--scenes_dir", str(scenes), "--images", "images",
                        "--iterations", "20", "--extra", "--llffhold 4"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [l for l in r.stdout.splitlines() if l.startswith("| demo |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    results = json.loads((out / "demo" / "results.json").read_text())["ours_20"]
    assert cells[2] == "20"
    assert abs(float(cells[3]) - results["PSNR"]) < 0.006
    saved = saved_params(str(out / "demo"), 20)["xyz"].shape[0]
    assert saved > 0 and int(cells[6]) == saved  # the final model's Gaussians
    assert float(cells[7]) > 0
    assert (out / "demo" / "test" / "ours_20" / "renders").is_dir()


def test_bench_scenes_missing_folder_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "bench/bench_scenes.py", "--scenes_dir",
                        str(tmp_path / "nope")], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "nope" in r.stderr


def test_bench_strategies_one_row_per_strategy_and_init(tmp_path):
    scenes = tmp_path / "scenes"
    make_scene(scenes / "demo", views=8, width=48, height=36)
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, "bench/bench_strategies.py", "--out", str(out),
                        "--scenes", "demo", "--scenes_dir", str(scenes), "--images", "images",
                        "--iterations", "10", "--extra", "--llffhold 4"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in r.stdout.splitlines()
            if l.startswith("| demo |")]
    assert sorted((c[1], c[2]) for c in rows) == sorted(
        (s, i) for s in STRATEGIES for i in ("sfm", "random100"))
    for strategy, init, cells in ((c[1], c[2], c) for c in rows):
        run = out / f"demo_{strategy}_{init}"
        results = json.loads((run / "results.json").read_text())["ours_10"]
        assert abs(float(cells[4]) - results["PSNR"]) < 0.006
        ply = (run / "input.ply").read_bytes()[:400].decode("ascii", "replace")
        assert ("element vertex 100\n" in ply) == (init == "random100")
