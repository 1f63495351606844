"""training_log.csv: buffered, append-only, and an evaluated row is complete when written."""
import csv

import pytest

from scene.training_log import COLUMNS, TrainingLog

pytestmark = pytest.mark.unit


def test_evaluation_on_a_flush_boundary_is_recorded(tmp_path):
    log = TrainingLog(str(tmp_path), flush_every=10)
    for it in range(1, 21):
        log.add(iteration=it, loss=0.5, gaussians=7)
        if it == 10:
            log.set_last(psnr="21.5")
        log.maybe_flush()
    log.flush()
    rows = list(csv.DictReader(open(tmp_path / "training_log.csv")))
    assert list(rows[0].keys()) == COLUMNS
    assert [r["iteration"] for r in rows] == [str(i) for i in range(1, 21)]
    assert rows[9]["psnr"] == "21.5" and rows[10]["psnr"] == ""


def test_reopening_appends(tmp_path):
    for start in (1, 3):
        log = TrainingLog(str(tmp_path))
        log.add(iteration=start)
        log.add(iteration=start + 1)
        log.flush()
    rows = list(csv.DictReader(open(tmp_path / "training_log.csv")))
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
