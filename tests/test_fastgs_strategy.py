"""FastGS strategy (VCD / VCP decisions, cap, schedules, sparse starts) and the region hooks
shared by every strategy, on small synthetic scenes; plus short end-to-end runs."""
import csv
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from gaussian_renderer import render
from scene.cameras import Camera
from scene.strategies import STRATEGIES, FastGS, Vanilla3DGS, make_strategy
from scene.strategies.multiview import sample_views
from scene.strategies.regions import add_regions
from scene.view_scorer import ViewScorer, high_error_map
from utils.graphics_utils import project_points, unproject_pixels
from utils.sh_utils import SH2RGB
from tests.demo_scenes import REPO
from tests.tiny import BG, PIPE, H, W, camera, model

pytestmark = pytest.mark.unit


def context(cams):
    """The loop's ViewScorer over these training views."""
    return ViewScorer(render, PIPE, BG, cams, 0.2)


def wrong_on_left(g):
    """A view whose target equals the model's render except that the left half is redder:
    only Gaussians drawn on the left have error support."""
    with torch.no_grad():
        img = render(camera(), g, PIPE, BG)["render"].clone()
    img[0, :, : W // 2] = (img[0, :, : W // 2] + 0.5).clamp(max=1.0)
    return camera(img)


def fastgs(g, **kw):
    kw = {"cameras_extent": 1.0, "vcd_views": 1, "sparse_points": 0, "uncovered_spawn": 0, **kw}
    s = FastGS(**kw)
    s.initialize_state(g)
    return s


def high_grads(g, rows=None):
    rows = slice(None) if rows is None else rows
    for k in ("grad_accum", "abs_grad_accum"):
        g.tables[k][rows] = 1.0
    g.tables["denom"][:] = 1.0


def rows_at(g, p, tol=1e-5):
    return int(((g.get_xyz.detach() - torch.tensor(p)).norm(dim=1) < tol).sum())


A, B = (-1.0, 0.0, 0.0), (1.0, 0.0, 0.0)


# -- multi-view scores ----------------------------------------------------------------------
def test_high_error_map_is_min_max_normalised():
    gt = torch.zeros(3, 2, 2)
    img = torch.tensor([0.0, 0.05, 0.5, 1.0]).reshape(1, 2, 2).repeat(3, 1, 1)
    assert high_error_map(img, gt, 0.1).flatten().tolist() == [False, False, True, True]
    assert not high_error_map(gt, gt, 0.1).any()  # a perfect view flags nothing


def test_view_sampling_is_reproducible_and_distinct():
    cams = list(range(20))
    a = sample_views(cams, 10, seed=3, iteration=500)
    assert a == sample_views(cams, 10, seed=3, iteration=500) and len(set(a)) == 10
    assert a != sample_views(cams, 10, seed=3, iteration=1000)
    assert sorted(sample_views(cams[:4], 10, 0, 1)) == [0, 1, 2, 3]


# -- VCD ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dense,kind", [(0.001, "split"), (1.0, "cloned")])
def test_error_supported_gaussian_is_densified_unsupported_one_is_not(dense, kind):
    g = model([A, B])
    s = fastgs(g, dense=dense)
    high_grads(g)  # both pass the gradient tests; only A sits in high-error pixels
    out = s.densify_and_prune(g, 600, context([wrong_on_left(g)]))
    assert out[kind] == 1 and out["cloned" if kind == "split" else "split"] == 0
    assert g.num_points == 3
    assert rows_at(g, B) == 1                              # B untouched
    assert rows_at(g, A) == (2 if kind == "cloned" else 0)  # A cloned, or split into children
    assert (g.get_xyz[:, 0] < 0).sum() == 2


def test_importance_threshold_and_gradients_both_gate():
    g = model([A, B])
    s = fastgs(g, importance_thresh=1e6)  # A's support is real but far below this
    high_grads(g)
    assert s.densify_and_prune(g, 600, context([wrong_on_left(g)]))["split"] == 0
    g = model([A, B])
    s = fastgs(g)
    g.tables["denom"][:] = 1.0  # error support but no gradient
    assert s.densify_and_prune(g, 600, context([wrong_on_left(g)]))["split"] == 0


@pytest.mark.parametrize("cap,expect", [(3, 3), (4, 4), (0, 5)])
def test_cap_holds_and_best_supported_candidate_wins(cap, expect):
    big, small = (-1.2, 0.5, 0.0), (-1.2, -0.7, 0.0)
    g = model([big, small, B], scale=[0.3, 0.12, 0.25])
    s = fastgs(g, max_gaussians=cap)
    high_grads(g)
    s.densify_and_prune(g, 600, context([wrong_on_left(g)]))
    assert g.num_points == expect
    if cap == 4:  # one slot: the Gaussian covering more high-error pixels is split
        assert rows_at(g, big) == 0 and rows_at(g, small) == 1


# -- VCP ---------------------------------------------------------------------------------------
def test_densification_prunes_the_candidate_with_the_higher_pruning_score():
    g = model([A, B])  # both oversized (> 0.1 extent) after the first opacity reset
    s = fastgs(g, opacity_reset_interval=100)
    out = s.densify_and_prune(g, 600, context([wrong_on_left(g)]))
    assert out["candidates"] == 2 and out["pruned"] == 1  # half of the candidates
    assert rows_at(g, A) == 0 and rows_at(g, B) == 1      # A is blamed by the error views


def test_final_prune_removes_transparent_and_blamed_gaussians():
    D = (1.0, 1.0, 0.0)
    g = model([A, B, D], opacity=[0.9, 0.9, 0.05])
    s = fastgs(g)
    assert s.final_prune(g, 20_000, context([wrong_on_left(g)])) == 2
    assert g.num_points == 1 and rows_at(g, B) == 1


@pytest.mark.parametrize("iterations,until,prunes,expect", [
    (30_000, 15_000, 4, [18_000, 21_000, 24_000, 27_000]),   # FastGS's own schedule
    (10_000, 5_000, 4, [6_000, 7_000, 8_000, 9_000]),
    (7_000, 3_000, 3, [4_000, 5_000, 6_000]),
    (5_000, 15_000, 4, []),                                    # densifying to the end
    (30_000, 15_000, 0, []),
])
def test_final_prune_schedule_is_derived_from_the_run(iterations, until, prunes, expect):
    s = FastGS(total_iterations=iterations, densify_until_iter=until, final_prunes=prunes)
    assert s.final_prune_iterations() == expect


def test_step_hook_runs_final_prunes_on_the_derived_schedule(monkeypatch):
    g = model([A, B])
    s = fastgs(g, total_iterations=1000, densify_until_iter=500, densify_from_iter=10 ** 9)
    seen = []
    monkeypatch.setattr(s, "final_prune", lambda m, it, ctx: seen.append(it))
    pkg = {"viewspace_points": torch.zeros(2, 4), "visibility_filter": torch.ones(2, dtype=bool)}
    for it in range(1, 1001):
        s.step_post_backward(it, g, pkg, context([camera()]))
    assert seen == [600, 700, 800, 900]


def test_make_strategy_fills_the_strategy_default_interval():
    args = types.SimpleNamespace(densification_interval=0, max_gaussians=7)
    fg, va = make_strategy("fastgs", args, 2.0, seed=3), make_strategy("3dgs", args, 2.0)
    assert isinstance(fg, FastGS) and isinstance(va, Vanilla3DGS)
    assert (fg.densification_interval, va.densification_interval) == (500, 100)
    assert fg.seed == 3 and fg.max_gaussians == va.max_gaussians == 7
    args.densification_interval = 30
    assert make_strategy("fastgs", args, 2.0).densification_interval == 30


# -- sparse starts -------------------------------------------------------------------------------
def test_sparse_models_densify_more_often():
    s = FastGS(densification_interval=500, sparse_points=2000)
    assert s.interval(model([A] * 100)) == 100
    assert s.interval(model(torch.randn(2000, 3))) == 500
    assert FastGS(densification_interval=500, sparse_points=0).interval(model([A])) == 500


# -- region hooks ------------------------------------------------------------------------------
def grid_model():
    xs, ys = torch.meshgrid(torch.linspace(-1.5, 1.5, 6), torch.linspace(-1.0, 1.0, 4),
                            indexing="xy")
    xyz = torch.stack([xs.flatten(), ys.flatten(), torch.zeros(24)], 1)
    return model(xyz, scale=0.08)


def strategy(name, g, **kw):
    s = make_strategy(name, types.SimpleNamespace(**kw), cameras_extent=1.0)
    s.initialize_state(g)
    return s


def left_mask():
    m = torch.zeros(H, W, dtype=torch.bool)
    m[:, : W // 3] = True
    return m


def in_mask(cam, xyz, mask):
    uv, z = project_points(cam, xyz)
    px = uv.round().long()
    ok = (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H) & (z > 0)
    return ok & mask[px[:, 1].clamp(0, H - 1), px[:, 0].clamp(0, W - 1)]


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_region_densify_stays_in_mask_and_budget(name):
    g = grid_model()
    s = strategy(name, g, dense=1.0, percent_dense=1.0)  # grid Gaussians count as small: clones
    cam, mask = camera(), left_mask()
    before = g.get_xyz.detach().clone()
    inside = int(in_mask(cam, before, mask).sum())
    assert 0 < inside < 24
    out = add_regions(s, g, [cam], [mask], budget=3, mode="densify", scorer=context([cam]))
    assert out == {"densified": 3, "spawned": 0} and g.num_points == 27
    assert in_mask(cam, g.get_xyz.detach()[24:], mask).all()       # copies of masked ones
    out = add_regions(s, g, [cam], [mask], budget=100, mode="densify", scorer=context([cam]))
    assert out["densified"] == inside + 3 and g.num_points == 27 + inside + 3
    assert in_mask(cam, g.get_xyz.detach()[27:], mask).all()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_spawned_gaussians_lie_on_masked_rays_with_target_colours(name):
    torch.manual_seed(0)  # pixel sampling uses the global (checkpointed) RNG
    img = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))
    cam = camera(img)
    g = model([B], scale=0.6, opacity=0.99)  # an opaque blob on the right, nothing on the left
    s = strategy(name, g)
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[10:20, 5:15] = True      # transparent: spawned at a far depth
    mask[20:26, 45:51] = True     # on the blob: spawned at its rendered depth
    out = add_regions(s, g, [cam], [mask], budget=40, mode="spawn", scorer=context([cam]))
    assert out == {"densified": 0, "spawned": 40} and g.num_points == 41
    new = g.get_xyz.detach()[1:]
    uv, z = project_points(cam, new)
    px = uv.round().long()
    assert mask[px[:, 1], px[:, 0]].all() and (uv - px).abs().max() < 1e-3  # on pixel rays
    on_blob = px[:, 0] >= 45
    assert on_blob.any() and (~on_blob).any()
    assert (z[on_blob] - 4.0).abs().max() < 0.7     # the blob is at view depth 4
    assert (z[~on_blob] > 0.2).all()
    rgb = SH2RGB(g.get_features_dc.detach()[1:, 0])
    torch.testing.assert_close(rgb, img[:, px[:, 1], px[:, 0]].T, atol=1e-5, rtol=0)


def test_regions_honour_per_view_budgets_modes_and_the_cap():
    g = grid_model()
    s = strategy("fastgs", g, max_gaussians=30, dense=1.0)
    cams = [camera(uid=0), camera(uid=1)]
    masks = [left_mask(), left_mask()]
    out = add_regions(s, g, cams, masks, budget=[4, 0], mode="both", scorer=context(cams))
    assert out == {"densified": 2, "spawned": 2} and g.num_points == 28
    out = add_regions(s, g, cams, masks, budget=10, mode="both", scorer=context(cams))
    assert g.num_points == 30 and sum(out.values()) == 2   # the cap wins over the budget
    assert add_regions(s, g, cams, masks, 10, "spawn", context(cams)) == {"densified": 0,
                                                                         "spawned": 0}
    empty = [torch.zeros(H, W, dtype=torch.bool)]
    s.max_gaussians = 0
    assert add_regions(s, g, cams[:1], empty, 10, "both", context(cams)) == {"densified": 0,
                                                                            "spawned": 0}


def test_region_hook_rejects_bad_arguments():
    g = grid_model()
    s = strategy("3dgs", g)
    cam = camera()
    with pytest.raises(ValueError, match="mode"):
        add_regions(s, g, [cam], [left_mask()], 5, "grow", context([cam]))
    with pytest.raises(ValueError, match="mask of shape"):
        add_regions(s, g, [cam], [torch.ones(4, 4, dtype=torch.bool)], 5, "both", context([cam]))
    with pytest.raises(ValueError, match="budget"):
        add_regions(s, g, [cam], [left_mask()], [1, 2], "both", context([cam]))


def test_unproject_inverts_project_with_a_shifted_principal_point():
    cam = Camera(colmap_id=0, R=np.eye(3), T=np.array([0.2, -0.1, 3.0]), FoVx=1.0, FoVy=0.8,
                 image=torch.zeros(3, H, W), image_name="s", uid=0, cx=35.3, cy=20.1)
    xs, ys = torch.tensor([0.0, 10.0, 63.0]), torch.tensor([0.0, 30.0, 47.0])
    z = torch.tensor([1.0, 2.5, 7.0])
    uv, zz = project_points(cam, unproject_pixels(cam, xs, ys, z))
    torch.testing.assert_close(uv.float(), torch.stack([xs, ys], 1), atol=1e-3, rtol=0)
    torch.testing.assert_close(zz.float(), z, atol=1e-4, rtol=1e-5)


# -- end to end ------------------------------------------------------------------------------
def run(args):
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def log_rows(m):
    return list(csv.DictReader(open(os.path.join(m, "training_log.csv"))))


def test_train_fastgs_end_to_end(demo_scene, tmp_path):
    m = str(tmp_path / "fgs")
    r = run(["train.py", "-s", demo_scene, "-m", m, "--strategy", "fastgs", "--iterations", "60",
             "--eval", "--llffhold", "5", "--densify_from_iter", "10", "--densification_interval",
             "10", "--densify_until_iter", "40", "--opacity_reset_interval", "1000",
             "--sparse_points", "0", "--test_iterations", "60", "--quiet", "--no_tensorboard"])
    assert r.returncode == 0, r.stderr
    n = [int(r["gaussians"]) for r in log_rows(m)]
    assert n[19] != n[18] or n[29] != n[28]            # densification events at 20 and 30
    # final prunes at 44, 48, 52, 56 (4 spread over 40..60): only they change the count there
    changes = [i + 1 for i in range(40, 59) if n[i] != n[i - 1]]
    assert changes and set(changes) <= {44, 48, 52, 56}
    assert float(log_rows(m)[-1]["psnr"]) > 10


# 3 iterations: fastgs derives 100 from the run length (unit test: test_schedule_defaults_...).
@pytest.mark.parametrize("name,interval", [("fastgs", 100), ("3dgs", 100)])
def test_strategy_defaults_are_resolved_into_cfg_args(demo_scene, tmp_path, name, interval):
    m = str(tmp_path / name)
    r = run(["train.py", "-s", demo_scene, "-m", m, "--strategy", name, "--iterations", "3",
             "--quiet", "--no_tensorboard"])
    assert r.returncode == 0, r.stderr
    cfg = open(os.path.join(m, "cfg_args")).read()
    assert f"densification_interval={interval}," in cfg and f"strategy='{name}'" in cfg


def test_bad_fastgs_flag_is_one_line(demo_scene, tmp_path):
    r = run(["train.py", "-s", demo_scene, "-m", str(tmp_path / "o"), "--vcd_views", "0",
             "--quiet", "--no_tensorboard"])
    assert r.returncode == 2 and "--vcd_views" in r.stderr and "Traceback" not in r.stderr


def test_sparse_random_start_grows(demo_scene, tmp_path):
    import train

    def gaussians_after(sparse_points):
        m = str(tmp_path / f"sparse{sparse_points}")
        train.main(["-s", demo_scene, "-m", m, "--random_init", "100", "--iterations", "150",
                    "--densify_from_iter", "20", "--densification_interval", "50",
                    "--sparse_points", str(sparse_points), "--test_iterations", "999",
                    "--quiet", "--no_tensorboard"])
        return log_rows(m)

    rows = gaussians_after(2000)
    n = [int(r["gaussians"]) for r in rows]
    assert n[0] == 100
    assert n[39] > 150                  # the first sparse events (it 30, 40) already grew it
    assert n[-1] > 1000
    losses = [float(r["loss"]) for r in rows]
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:20])
    fixed = [int(r["gaussians"]) for r in gaussians_after(0)]  # FastGS's fixed cadence
    assert n[-1] > 2 * fixed[-1]


def test_uncovered_high_error_pixels_get_gaussians_on_their_rays():
    """A model covering only the left of the view; the target has content on the right too:
    spawns land on the rays of high-error transparent pixels, within the per-view budget, and a
    view the model already matches spawns nothing."""
    g = model([[-0.8, 0.0, 0.0]], scale=0.2)
    with torch.no_grad():
        target = render(camera(), g, PIPE, BG)["render"].clone()
        alpha = render(camera(), g, PIPE, BG)["alpha"][0]
    target[:, 10:38, 40:60] = 0.8
    cam = camera(target)
    s = fastgs(g, uncovered_spawn=25)
    n0 = g.num_points
    spawned = s.spawn_uncovered(g, 1000, context([cam]))
    assert 0 < spawned <= 25 and g.num_points == n0 + spawned
    uv, z = project_points(cam, g.get_xyz.detach()[n0:])
    px = uv.round().long()
    assert (z > 0).all()
    assert ((px[:, 0] >= 40) & (px[:, 0] < 60) & (px[:, 1] >= 10) & (px[:, 1] < 38)).all()
    assert float(alpha[10:38, 40:60].max()) < 0.5  # they were uncovered pixels

    matched = model([[0.0, 0.0, 0.0]], scale=0.5)
    with torch.no_grad():
        same = render(camera(), matched, PIPE, BG)["render"].clone()
    s2 = fastgs(matched, uncovered_spawn=25)
    assert s2.spawn_uncovered(matched, 1000, context([camera(same)])) == 0


def test_schedule_defaults_follow_run_length_and_image_size():
    from scene.strategies import resolve_strategy_defaults
    for iterations, want in ((3000, 100), (12_000, 200), (30_000, 500), (90_000, 500)):
        args = types.SimpleNamespace(strategy="fastgs", iterations=iterations,
                                     densification_interval=0)
        assert resolve_strategy_defaults(args).densification_interval == want
    args = types.SimpleNamespace(strategy="3dgs", iterations=3000, densification_interval=0)
    assert resolve_strategy_defaults(args).densification_interval == 100
    s = FastGS(importance_thresh=5.0)
    small = [types.SimpleNamespace(image_width=200, image_height=100)] * 3
    big = [types.SimpleNamespace(image_width=2000, image_height=1000)]
    assert s.importance_threshold(small) == pytest.approx(5.0 * 0.02)
    assert s.importance_threshold(big) == 5.0
