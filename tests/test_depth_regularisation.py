"""Depth regularisation (-d/--depths): depth_params fitting (utils/make_depth_scale.py), the
reference's reliability rule, loading and validation of the maps, the loss and its schedule."""
import csv
import json
import os
from argparse import Namespace

import numpy as np
import pytest
import torch
from PIL import Image

from scene.depth_loss import DepthL1Term
from scene.plugins import Step
from scene.depth_maps import is_reliable, read_depth_params
from tests.depth_scenes import W, H, make_plane_scene, true_invdepth
from utils.make_depth_scale import depth_scales, main as make_depth_scale

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("observations", [True, False])
def test_depth_scale_recovers_each_maps_affine(tmp_path, observations):
    """Maps are a_k * true inverse depth + b_k; the fit must give scale 1/a_k, offset -b_k/a_k,
    from observed points or, with no observations in images.bin, projected points."""
    root, _, affines = make_plane_scene(str(tmp_path / "s"), observations=observations)
    params, _ = depth_scales(root, os.path.join(root, "depths"), progress=False)
    assert sorted(params) == [f"view_{k:02d}" for k in range(len(affines))]
    for k, (a, b) in enumerate(affines):
        p = params[f"view_{k:02d}"]
        assert p["scale"] == pytest.approx(1 / a, rel=0.01), (k, p)
        assert p["offset"] == pytest.approx(-b / a, abs=0.01 * (1 + abs(b / a))), (k, p)


@pytest.mark.e2e
def test_depth_scale_cli_writes_params_and_training_reads_them(tmp_path):
    root, trans, affines = make_plane_scene(str(tmp_path / "s"), depth_size=(2 * W, 2 * H))
    make_depth_scale(["--base_dir", root, "--depths_dir", os.path.join(root, "depths"), "--quiet"])
    assert os.path.isfile(os.path.join(root, "sparse", "0", "depth_params.json"))
    from scene.dataset_readers import readColmapSceneInfo
    from scene.camera_loading import loadCam
    info = readColmapSceneInfo(root, "images", False, depths="depths")
    args = Namespace(data_device="cpu", resolution=1, white_background=False)
    for c in info.train_cameras:
        k = int(c.image_name[-2:])
        cam = loadCam(args, k, c, 1.0)
        assert cam.depth_reliable and cam.invdepthmap.shape == (1, H, W)
        # The 2x map resampled to the image and mapped by its params is the true inverse depth.
        err = (cam.invdepthmap[0].numpy() - true_invdepth(trans[k])).__abs__().max()
        assert err < 2e-3, (k, err)


def test_reliability_rule_is_the_references(tmp_path):
    d = tmp_path / "sparse"
    d.mkdir()
    scales = {"a": 1.0, "b": 1.1, "c": 0.9, "d": 10.0, "e": 0.0, "f": 0.15, "g": 4.9}
    (d / "depth_params.json").write_text(json.dumps({k: {"scale": v, "offset": 0.1}
                                                    for k, v in scales.items()}))
    p = read_depth_params(str(d))
    assert [v["med_scale"] for v in p.values()] == pytest.approx([1.05] * 7)  # median of scales > 0
    assert {k for k in p if is_reliable(p[k])} == {"a", "b", "c", "g"}
    assert is_reliable(None)                               # Blender maps: no params, used as is


def _train_args(root, extra=()):
    return ["-s", root, "-m", os.path.join(root, "out"), "--iterations", "2", "--quiet",
            "--no_tensorboard", "-d", "depths", *extra]


def _one_line_error(capsys, argv):
    import train
    with pytest.raises(SystemExit) as e:
        train.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_missing_map_is_one_line_naming_the_file(tmp_path, capsys):
    root, _, _ = make_plane_scene(str(tmp_path / "s"))
    make_depth_scale(["--base_dir", root, "--depths_dir", os.path.join(root, "depths"), "--quiet"])
    os.remove(os.path.join(root, "depths", "view_02.png"))
    err = _one_line_error(capsys, _train_args(root))
    assert os.path.join(root, "depths", "view_02.png") in err and "does not exist" in err


@pytest.mark.parametrize("bad", ["aspect", "8bit", "rgb16"])
def test_mismatched_map_is_one_line_naming_the_file(tmp_path, capsys, bad):
    root, _, _ = make_plane_scene(str(tmp_path / "s"))
    make_depth_scale(["--base_dir", root, "--depths_dir", os.path.join(root, "depths"), "--quiet"])
    path = os.path.join(root, "depths", "view_01.png")
    if bad == "aspect":
        Image.fromarray(np.zeros((H, W + 9), np.uint16)).save(path)
    elif bad == "8bit":
        Image.fromarray(np.zeros((H, W), np.uint8)).save(path)
    else:
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
    err = _one_line_error(capsys, _train_args(root))
    assert path in err
    # make_depth_scale.py itself refuses the same file with one line.
    with pytest.raises(SystemExit):
        make_depth_scale(["--base_dir", root, "--depths_dir", os.path.join(root, "depths"),
                          "--quiet"])
    err = capsys.readouterr().err.strip()
    assert path in err and "\n" not in err


@pytest.mark.parametrize("problem", ["no_params", "missing_entry", "malformed"])
def test_bad_depth_params_is_one_line_naming_the_file(tmp_path, capsys, problem):
    root, _, _ = make_plane_scene(str(tmp_path / "s"))
    params = os.path.join(root, "sparse", "0", "depth_params.json")
    if problem != "no_params":
        make_depth_scale(["--base_dir", root, "--depths_dir", os.path.join(root, "depths"),
                          "--quiet"])
        d = json.load(open(params))
        if problem == "missing_entry":
            del d["view_03"]
        else:
            d["view_03"] = {"scale": "x"}
        json.dump(d, open(params, "w"))
    err = _one_line_error(capsys, _train_args(root))
    assert params in err
    if problem == "missing_entry":
        assert "view_03" in err


def test_bad_weights_are_refused(tmp_path, capsys):
    root, _, _ = make_plane_scene(str(tmp_path / "s"))
    err = _one_line_error(capsys, _train_args(root, ["--depth_l1_weight_final", "0"]))
    assert "--depth_l1_weight" in err


def test_weight_schedule_and_term():
    term = DepthL1Term(1.0, 0.01, 1000)
    assert term.weight(1) == pytest.approx(1.0, rel=0.01)
    assert term.weight(500) == pytest.approx(0.1, rel=1e-6)    # log-linear: geometric mean
    assert term.weight(1000) == pytest.approx(0.01)
    assert term.weight(5000) == pytest.approx(0.01)

    class Cam:
        invdepthmap = torch.full((1, 4, 5), 0.5)
        depth_reliable = True
    inv = torch.full((1, 4, 5), 0.3, requires_grad=True)

    def terms():
        return term.loss_terms(Step(None, 500, Cam(), {"invdepth": inv}))
    loss = terms()["depth"]
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.1 * 0.2, rel=1e-5)
    assert torch.allclose(inv.grad, torch.full_like(inv, -0.1 / 20))
    Cam.depth_reliable = False                                  # unreliable: no supervision
    assert terms() == {}
    Cam.invdepthmap, Cam.depth_reliable = None, True            # no map for this view
    assert terms() == {}


@pytest.mark.e2e
def test_training_with_depths_applies_the_term(tmp_path):
    """A short run: the trainer adds the term, which supervises every (reliable) view, and
    the log shows it."""
    root, _, _ = make_plane_scene(str(tmp_path / "s"))
    make_depth_scale(["--base_dir", root, "--depths_dir", os.path.join(root, "depths"), "--quiet"])
    import train
    train.main(_train_args(root, ["--iterations", "5"]))
    with open(os.path.join(root, "out", "training_log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5
    depth = [float(r["term_depth"]) for r in rows]
    assert all(d > 0 for d in depth)
    for r in rows:   # the logged terms are what the loss summed
        total = float(r["term_l1"]) + float(r["term_dssim"]) + float(r["term_depth"])
        assert total == pytest.approx(float(r["loss"]), abs=2e-6)
    assert "depths" in open(os.path.join(root, "out", "cfg_args")).read()
