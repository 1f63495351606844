"""Fuzzing of every reader of user input (tests/fuzz_readers.py), in a subprocess whose address
space is capped at its size after imports + 1 GB, with a fixed hypothesis seed and budget
(~3,400 inputs; about a minute on 2 cores). Also the corrupt-file fuzz of test_colmap_reader
and test_ply_io, which use plain random mutations."""
import json
import os
import subprocess
import sys

import pytest

from tests.fuzz_readers import BUDGETS

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_reader_loads_or_gives_one_clean_line(tmp_path):
    out = tmp_path / "totals.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz_readers", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(proc.stdout)  # the totals table (pytest -s shows it)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    totals = json.loads(out.read_text())
    assert set(totals) == set(BUDGETS)
    for name, t in totals.items():
        assert t["other"] == 0, (name, t["others"])
        # hypothesis may stop a little early when it runs out of distinct inputs
        assert t["inputs"] >= 0.9 * BUDGETS[name], (name, t)
        assert t["inputs"] == t["loads"] + t["clean_errors"]
        # both sides exercised: broken inputs that still load (and pass the post-load
        # finiteness checks) and inputs refused with a clean line
        assert t["loads"] > 0 and t["clean_errors"] > 0, (name, t)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_guards_catch_a_hang_and_a_big_allocation():
    """The harness's own guards are live: a call that sleeps past the hang limit and one that
    allocates 2 GB under the address-space cap both count as "other"."""
    code = ("import numpy as np, time\n"
            "from tests import fuzz_readers as fr\n"
            "fr.HANG_S = 0.5\n"
            "fr.limit_memory()\n"
            "print(fr.outcome(lambda: time.sleep(5), [])[0])\n"
            "print(fr.outcome(lambda: np.ones(2 ** 31, np.uint8).sum() and None, [])[1])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    hang, memory = proc.stdout.split("\n")[:2]
    assert hang == "other"
    assert memory.startswith("MemoryError"), memory
