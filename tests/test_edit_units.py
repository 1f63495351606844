"""Editing building blocks on synthetic data: config merge, RoI masks and lifting, view
selection, editors, losses, metrics."""
import math
import os

import numpy as np
import pytest
import torch
import yaml

from utils.errors import UserError

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------ config

def _cfg(argv):
    from editing.config import resolve_config
    return resolve_config(argv)


def test_config_precedence_defaults_yaml_cli(tmp_path):
    f = tmp_path / "edit.yaml"
    f.write_text(yaml.safe_dump({"instruction": "make it red", "rounds": 5, "round_iters": 10,
                                 "roi_box": ["0:1,2,3,4"], "mode": "replace"}))
    cfg = _cfg(["-m", str(tmp_path / "m"), "--config", str(f), "--rounds", "2"])
    assert cfg.instruction == "make it red" and cfg.mode == "replace"
    assert cfg.rounds == 2 and cfg.round_iters == 10           # CLI over YAML over default
    assert cfg.roi_box == ["0:1,2,3,4"] and cfg.guidance_scale == 7.5
    assert cfg.output == os.path.normpath(str(tmp_path / "m")) + "_edit"


def test_saved_config_is_the_base_on_resume(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump({"instruction": "saved one",
                                                     "round_iters": 7, "resume": False}))
    cfg = _cfg(["-m", "m", "--output", str(out), "--resume", "--rounds", "4"])
    assert cfg.instruction == "saved one" and cfg.round_iters == 7 and cfg.rounds == 4
    assert cfg.resume  # run-control flags never come from the saved file


@pytest.mark.parametrize("argv,needle", [
    (["--instruction", "  "], "--instruction is empty"),
    (["--instruction", "x", "--mode", "paint"], "--mode must be one of"),
    (["--instruction", "x", "--edit_fraction", "0"], "--edit_fraction"),
    (["--instruction", "x", "--editor", "recolor:1,2"], "--editor"),
    (["--instruction", "x", "--roi_prompt", "cup"], "--qwen_model_path"),
    (["--instruction", "x", "--roi_prompt", "cup", "--qwen_model_path", "q",
      "--roi_box", "0:1,1,5,5"], "exclude each other"),
    (["--instruction", "x", "--from_round", "3", "--rounds", "3"], "--from_round"),
])
def test_config_rejects_bad_values(argv, needle):
    with pytest.raises(UserError, match=needle):
        _cfg(["-m", "m"] + argv)


def test_yaml_unknown_key_and_bad_value(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("instruction: x\nroundz: 3\n")
    with pytest.raises(UserError, match="unknown key 'roundz'"):
        _cfg(["-m", "m", "--config", str(f)])
    f.write_text("instruction: x\nrounds: many\n")
    with pytest.raises(UserError, match="'rounds' must be an integer"):  # its declared range
        _cfg(["-m", "m", "--config", str(f)])


# ------------------------------------------------------------------ a tiny synthetic scene

def _camera(z=-4.0, x=0.0, size=(48, 32), fov=0.8):
    from scene.cameras import Camera
    W, H = size
    # Camera at (x, 0, z) looking down +z (R = identity; T = -R^T C).
    img = torch.zeros(3, H, W, dtype=torch.uint8)
    return Camera(0, np.eye(3), np.array([-x, 0.0, -z]), fov, fov * H / W, img, "cam", 0)


def _model(points, colors=None, scale=0.08, opacity=0.95):
    from scene.gaussian_model import GaussianModel
    from utils.general_utils import inverse_sigmoid
    from utils.sh_utils import RGB2SH
    g = GaussianModel(0)
    n = len(points)
    xyz = torch.tensor(points, dtype=torch.float32)
    rgb = torch.full((n, 3), 0.5) if colors is None else torch.tensor(colors, dtype=torch.float32)
    rot = torch.zeros(n, 4)
    rot[:, 0] = 1
    g._set_params({"xyz": xyz, "f_dc": RGB2SH(rgb)[:, None, :], "f_rest": torch.zeros(n, 0, 3),
                   "opacity": inverse_sigmoid(torch.full((n, 1), opacity)),
                   "scaling": torch.full((n, 3), math.log(scale)), "rotation": rot})
    return g


class _Pipe:
    backend = "auto"  # the C++ rasterizer where built (fast), else PyTorch
    mult = 1.0


def _render(*a, **k):
    from gaussian_renderer import render
    return render(*a, **k)


def _two_clusters():
    rng = np.random.default_rng(0)
    left = rng.normal([-0.8, 0, 0], 0.05, (20, 3))
    right = rng.normal([0.8, 0, 0], 0.05, (20, 3))
    return np.concatenate([left, right])


def test_annotation_masks_and_view_names():
    from editing.roi import Annotation, annotation_mask, parse_annotations, view_index
    box = annotation_mask(Annotation(0, "box", [2, 3, 6, 5], ""), 10, 8)
    assert box.sum() == 4 * 2 and box[3, 2] == 1 and box[5, 6] == 0
    poly = annotation_mask(Annotation(0, "polygon", [0, 0, 9, 0, 9, 7, 0, 7], ""), 10, 8)
    assert poly.sum() == 80
    pts = annotation_mask(Annotation(0, "points", [5, 4], ""), 10, 8, point_radius=2)
    assert 9 <= pts.sum() <= 25 and pts[4, 5] == 1

    class Cam:
        def __init__(self, name):
            self.image_name, self.image_width, self.image_height = name, 48, 32
    cams = [Cam("a.jpg"), Cam("IMG_1")]
    assert view_index("1", cams, "--roi_box", "") == 1
    assert view_index("a", cams, "--roi_box", "") == 0 and view_index("a.jpg", cams, "f", "") == 0
    with pytest.raises(UserError, match="no training view named"):
        view_index("zzz", cams, "--roi_box", "zzz:1,2,3,4")

    class C:
        roi_box, roi_polygon, roi_points = ["IMG_1:60,1,70,5"], None, None
    with pytest.raises(UserError, match="outside the 48x32 image"):
        parse_annotations(C, cams)
    C.roi_box = ["5:1,1,4,4"]
    with pytest.raises(UserError, match="view 5 does not exist"):
        parse_annotations(C, cams)
    C.roi_box = ["0:1,1,40,20"]
    assert parse_annotations(C, cams)[0].view == 0


def test_lifting_selects_the_boxed_cluster_and_masks_follow_in_other_views():
    from editing.roi import build_roi, lift_masks
    g = _model(_two_clusters())
    cams = [_camera(), _camera(x=1.0)]
    W, H = 48, 32
    mask = np.zeros((H, W), np.float32)
    mask[:, : W // 2] = 1  # left half of view 0: the cluster at x = -0.8
    w, votes = lift_masks(g, cams, {0: mask}, _render, _Pipe(), 0.5, 0.3)
    assert w[:20].min() > 0.9 and w[20:].max() < 0.1
    assert votes[:20].min() > 0.8

    class Cfg:
        roi_point_radius, roi_threshold, roi_softness, roi_feather = 6.0, 0.5, 0.3, 1.0
    from editing.roi import Annotation
    roi = build_roi(g, cams, [Annotation(0, "box", [0, 0, W // 2, H], "")], _render, _Pipe(), Cfg)
    vis = roi.visibility(1)
    # From the second camera the left cluster still projects left of the right one.
    cols = vis.sum(0)
    assert float(cols[: W // 2].sum()) > 5 * float(cols[W // 2:].sum())
    m = roi.mask(1)
    assert m.shape == (H, W) and 0 <= float(m.min()) and float(m.max()) <= 1
    cov = roi.coverage()
    assert cov.shape == (2,) and (cov > 0).all()


def test_lifting_votes_with_visibility_not_projection():
    """A Gaussian hidden behind the object in an annotated view casts no vote there: it is
    judged by the views that see it."""
    from editing.roi import footprints, lift_masks
    from scene.cameras import Camera
    g = _model(np.array([[0.0, 0, 0], [0.0, 0, 1.0]]), scale=0.25, opacity=0.999)
    g._scaling.data[1] = math.log(0.1)              # the back one is smaller: fully hidden
    front_cam = _camera()                          # looks down +z: the front one hides the back
    R = np.stack([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]], 1)   # columns: right, down, forward
    C = np.array([4.0, 0.0, 0.5])
    side_cam = Camera(1, R, -R.T @ C, 0.8, 0.8 * 32 / 48, torch.zeros(3, 32, 48, dtype=torch.uint8),
                      "side", 1)                   # from +x: front on the left, back on the right
    ones = torch.ones(32, 48)
    _, alone = footprints(_model(np.array([[0.0, 0, 1.0]]), scale=0.1, opacity=0.999),
                          front_cam, ones, _render, _Pipe())
    _, both = footprints(g, front_cam, ones, _render, _Pipe())
    assert float(both[1]) < 0.2 * float(alone[0])  # mostly hidden
    left = np.zeros((32, 48), np.float32)
    left[:, :24] = 1
    w, _ = lift_masks(g, [front_cam, side_cam], {0: np.ones((32, 48), np.float32), 1: left},
                      _render, _Pipe(), 0.5, 0.3)
    assert w[0] > 0.9 and w[1] < 0.2


def test_view_selection_fraction_off_axis_and_residual_priority():
    from editing.views import select_views
    cov = np.array([0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.05, 0.45])
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    dirs = np.stack([np.cos(ang), np.sin(ang), np.zeros(8)], 1)
    sel = select_views(cov, dirs, 1.0, 0.25)
    assert sorted(s["view"] for s in sel) == [0, 1, 2, 3, 4, 6, 7]  # view 5 sees no RoI
    sel = select_views(cov, dirs, 0.5, 0.25)
    views = [s["view"] for s in sel]
    assert len(views) == 4 and views[:3] == [0, 7, 1]
    assert sel[-1]["reason"] == "off_axis" and views[-1] in (3, 4)
    # A view the model still gets wrong goes first next round.
    sel = select_views(cov, dirs, 0.5, 0.0, residuals={4: 0.3, 0: 0.01, 7: 0.01, 1: 0.01})
    assert sel[0]["view"] == 4


def test_recolor_editor_and_diffusion_size():
    from editing.editors import RecolorEditor
    from editing.pix2pix import diffusion_size
    img = torch.rand(3, 8, 8)
    out = RecolorEditor((1.0, 0.0, 0.0))(img, "anything", 0)
    assert out.shape == img.shape and float(out[1:].abs().max()) == 0
    assert diffusion_size(192, 108, 512) == (512, 256)
    assert diffusion_size(64, 48, 64) == (64, 64)
    assert diffusion_size(1000, 3000, 512)[1] == 512


def test_losses_roi_and_preservation_split():
    from editing.losses import LossWeights, image_terms
    r = torch.zeros(3, 16, 16, requires_grad=True)
    target = torch.zeros(3, 16, 16)
    target[:, :, :8] = 1.0            # the edit, on the left half
    keep = torch.zeros(3, 16, 16)
    mask = torch.zeros(16, 16)
    mask[:, :8] = 1.0
    t = image_terms(r, target, keep, mask, LossWeights())
    assert abs(float(t["roi_photo"].detach()) - 1.0) < 1e-2
    assert float(t["preserve"].detach()) == 0.0
    t["preserve"].backward()
    assert float(r.grad.abs().sum()) == 0.0


def test_masked_metrics():
    from editing.metrics import colour_spread, masked_psnr, masked_ssim, summarise
    a = torch.zeros(3, 8, 8)
    b = a.clone()
    b[:, :, 4:] = 0.1
    left = torch.zeros(8, 8)
    left[:, :4] = 1
    assert masked_psnr(a, b, left) == float("inf")
    assert abs(masked_psnr(a, b, 1 - left) - 20.0) < 1e-4
    assert masked_psnr(a, b, torch.zeros(8, 8)) is None
    assert masked_ssim(a, a, left) == pytest.approx(1.0)
    assert colour_spread([a, b], [1 - left, 1 - left]) == pytest.approx(0.05)
    s = summarise({0: {"x": 1.0, "y": None}, 1: {"x": 3.0, "y": None}})
    assert s == {"x": 2.0, "y": None}


def test_update_scaling_freezes_gaussians_outside_the_roi():
    """Adam ignores a constant gradient scale, so locality scales the step instead."""
    from editing.policies import EditStrategy, ModePolicy, set_anchors
    from scene.plugins import Step

    class Opt:
        position_lr_init, position_lr_final, position_lr_delay_mult = 1e-2, 1e-4, 0.01
        position_lr_max_steps, feature_lr = 100, 0.05
        opacity_lr = scaling_lr = rotation_lr = 0.05
    g = _model(_two_clusters())
    g.training_setup(Opt)
    st = EditStrategy()
    st.initialize_state(g)
    w = torch.zeros(g.num_points)
    w[:20] = 1.0
    set_anchors(g, w)

    class Cfg:
        mode, outside_update, densify_events, remove_decay = "restyle", 0.0, 0, 0.0

    class Tr:
        gaussians = g
    policy = ModePolicy(Cfg, st, [], {}, [], 1, 10)
    before = g._features_dc.detach().clone()
    for it in range(3):
        loss = (g._features_dc - 1.0).pow(2).sum()
        loss.backward()
        step = Step(Tr, it, None, {})
        policy.before_step(step)
        g.optimizer.step()
        g.optimizer.zero_grad()
        policy.after_step(step)
    moved = (g._features_dc.detach() - before).abs().flatten(1).max(1).values
    assert moved[:20].min() > 0.05 and float(moved[20:].max()) == 0.0
