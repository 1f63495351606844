"""edit.py end to end on a tiny trained scene: a tiny random InstructPix2Pix pipeline loaded
through the real from_pretrained path, every artifact, resume equivalence, a SIGKILL in the
middle of a round, --from_round, the modes, prompt RoI with a fake VLM, and bad inputs."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.demo_scenes import make_scene

# diffusers' Euler scheduler trips a NumPy 2 deprecation notice; not ours to fix.
pytestmark = [pytest.mark.e2e,
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H = 64, 48
BOX = "0:18,8,50,40"
RECOLOR = ["--editor", "recolor:1.0,0.15,0.15", "--instruction", "make it red"]


def edit(argv):
    import edit as edit_cli
    return edit_cli.main(list(argv) + ["--quiet"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A demo scene and a model trained on it for a few hundred iterations."""
    base = tmp_path_factory.mktemp("edit_scene")
    scene = make_scene(base / "scene", views=8, width=W, height=H)
    model = str(base / "model")
    import train
    train.main(["-s", scene, "-m", model, "--iterations", "200", "--densify_from_iter", "20",
                "--densification_interval", "20", "--densify_until_iter", "150",
                "--test_iterations", "999", "--quiet", "--no_tensorboard"])
    return model


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from tests.tiny_pix2pix import build_tiny_clip, build_tiny_pix2pix
    base = tmp_path_factory.mktemp("tiny_models")
    return build_tiny_pix2pix(str(base / "ip2p")), build_tiny_clip(str(base / "clip"))


def params(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]["params"]


def assert_same_params(a, b):
    pa, pb = params(a), params(b)
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k


# ------------------------------------------------------------------ the pix2pix run

def test_two_rounds_with_tiny_pix2pix_write_every_artifact(trained, tiny_models, tmp_path):
    from scene.ply_io import read_gaussian_ply
    ip2p, clip = tiny_models
    out = str(tmp_path / "out")
    state = edit(["-m", trained, "--output", out, "--instruction", "make the juice box red",
                  "--rounds", "2", "--round_iters", "20", "--refine_iters", "5",
                  "--roi_box", BOX, "--pix2pix_model", ip2p, "--diffusion_steps", "2",
                  "--diffusion_size", "64", "--clip_model", clip, "--edit_fraction", "0.5"])
    assert state["completed_rounds"] == 2
    for f in ("config.yaml", "training_state.yaml", "manifest.json", "training_log.csv",
              "checkpoints/model_round_001.pt", "checkpoints/model_round_002.pt",
              "checkpoints/model_latest.pt"):
        assert os.path.isfile(os.path.join(out, f)), f
    assert yaml.safe_load(open(os.path.join(out, "config.yaml")))["pix2pix_model"] == ip2p
    st = yaml.safe_load(open(os.path.join(out, "training_state.yaml")))
    assert st["completed_rounds"] == 2 and st["iteration"] == 50
    assert [e["last_iteration"] for e in st["rounds"]] == [25, 50]
    for r in (1, 2):
        rd = os.path.join(out, "rounds", f"round_{r:03d}")
        views = st["rounds"][r - 1]["views"]
        assert len(views) == 4  # --edit_fraction 0.5 of 8 views
        for v in views:
            for kind in ("pre_edit", "edited", "post_opt"):
                im = Image.open(os.path.join(rd, "renders", f"{kind}_view_{v:03d}.png"))
                assert im.size == (W, H) and im.mode == "RGB"
            for kind in ("mask", "visibility"):
                im = Image.open(os.path.join(rd, "roi", f"{kind}_view_{v:03d}.png"))
                assert im.size == (W, H)
        w = np.load(os.path.join(rd, "roi", "gaussian_weights.npy"))
        ply = read_gaussian_ply(os.path.join(out, "point_cloud", f"round_{r:03d}",
                                             "point_cloud.ply"))
        assert w.shape == (ply["xyz"].shape[0],) and 0 <= w.min() and w.max() <= 1
        assert 0 < (w > 0.5).sum() < len(w)
        m = yaml.safe_load(open(os.path.join(out, "metrics", f"round_{r:03d}.yaml")))
        assert m["round"] == r and set(m["timings_s"]) >= {"render", "diffusion", "optimisation",
                                                            "refine", "metrics"}
        assert "save" in st["rounds"][r - 1]["timings_s"]
        assert m["mean"]["roi_psnr"] > 5 and -1 <= m["clip_direction"] <= 1
        assert m["mean"]["roi_lpips"] is None or m["mean"]["roi_lpips"] >= 0
        assert m["lpips_note"] is None or "lpips" in m["lpips_note"]
        assert m["consistency"]["roi_colour_spread_renders"] >= 0
        ck = torch.load(os.path.join(out, "checkpoints", f"model_round_{r:03d}.pt"),
                        weights_only=True)
        assert ck["round"] == r and ck["model"]["optimizer"] is not None and "rng" in ck
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["instruction"] == "make the juice box red" and man["mode"] == "restyle"
    assert man["editor"]["steps"] == 2 and man["models"]["pix2pix"]["files"]
    assert "unet/config.json" in man["models"]["pix2pix"]["files"]
    assert man["models"]["clip"]["files"] and man["packages"]["diffusers"]
    assert len(man["input_model"]["ply_sha256"]) == 64
    assert [r["round"] for r in man["rounds"]] == [1, 2]
    assert man["rounds"][1]["iterations"] == {"first": 26, "last": 50, "optimisation": 20,
                                              "refine": 5}


def test_pix2pix_editor_is_seeded_and_sized(tiny_models):
    from editing.pix2pix import Pix2PixEditor
    ed = Pix2PixEditor(tiny_models[0], steps=2, size=64).load()
    img = torch.rand(3, 30, 50)
    a, b, c = ed(img, "make it red", 3), ed(img, "make it red", 3), ed(img, "make it red", 4)
    assert a.shape == img.shape and torch.equal(a, b) and not torch.equal(a, c)


# ------------------------------------------------------------------ resume

ITERS = "120"


@pytest.fixture(scope="module")
def straight(trained, tmp_path_factory):
    """2 uninterrupted rounds with the deterministic editor; the reference for resume."""
    out = str(tmp_path_factory.mktemp("straight") / "out")
    edit(["-m", trained, "--output", out, *RECOLOR, "--rounds", "2", "--round_iters", ITERS,
          "--roi_box", BOX])
    return out


def test_one_round_then_resume_equals_two_rounds(trained, straight, tmp_path):
    out = str(tmp_path / "out")
    edit(["-m", trained, "--output", out, *RECOLOR, "--rounds", "1", "--round_iters", ITERS,
          "--roi_box", BOX])
    assert_same_params(os.path.join(straight, "checkpoints", "model_round_001.pt"),
                       os.path.join(out, "checkpoints", "model_latest.pt"))
    state = edit(["-m", trained, "--output", out, "--resume", "--rounds", "2"])
    assert state["completed_rounds"] == 2
    assert_same_params(os.path.join(straight, "checkpoints", "model_latest.pt"),
                       os.path.join(out, "checkpoints", "model_latest.pt"))
    # A finished run resumes to nothing; a fresh run refuses to overwrite it.
    assert edit(["-m", trained, "--output", out, "--resume"])["completed_rounds"] == 2


def test_from_round_restarts_and_discards_later_rounds(trained, straight, tmp_path):
    import shutil
    out = str(tmp_path / "copy")
    shutil.copytree(straight, out)
    os.makedirs(os.path.join(out, "rounds", "round_003"))  # debris of a discarded branch
    state = edit(["-m", trained, "--output", out, "--from_round", "1"])
    assert state["completed_rounds"] == 2 and not os.path.exists(os.path.join(out, "rounds",
                                                                              "round_003"))
    assert_same_params(os.path.join(straight, "checkpoints", "model_latest.pt"),
                       os.path.join(out, "checkpoints", "model_latest.pt"))


def test_sigkill_mid_round_then_resume_loses_nothing(trained, straight, tmp_path):
    out = str(tmp_path / "killed")
    cmd = [sys.executable, "edit.py", "-m", trained, "--output", out, *RECOLOR, "--rounds", "2",
           "--round_iters", ITERS, "--roi_box", BOX, "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    state_file = os.path.join(out, "training_state.yaml")
    log_file = os.path.join(out, "training_log.csv")

    def logged_iterations():
        if not os.path.isfile(log_file):
            return 0
        rows = open(log_file).read().split()[1:]
        return int(rows[-1].split(",")[0]) if rows else 0

    # Kill as soon as round 2's optimisation has logged rows (the log is flushed every 100
    # iterations: at 220 of 240), not after a fixed sleep that a fast machine outruns.
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if logged_iterations() > int(ITERS):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the edit finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    st = yaml.safe_load(open(state_file))
    assert st["completed_rounds"] == 1
    assert not os.path.exists(os.path.join(out, "checkpoints", "model_round_002.pt"))
    state = edit(["-m", trained, "--output", out, "--resume"])
    assert state["completed_rounds"] == 2
    assert_same_params(os.path.join(straight, "checkpoints", "model_latest.pt"),
                       os.path.join(out, "checkpoints", "model_latest.pt"))
    its = [int(r[0]) for r in (line.split(",") for line in
                                open(os.path.join(out, "training_log.csv")).read().split()[1:])]
    assert its == list(range(1, 2 * int(ITERS) + 1))  # the killed round's rows were dropped


def test_sigkill_during_a_round_checkpoint_write_then_resume(trained, straight, tmp_path):
    """Killed while model_round_002.pt is half written: resume removes the temporary file
    (.tmp_*model_round_002.pt) and ends where the uninterrupted run did."""
    import glob
    from tests.test_kill_resume import kill_during_save
    out = str(tmp_path / "killed")
    kill_during_save("edit", "model_round_002.pt", str(tmp_path / "writing"),
                     ["-m", trained, "--output", out, *RECOLOR, "--rounds", "2",
                      "--round_iters", ITERS, "--roi_box", BOX, "--quiet"])
    assert glob.glob(os.path.join(out, "checkpoints", ".tmp_*model_round_002.pt"))
    state = edit(["-m", trained, "--output", out, "--resume"])
    assert state["completed_rounds"] == 2
    assert glob.glob(os.path.join(out, "**", ".tmp_*"), recursive=True) == []
    assert_same_params(os.path.join(straight, "checkpoints", "model_latest.pt"),
                       os.path.join(out, "checkpoints", "model_latest.pt"))
    its = [int(r[0]) for r in (line.split(",") for line in
                                open(os.path.join(out, "training_log.csv")).read().split()[1:])]
    assert its == list(range(1, 2 * int(ITERS) + 1))


def test_locality_of_a_boxed_deterministic_edit(straight):
    """The deterministic recolor confined to a RoI box: the rest of the scene stays put while
    the RoI moves towards the target."""
    m1 = yaml.safe_load(open(os.path.join(straight, "metrics", "round_001.yaml")))
    m2 = yaml.safe_load(open(os.path.join(straight, "metrics", "round_002.yaml")))
    for m in (m1, m2):
        assert m["mean"]["outside_psnr_to_original"] > 35
        assert abs(m["mean"]["outside_psnr_change_db"]) < 0.5
    assert m2["mean"]["roi_psnr"] > 17
    assert m1["roi"]["gaussians_in_roi"] > 0 and not m1["roi"]["whole_image"]


# ------------------------------------------------------------------ the training log

EDIT_TERMS = ("roi_photo", "roi_dssim", "preserve", "opacity", "consistency", "position", "scale")


def test_training_log_has_the_edit_terms_and_round_labels(trained, tmp_path):
    """Each of the edit objective's terms gets a term_* column; per row they add up to the
    loss; rows are labelled by round and by refinement."""
    import csv
    out = str(tmp_path / "log")
    edit(["-m", trained, "--output", out, *RECOLOR, "--rounds", "2", "--round_iters", "6",
          "--refine_iters", "3", "--roi_box", BOX])
    with open(os.path.join(out, "training_log.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [f"term_{t}" for t in EDIT_TERMS]
    assert set(columns) <= set(rows[0])
    # Every value is written with 6 decimals, so the rounded terms and the rounded loss
    # differ by at most half a unit in the last place each.
    tolerance = (len(columns) + 1) * 0.5e-6 + 1e-9
    for row in rows:
        total = sum(float(row[c]) for c in columns)
        assert abs(total - float(row["loss"])) <= tolerance, row
    assert any(float(row["term_preserve"]) > 0 for row in rows)
    phases = [(int(row["iteration"]), row["phase"]) for row in rows]
    assert phases == ([(i, "round_1") for i in range(1, 7)] +
                      [(i, "refine_1") for i in range(7, 10)] +
                      [(i, "round_2") for i in range(10, 16)] +
                      [(i, "refine_2") for i in range(16, 19)])


# ------------------------------------------------------------------ modes and prompt RoI

@pytest.mark.parametrize("mode", ["replace", "remove"])
def test_geometry_modes_change_the_gaussians_in_the_roi(trained, tmp_path, mode):
    from scene.ply_io import read_gaussian_ply
    out = str(tmp_path / mode)
    edit(["-m", trained, "--output", out, *RECOLOR, "--mode", mode, "--rounds", "1",
          "--round_iters", "40", "--roi_box", BOX, "--densify_budget", "50",
          "--remove_decay", "0.1"])
    m = yaml.safe_load(open(os.path.join(out, "metrics", "round_001.yaml")))
    assert len(m["events"]) == 3
    if mode == "replace":
        assert sum(e["densified"] for e in m["events"]) > 0
        assert m["gaussians"]["end"] > m["gaussians"]["start"]
    else:
        assert sum(e["pruned"] for e in m["events"]) > 0
    w = np.load(os.path.join(out, "rounds", "round_001", "roi", "gaussian_weights.npy"))
    ply = read_gaussian_ply(os.path.join(out, "point_cloud", "round_001", "point_cloud.ply"))
    assert w.shape[0] == ply["xyz"].shape[0] == m["gaussians"]["end"]


def test_roi_prompt_uses_the_grounding_adapter(trained, tmp_path, monkeypatch):
    import editing.roi as roi
    calls = []

    def fake_ground(images, prompt, model_path, device):
        calls.append((len(images), prompt, model_path))
        return [[[18.0, 8.0, 50.0, 40.0]] if i == 0 else [] for i in range(len(images))]

    monkeypatch.setattr(roi, "ground_boxes", fake_ground)
    out = str(tmp_path / "prompt")
    edit(["-m", trained, "--output", out, *RECOLOR, "--rounds", "2", "--round_iters", "5",
          "--roi_prompt", "the box", "--qwen_model_path", "fake/qwen", "--roi_views", "3"])
    assert calls == [(3, "the box", "fake/qwen")]  # asked once; round 2 reused the answer
    rec = json.load(open(os.path.join(out, "rounds", "round_001", "roi", "grounding.json")))
    assert rec["views"]["0"] == [[18.0, 8.0, 50.0, 40.0]]
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["roi"]["grounding"]["prompt"] == "the box"
    w = np.load(os.path.join(out, "rounds", "round_002", "roi", "gaussian_weights.npy"))
    assert 0 < (w > 0.5).sum() < len(w)

    monkeypatch.setattr(roi, "ground_boxes", lambda images, *a: [[] for _ in images])
    with pytest.raises(SystemExit):
        edit(["-m", trained, "--output", str(tmp_path / "none"), *RECOLOR, "--roi_prompt",
              "a unicorn", "--qwen_model_path", "fake/qwen", "--rounds", "1"])


# ------------------------------------------------------------------ bad inputs

def _one_line_error(capsys, argv, needle):
    with pytest.raises(SystemExit) as e:
        edit(argv)
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("edit.py: error:") and needle in err[0], err
    return err[0]


def test_bad_inputs_give_one_clear_line(trained, tmp_path, capsys):
    out = ["--output", str(tmp_path / "o")]
    _one_line_error(capsys, ["-m", str(tmp_path / "nope"), "--instruction", "x", *out],
                    "no such folder")
    _one_line_error(capsys, ["-m", trained, "--instruction", "", *out], "--instruction is empty")
    _one_line_error(capsys, ["-m", trained, "--instruction", "x", "--mode", "paint", *out],
                    "--mode must be one of restyle, replace, remove")
    _one_line_error(capsys, ["-m", trained, "--instruction", "x", "--pix2pix_model",
                             str(tmp_path / "no_model"), *out], "--pix2pix_model")
    _one_line_error(capsys, ["-m", trained, *RECOLOR, "--roi_box", "0:100,60,120,80", *out],
                    "outside the 64x48 image")
    _one_line_error(capsys, ["-m", trained, *RECOLOR, "--roi_box", "0:1,2,3", *out],
                    "x1,y1,x2,y2")
    _one_line_error(capsys, ["-m", trained, *RECOLOR, "--resume", "--output",
                             str(tmp_path / "fresh")], "no edit to resume")
    not_model = tmp_path / "empty_model"
    not_model.mkdir()
    _one_line_error(capsys, ["-m", str(not_model), *RECOLOR, *out], "no cfg_args")


def test_existing_edit_is_not_overwritten(trained, straight, capsys):
    _one_line_error(capsys, ["-m", trained, *RECOLOR, "--output", straight],
                    "already holds 2 edit round(s)")
