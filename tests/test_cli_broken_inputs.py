"""The real CLIs on the corpus of broken scenes, models and configs in tests/data/broken/
(README.md there lists them): each run exits with code 2 and exactly one line on stderr that
names the broken file, without a traceback. Runs ~20 short subprocesses, 4 at a time."""
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "broken")
SCENES = sorted(d for d in os.listdir(CORPUS) if d.startswith(("colmap_", "blender_")))
PLYS = sorted(os.listdir(os.path.join(CORPUS, "ply")))
CONFIGS = sorted(os.listdir(os.path.join(CORPUS, "edit")))


def _render_model(tmp, ply):
    """A trained-model folder over the valid corpus scene whose PLY is the broken one."""
    model = os.path.join(tmp, "model_" + ply)
    os.makedirs(os.path.join(model, "point_cloud", "iteration_1"))
    shutil.copy(os.path.join(CORPUS, "ply", ply),
                os.path.join(model, "point_cloud", "iteration_1", "point_cloud.ply"))
    with open(os.path.join(model, "cfg_args"), "w") as f:
        f.write(f"Namespace(source_path={os.path.join(CORPUS, 'valid_colmap')!r}, "
                f"model_path={model!r}, images='images', sh_degree=3, eval=False, "
                f"white_background=False, resolution=-1, device='cpu', data_device='cpu')")
    return model


def _cases(tmp):
    cases = []
    for s in SCENES:
        cases.append((f"train {s}", s, ["train.py", "-s", os.path.join(CORPUS, s),
                                         "-m", os.path.join(tmp, "out_" + s),
                                         "--iterations", "1", "--device", "cpu"]))
    for p in PLYS:
        cases.append((f"render {p}", p, ["render.py", "-m", _render_model(tmp, p), "--quiet"]))
    for c in CONFIGS:
        cases.append((f"edit {c}", c, ["edit.py", "-m", os.path.join(tmp, "no_model"),
                                       "--instruction", "x", "--config",
                                       os.path.join(CORPUS, "edit", c)]))
    return cases


def _run(case):
    name, needle, argv = case
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="default")
    p = subprocess.run([sys.executable] + argv, cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    return name, needle, p


def test_corpus_is_small():
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    assert total < 100_000, total


@pytest.mark.parametrize("unused", [None])
def test_broken_inputs_exit_2_with_one_line(tmp_path, unused):
    cases = _cases(str(tmp_path))
    assert len(cases) >= 20
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(_run, cases))
    failures = []
    for name, needle, p in results:
        lines = p.stderr.strip().splitlines()
        ok = (p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr
              and needle in lines[0] and len(lines[0]) <= 320)
        print(f"{name}: exit {p.returncode}: {p.stderr.strip()[:300]}")
        if not ok:
            failures.append((name, p.returncode, p.stderr[-1500:]))
    assert not failures, failures
