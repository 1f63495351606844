"""--train_test_exp: per-image exposure (3x4 affine colour transform), the reference's test
protocol (fitted on the left half, scored on the right half), files and checkpoints."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from arguments import OptimizationParams
from scene.exposure import (ExposureModel, apply_exposure, hide_right_half, load_exposures,
                            right_half)
from tests.demo_scenes import REPO, make_scene
from tests.tiny import param_defaults
from utils.errors import UserError

pytestmark = pytest.mark.unit

OPT = param_defaults(OptimizationParams, iterations=100)  # the reference's exposure rates


def test_apply_matches_the_per_pixel_affine_map_in_float64():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 5, 7, generator=g)
    E = torch.randn(3, 4, generator=g)
    got = apply_exposure(img, E)
    px = img.double().permute(1, 2, 0).reshape(-1, 3)  # rows: pixels (r, g, b)
    want = (px @ E[:, :3].double() + E[:, 3].double()).reshape(5, 7, 3).permute(2, 0, 1)
    assert torch.allclose(got.double(), want, atol=1e-6)
    assert torch.equal(apply_exposure(img, torch.eye(3, 4)), img)  # identity start


def test_model_learns_a_gain_saves_json_and_restores_state(tmp_path):
    m = ExposureModel(["a", "b"], OPT, "cpu")
    target = torch.rand(3, 4, 4) * 0.5
    for it in range(1, 301):
        loss = (m.apply(target, "b") - 1.3 * target).abs().mean()
        loss.backward()
        m.step(it)
    assert abs(float(m.get("b")[0, 0].detach()) - 1.3) < 0.1
    assert torch.equal(m.get("a"), torch.eye(3, 4))  # no gradient: untouched
    assert m.optimizer.param_groups[0]["lr"] == pytest.approx(OPT.exposure_lr_final, rel=1e-6)
    m.save(str(tmp_path))
    saved = json.load(open(tmp_path / "exposure.json"))
    assert set(saved) == {"a", "b"} and np.array(saved["b"]).shape == (3, 4)
    loaded = load_exposures(str(tmp_path), "cpu")
    assert torch.equal(loaded["b"], m.get("b").detach())
    m2 = ExposureModel(["a", "b"], OPT, "cpu")
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.param, m.param)
    assert m2.optimizer.state_dict()["state"][0]["step"] == 300
    with pytest.raises(UserError):
        ExposureModel(["c"], OPT, "cpu").load_state_dict(m.state_dict())


def test_bad_exposure_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="missing"):
        load_exposures(str(tmp_path), "cpu")
    (tmp_path / "exposure.json").write_text(json.dumps({"a": [[1, 0], [0, 1]]}))
    with pytest.raises(UserError, match="3x4"):
        load_exposures(str(tmp_path), "cpu")
    (tmp_path / "exposure.json").write_text("{not json")
    with pytest.raises(UserError, match="not an exposure file"):
        load_exposures(str(tmp_path), "cpu")


def test_training_half_of_a_test_view_hides_its_right_half():
    from scene.cameras import Camera
    img = torch.rand(3, 4, 6)
    cam = hide_right_half(Camera(1, np.eye(3), np.zeros(3), 1.0, 0.8, img, "v", 0))
    assert torch.equal(cam.original_image[..., :3], img[..., :3])
    assert cam.original_image[..., 3:].abs().max() == 0
    assert cam.loss_mask[..., :3].min() == 1 and cam.loss_mask[..., 3:].max() == 0
    assert right_half(img).shape == (3, 4, 3)


# ------------------------------------------------------------------ end to end

def _gain_scene(base):
    """The demo capture with a random gain in [0.6, 1.4] per photo (a camera's auto
    exposure), the same for every run. Returns the scene and the gains by image name."""
    scene = make_scene(base / "demo", views=16, width=48, height=36)
    rng = np.random.default_rng(0)
    folder = os.path.join(scene, "images")
    gains = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        img = np.asarray(Image.open(path), dtype=np.float32)
        gains[os.path.splitext(name)[0]] = gain = rng.uniform(0.6, 1.4)
        Image.fromarray(np.clip(img * gain, 0, 255).round().astype(np.uint8)).save(path)
    return scene, gains


def _train_and_score(scene, model, extra):
    common = ["--eval", "--iterations", "300", "--test_iterations", "300", "--save_iterations",
              "300", "--quiet", "--no_tensorboard", "--disable_viewer", "--densify_from_iter",
              "50", "--densify_until_iter", "250"]
    for cmd in (["train.py", "-s", scene, "-m", model, *common, *extra],
                ["render.py", "-m", model, "--skip_train", "--quiet"]):
        r = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True,
                           timeout=1800)
        assert r.returncode == 0, r.stderr
    # Right halves for both runs: the exposure run's renders are right halves already.
    folder = os.path.join(model, "test", "ours_300")
    psnrs = []
    for name in sorted(os.listdir(os.path.join(folder, "renders"))):
        a, b = (np.asarray(Image.open(os.path.join(folder, sub, name)), np.float64) / 255
                for sub in ("renders", "gt"))
        if "--train_test_exp" not in extra:
            a, b = a[:, a.shape[1] // 2:], b[:, b.shape[1] // 2:]
        psnrs.append(-10 * np.log10(np.mean((a - b) ** 2)))
    return float(np.mean(psnrs)), folder


@pytest.mark.e2e
def test_exposure_compensation_recovers_the_gains_and_beats_plain_training(tmp_path):
    """The fitted exposures follow each photo's gain (correlation 0.984-0.988 over 8 runs of
    seeds 0-3, before and after issue 20), and the right-half test PSNR rises: by 1.5 dB at
    seed 0 here; over seeds 0-3 the gain ranged 0.6-2.5 dB (300 iterations on a tiny scene
    are noisy), so the PSNR bound is the loose one."""
    scene, gains = _gain_scene(tmp_path)
    plain, _ = _train_and_score(scene, str(tmp_path / "plain"), [])
    # The reference's exposure rates (0.01 -> 0.001) are set for 30k iterations; in 300 each
    # image is visited ~17 times, so the rates are scaled up (with them: +1.6 dB, not +2).
    exp, folder = _train_and_score(scene, str(tmp_path / "exp"),
                                   ["--train_test_exp", "--exposure_lr_init", "0.05",
                                    "--exposure_lr_final", "0.005"])
    print(f"test PSNR (right halves): plain {plain:.2f} dB, --train_test_exp {exp:.2f} dB")
    assert exp >= plain + 1.0, (plain, exp)
    with open(os.path.join(tmp_path, "exp", "exposure.json")) as f:
        fitted = json.load(f)
    names = sorted(gains)
    scale = [np.trace(np.asarray(fitted[n])[:, :3]) / 3 for n in names]
    assert np.corrcoef(scale, [gains[n] for n in names])[0, 1] > 0.95
    gt = Image.open(os.path.join(folder, "gt", "00000.png"))
    assert gt.size == (24, 36)  # render.py wrote right halves
    r = subprocess.run([sys.executable, "metrics.py", "-m", str(tmp_path / "exp")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "right half" in r.stdout, r.stdout + r.stderr
