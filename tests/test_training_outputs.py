"""Logging and outputs as the reference: TensorBoard tags, cameras.json order, and a progress
bar whose counter is right when stderr is a pipe."""
import glob
import json
import os
import re
import subprocess
import sys

import pytest

from tests.demo_scenes import REPO, make_scene

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs")
    scene = make_scene(base / "demo", views=10, width=48, height=36)
    model = str(base / "m")
    r = subprocess.run([sys.executable, "train.py", "-s", scene, "-m", model, "--eval",
                        "--llffhold", "5", "--iterations", "40", "--test_iterations", "20", "40",
                        "--save_iterations", "40", "--disable_viewer"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return scene, model, r


def test_progress_bar_counter_is_current_in_a_pipe(run):
    _, _, r = run
    err = r.stderr  # the bar's stream
    counters = [int(c) for c in re.findall(r"(?<!\d)(\d+)/40 \[", err)]
    assert counters == sorted(counters) and counters[-1] == 40
    # tqdm.write of the evaluation at iteration 20 redraws the bar: it must read 20, not
    # the stale counter a `for x in bar` loop leaves between its (rare, in a pipe) prints.
    assert 20 in counters, err
    assert not re.search(r"(?<!\d)0/40 \[[^\]]*loss=", err), err  # no stale 0/40 with a loss
    assert re.search(r"40/40 \[[^\]]*(it/s|s/it)", err)


def test_no_warnings_on_the_console(run):
    _, _, r = run
    assert "warn" not in (r.stdout + r.stderr).lower(), r.stderr


def test_cameras_json_lists_test_cameras_first(run):
    scene, model, _ = run
    cams = json.load(open(os.path.join(model, "cameras.json")))
    names = sorted(os.listdir(os.path.join(scene, "images")))
    test = [n.rsplit(".", 1)[0] for i, n in enumerate(names) if i % 5 == 0]
    assert [c["img_name"] for c in cams[:len(test)]] == test
    assert [c["id"] for c in cams] == list(range(len(names)))
    assert {"width", "height", "position", "rotation", "fx", "fy"} <= set(cams[0])


def test_tensorboard_tags_as_the_reference(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    _, model, _ = run
    files = glob.glob(os.path.join(model, "events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(files[0], size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train_loss_patches/l1_loss", "train_loss_patches/total_loss", "iter_time",
                "total_points", "test/loss_viewpoint - l1_loss", "test/loss_viewpoint - psnr",
                "train/loss_viewpoint - l1_loss", "train/loss_viewpoint - psnr"):
        assert tag in tags["scalars"], tag
    assert [e.step for e in acc.Scalars("train_loss_patches/total_loss")] == list(range(1, 41))
    assert [e.step for e in acc.Scalars("test/loss_viewpoint - psnr")] == [20, 40]
    assert all(e.value > 0 for e in acc.Scalars("iter_time"))
    assert "scene/opacity_histogram" in tags["histograms"]
    renders = [t for t in tags["images"] if t.startswith("test_view_") and t.endswith("/render")]
    gts = [t for t in tags["images"] if t.startswith("test_view_") and t.endswith("/ground_truth")]
    assert len(renders) == 2 and len(gts) == 2
    assert [e.step for e in acc.Images(renders[0])] == [20, 40]
    assert [e.step for e in acc.Images(gts[0])] == [20]  # ground truth once
    assert any(t.startswith("train_view_") for t in tags["images"])
