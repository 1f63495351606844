"""End to end on a procedurally generated scene: train, resume, render, metrics, bad input."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.demo_scenes import REPO, TRAIN_FLAGS, saved_params, train_inprocess

pytestmark = pytest.mark.e2e

PY = sys.executable


def run(args, cwd=REPO):
    return subprocess.run([PY] + args, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_train_layout_log_and_render_metrics(demo_scene, tmp_path):
    m = str(tmp_path / "model")
    r = run(["train.py", "-s", demo_scene, "-m", m, "--iterations", "40",
             "--test_iterations", "20", "40", "--save_iterations", "20", *TRAIN_FLAGS])
    assert r.returncode == 0, r.stderr
    for f in ("cfg_args", "cameras.json", "input.ply", "training_log.csv",
              "point_cloud/iteration_20/point_cloud.ply", "point_cloud/iteration_40/point_cloud.ply"):
        assert os.path.isfile(os.path.join(m, f)), f
    rows = list(csv.DictReader(open(os.path.join(m, "training_log.csv"))))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 41))
    evaluated = [int(r["iteration"]) for r in rows if r["psnr"] != ""]
    assert evaluated == [20, 40] and float(rows[-1]["psnr"]) > 5
    losses = [float(r["loss"]) for r in rows]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert int(rows[-1]["gaussians"]) != int(rows[0]["gaussians"])  # densification ran

    r = run(["render.py", "-m", m, "--quiet"])
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(os.path.join(m, "test", "ours_40", "renders"))) == 2
    assert len(os.listdir(os.path.join(m, "train", "ours_40", "gt"))) == 8
    r = run(["metrics.py", "-m", m])
    assert r.returncode == 0, r.stderr
    assert "PSNR" in open(os.path.join(m, "results.json")).read()


def test_resume_from_checkpoint_is_bit_identical(demo_scene, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    common = ["-s", demo_scene, "--iterations", "40", "--test_iterations", "99",
              "--save_iterations", "40", *TRAIN_FLAGS]
    train_inprocess(["-m", a, "--checkpoint_iterations", "15", *common])
    ckpt = os.path.join(a, "chkpnt15.pth")
    assert os.path.isfile(ckpt)
    train_inprocess(["-m", b, "--start_checkpoint", ckpt, *common])
    pa, pb = saved_params(a, 40), saved_params(b, 40)
    assert pa["xyz"].shape == pb["xyz"].shape
    for k in ("xyz", "features_dc", "features_rest", "opacity", "scaling", "rotation"):
        assert np.array_equal(pa[k], pb[k]), k


def test_divergence_stops_with_iteration_and_checkpoint(demo_scene, tmp_path):
    from argparse import Namespace
    import train
    from scene.trainer import TrainingDiverged
    m = str(tmp_path / "nan")
    parser, (lp, op, pp, dp, _) = train.build_parser()
    args = parser.parse_args(["-s", demo_scene, "-m", m, "--iterations", "30",
                              "--checkpoint_iterations", "10", *TRAIN_FLAGS])
    os.makedirs(m)
    open(os.path.join(m, "cfg_args"), "w").write(str(Namespace(**vars(args))))
    from scene.plugins import TrainingPlugin
    from scene.trainer import Trainer, TrainConfig
    t = Trainer(lp.extract(args), op.extract(args), pp.extract(args), dp.extract(args),
                TrainConfig(checkpoint_iterations=[10], quiet=True))

    class Poison(TrainingPlugin):
        def after_step(self, step):
            if step.iteration == 17:
                with torch.no_grad():
                    step.trainer.gaussians._opacity[:] = float("nan")
    t.add_plugin(Poison())
    with pytest.raises(TrainingDiverged) as e:
        t.train()
    msg = str(e.value)
    assert "iteration 18" in msg and "opacity" in msg and "chkpnt10.pth" in msg


@pytest.mark.parametrize("args,needle", [
    (["-s", "/nonexistent/scene", "-m", "{tmp}/o"], "/nonexistent/scene"),
    (["-s", "{tmp}", "-m", "{tmp}/o"], "sparse"),
    (["-s", "{scene}", "-m", "{file}/sub"], "not writable"),
    (["-s", "{scene}", "-m", "{tmp}/o", "--strategy", "magic"], "--strategy"),
    (["-s", "{scene}", "-m", "{tmp}/o", "--start_checkpoint", "{file}"], "--start_checkpoint"),
])
def test_bad_input_is_one_clear_line(demo_scene, tmp_path, args, needle):
    f = tmp_path / "afile"
    f.write_text("not a checkpoint")
    args = [a.format(tmp=tmp_path, scene=demo_scene, file=f) for a in args]
    r = run(["train.py", *args, "--iterations", "5", "--quiet", "--no_tensorboard"])
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert needle in lines[0]


def test_render_without_trained_model_is_one_line(tmp_path):
    r = run(["render.py", "-m", str(tmp_path)])
    assert r.returncode == 2 and "cfg_args" in r.stderr and "Traceback" not in r.stderr


def test_image_with_wrong_aspect_ratio_is_one_line(demo_scene, tmp_path):
    import shutil
    from PIL import Image
    scene = tmp_path / "scene"
    shutil.copytree(demo_scene, scene)
    first = sorted(os.listdir(scene / "images"))[0]
    Image.new("RGB", (64, 64)).save(scene / "images" / first)
    r = run(["train.py", "-s", str(scene), "-m", str(tmp_path / "o"), "--iterations", "2",
             "--quiet", "--no_tensorboard"])
    assert r.returncode == 2 and "aspect ratio" in r.stderr and first in r.stderr
    assert "Traceback" not in r.stderr
