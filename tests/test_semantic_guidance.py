"""Semantic guidance on the CPU: the error proposer end to end, caps, records, resume."""
import csv
import glob
import json
import math
import os

import numpy as np
import pytest
import torch

from scene.cameras import Camera
from semantic.growth import grow
from semantic.guidance import SemanticGuidance, fill_colours
from semantic.proposers import ErrorProposer, Observation
from semantic.views import capture_focus, novel_views
from tests.demo_scenes import saved_params as _params, train_inprocess
from tests.tiny import camera

pytestmark = pytest.mark.unit

GUIDED = ["--eval", "--llffhold", "5", "--random_init", "100", "--iterations", "90",
          "--test_iterations", "90", "--save_iterations", "90", "--region_proposer", "error",
          "--densify_from_iter", "10", "--densification_interval", "10",
          "--densify_until_iter", "60", "--phase1_end", "30", "--phase1_interval", "15",
          "--phase2_start", "30", "--phase2_end", "60", "--phase2_interval", "15",
          "--phase3_start", "60", "--phase3_end", "70", "--phase3_interval", "10",
          "--prune_protection", "5", "--quiet", "--no_tensorboard"]
CAPS = {"phase1": 30, "phase2": 60, "phase3": 40}
CAP_FLAGS = [f for i, (k, v) in enumerate(CAPS.items(), 1)
             for f in (f"--phase{i}_max_points", str(v))]


@pytest.fixture(scope="module")
def scene(demo_scene):
    return demo_scene


@pytest.fixture(scope="module")
def guided_run(scene, tmp_path_factory):
    m = str(tmp_path_factory.mktemp("guided") / "m")
    train_inprocess(["-s", scene, "-m", m, "--save_region_vis", *CAP_FLAGS, *GUIDED])
    return m


def test_records_follow_the_schedule(guided_run):
    sched = json.load(open(os.path.join(guided_run, "regions", "schedule.json")))
    want = [i for p in sched["phases"] for i in p["analyses"]]
    assert want == [15, 30, 45, 60, 70]
    assert sched["refine_start"] == 75
    assert sched["opacity_resets"] == []  # none in the last 500 iterations of a run
    got = sorted(int(os.path.basename(d)[5:]) for d in
                 glob.glob(os.path.join(guided_run, "regions", "iter_*")))
    assert got == want + [75]  # phase 4 opens with the global floater prune
    refine = json.load(open(os.path.join(guided_run, "regions", "iter_000075", "regions.json")))
    assert refine["phase"] == "refine" and refine["views"] == []
    assert refine["gaussians_before"] - refine["gaussians_after"] == refine["pruned"]
    for it in want:
        rec = json.load(open(os.path.join(guided_run, "regions", f"iter_{it:06d}",
                                          "regions.json")))
        assert rec["iteration"] == it and len(rec["views"]) == 4
        for v in rec["views"]:
            assert {"boxes", "labels", "raw_text", "parse_status", "latency_s", "densified",
                    "spawned", "seeded"} <= set(v)
            for stem in ("render", "boxes", "mask"):
                assert os.path.isfile(os.path.join(guided_run, "regions", f"iter_{it:06d}",
                                                   f"{v['view']}_{stem}.png"))
        assert rec["pruned"] == 0 or rec["phase"] in ("phase2", "phase3")  # not phase 1
        assert (rec["gaussians_after"] - rec["gaussians_before"]
                == rec["densified"] + rec["spawned"] + rec["seeded"] - rec["pruned"])


def test_records_say_where_new_gaussians_were_born_and_from_which_camera(guided_run):
    """added.npz and each view's camera, for the viewer (view.py) to highlight in 3D."""
    from semantic.visualize import ADDED_KINDS
    kinds_seen = set()
    for f in glob.glob(os.path.join(guided_run, "regions", "iter_*", "regions.json")):
        rec = json.load(open(f))
        if rec["phase"] == "refine":
            continue
        z = np.load(os.path.join(os.path.dirname(f), "added.npz"))
        xyz, kind, view = z["xyz"], z["kind"], z["view"]
        assert xyz.shape == (len(kind), 3) and np.isfinite(xyz).all()
        assert set(view.tolist()) <= set(range(len(rec["views"])))
        for i, v in enumerate(rec["views"]):
            mine = kind[view == i]
            # spawns and seeds append one row each; a split replaces its parent by two rows
            assert (mine == ADDED_KINDS.index("spawn")).sum() == v["spawned"]
            assert (mine == ADDED_KINDS.index("seeded")).sum() == v["seeded"]
            n_densify = int((mine == ADDED_KINDS.index("densify")).sum())
            assert v["densified"] <= n_densify <= 2 * v["densified"]
            cam = v["camera"]
            assert np.allclose(np.asarray(cam["R"]) @ np.asarray(cam["R"]).T, np.eye(3),
                               atol=1e-5)
            assert cam["width"] == 64 and cam["height"] == 48 and 0 < cam["fovy"] < math.pi
        kinds_seen |= set(kind.tolist())
    assert kinds_seen >= {0}  # at least densification happened somewhere


def test_per_view_caps_hold_and_guidance_added_gaussians(guided_run):
    added = 0
    for f in glob.glob(os.path.join(guided_run, "regions", "iter_*", "regions.json")):
        rec = json.load(open(f))
        for v in rec["views"]:
            assert v["densified"] + v["spawned"] + v["seeded"] <= CAPS[rec["phase"]]
            added += v["densified"] + v["spawned"] + v["seeded"]
    assert added > 0


def test_training_log_has_the_phase_column(guided_run):
    rows = list(csv.DictReader(open(os.path.join(guided_run, "training_log.csv"))))
    phase = {int(r["iteration"]): r["phase"] for r in rows}
    assert phase[1] == "phase1" and phase[30] == "phase1" and phase[31] == "phase2"
    assert phase[61] == "phase3" and phase[71] == "refine" and phase[90] == "refine"


def test_global_cap_holds(scene, tmp_path):
    m = str(tmp_path / "capped")
    train_inprocess(["-s", scene, "-m", m, "--max_gaussians", "400",
                     "--phase2_max_points", "5000", *GUIDED])
    rows = list(csv.DictReader(open(os.path.join(m, "training_log.csv"))))
    assert max(int(r["gaussians"]) for r in rows) <= 400


def test_resume_mid_phase_continues_the_schedule(scene, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train_inprocess(["-s", scene, "-m", a, "--checkpoint_iterations", "40", *GUIDED])
    train_inprocess(["-s", scene, "-m", b, "--start_checkpoint",
                     os.path.join(a, "chkpnt40.pth"), *GUIDED])
    pa, pb = _params(a, 90), _params(b, 90)
    assert pa["xyz"].shape == pb["xyz"].shape
    for k in ("xyz", "features_dc", "opacity", "scaling", "rotation"):
        assert np.array_equal(pa[k], pb[k]), k
    # b analysed only after its start, with the same records as a
    for it in (45, 60, 70):
        ra = json.load(open(os.path.join(a, "regions", f"iter_{it:06d}", "regions.json")))
        rb = json.load(open(os.path.join(b, "regions", f"iter_{it:06d}", "regions.json")))
        assert ra["gaussians_after"] == rb["gaussians_after"]
    assert not os.path.isdir(os.path.join(b, "regions", "iter_000030"))


def _obs(alpha, render, target, name="v"):
    return Observation(name, render, alpha, target)


def test_error_proposer_phase1_boxes_the_wrong_part():
    target = torch.zeros(3, 40, 60)
    render = target.clone()
    render[:, 10:20, 30:50] = 1.0
    res, = ErrorProposer(max_box_frac=0.5).propose([_obs(torch.ones(40, 60), render, target)],
                                                   "phase1")
    x1, y1, x2, y2 = res.boxes[0]
    assert x1 <= 30 and x2 >= 50 and y1 <= 10 and y2 >= 20
    assert res.mask[15, 40] and not res.mask[35, 5]


def test_error_proposer_phase2_finds_the_central_subject_and_inverts():
    target = torch.rand(3, 40, 60, generator=torch.Generator().manual_seed(0))
    render = target.clone()
    render[:, :, :8] = 0.0  # a wrong strip at the border: not the subject
    alpha = torch.zeros(40, 60)
    alpha[12:28, 20:40] = 1.0  # the solid, well-fitted middle
    alpha[:, :8] = 1.0
    res, = ErrorProposer().propose([_obs(alpha, render, target)], "phase2")
    (x1, y1, x2, y2), = res.boxes
    assert 16 <= x1 <= 22 and 38 <= x2 <= 44 and 8 <= y1 <= 14 and 26 <= y2 <= 32
    assert not res.mask[20, 30] and res.mask[2, 2] and res.mask[38, 58]


def test_error_proposer_phase2_takes_what_lies_at_the_focus_depth_as_the_subject():
    target = torch.rand(3, 40, 60, generator=torch.Generator().manual_seed(1))
    alpha = torch.ones(40, 60)
    alpha[:6] = 0.0                      # an empty strip at the top
    depth = torch.full((40, 60), 9.0)    # a far wall...
    depth[20:, :] = 3.0                  # ...a floor in front...
    depth[10:30, 25:35] = 4.0            # ...and the subject at the focus depth
    depth[:6] = 0.0
    obs = Observation("v", target.clone(), alpha, target, depth, focus_depth=4.0)
    res, = ErrorProposer().propose([obs], "phase2")
    assert res.boxes and res.mask[2, 30] and res.mask[12, 5]   # empty and far: background
    assert not res.mask[15, 30] and not res.mask[35, 5]        # subject and floor: not
    # Without a focus point the old heuristic answers (one box; the complement of the box).
    res, = ErrorProposer().propose([Observation("v", target.clone(), alpha, target, depth)],
                                   "phase2")
    assert len(res.boxes) == 1


def test_capture_focus_is_where_the_cameras_look_and_none_when_they_are_parallel():
    target = np.array([0.5, -0.2, 1.0])
    ring = []
    for i, a in enumerate(np.linspace(0, 2 * np.pi, 8, endpoint=False)):
        eye = target + 4.0 * np.array([math.cos(a), 0.3, math.sin(a)])
        fwd = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(np.array([0.0, -1.0, 0.0]), fwd)
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        w2c_rot = np.stack([right, down, fwd])                # world -> camera rows
        ring.append(Camera(colmap_id=i, R=w2c_rot.T, T=-w2c_rot @ eye, FoVx=1.0, FoVy=0.8,
                           image=torch.zeros(3, 8, 8), image_name=f"r{i}", uid=i))
    focus = capture_focus(ring)
    assert focus is not None and np.allclose(focus.numpy(), target, atol=1e-4)
    parallel = [camera(T=(x, 0.0, 4.0), uid=i) for i, x in enumerate((-1.0, 0.0, 1.0))]
    assert capture_focus(parallel) is None


def test_error_proposer_phase3_boxes_holes_without_a_photo():
    alpha = torch.ones(40, 60)
    alpha[5:25, 35:55] = 0.0
    res, = ErrorProposer().propose([_obs(alpha, torch.rand(3, 40, 60), None)], "phase3")
    assert res.mask[15, 45] and not res.mask[35, 10]


def test_fill_colours_spreads_surface_colour_into_holes():
    alpha = torch.zeros(32, 32)
    alpha[:, :16] = 1.0
    render = torch.zeros(3, 32, 32)
    render[0, :, :16] = 0.8  # red surface on the left, black premultiplied hole on the right
    filled = fill_colours(render, alpha)
    assert torch.allclose(filled[:, :, :16], render[:, :, :16])
    assert filled[0, 10, 18] > 0.5 and filled[1, 10, 18] < 0.1


def test_novel_views_lie_between_neighbouring_training_cameras(scene):
    from argparse import ArgumentParser
    from arguments import ModelParams
    from scene import Scene
    from scene.gaussian_model import GaussianModel
    parser = ArgumentParser()
    lp = ModelParams(parser)
    args = parser.parse_args(["-s", scene, "-m", "/tmp/unused", "--eval", "--llffhold", "5",
                              "--data_device", "cpu"])
    sc = Scene(lp.extract(args), GaussianModel(0))
    cams = sc.getTrainCameras()
    views = novel_views(cams, 6, seed=0, iteration=100)
    again = novel_views(cams, 6, seed=0, iteration=100)
    centres = torch.stack([c.camera_center.float() for c in cams])
    spread = float((centres - centres.mean(0)).norm(dim=1).max())
    for v, w in zip(views, again):
        assert torch.equal(v.world_view_transform, w.world_view_transform)
        d = (centres - v.camera_center.float()).norm(dim=1)
        assert float(d.min()) > 1e-4          # not a training pose
        assert float(d.min()) < 0.6 * spread  # but near one
    assert not torch.equal(views[0].world_view_transform,
                           novel_views(cams, 6, seed=0, iteration=101)[0].world_view_transform)


def test_grow_spawns_only_in_empty_pixels_within_budget(monkeypatch):
    import semantic.growth as guidance_mod

    class Strategy:
        def __init__(self):
            self.calls = []

    def add_regions(strategy, model, views, masks, budget, mode, scorer, min_priority=0.0,
                    protect_until=0, spawn_opacity=0.1, generator=None):
        strategy.calls.append((mode, int(masks[0].sum()), budget))
        return {"densified": min(budget, 3), "spawned": min(budget, int(masks[0].sum()))}
    monkeypatch.setattr(guidance_mod, "add_regions", add_regions)

    alpha = torch.zeros(1, 30, 30)
    alpha[0, :, :15] = 1.0
    mask = np.zeros((30, 30), bool)
    mask[:, 10:20] = True  # half over solid pixels, half over empty ones
    s = Strategy()
    out = grow(s, None, None, {"alpha": alpha}, mask, 20, {})
    (m1, n1, b1), (m2, n2, b2) = s.calls
    assert (m1, n1) == ("densify", 150) and (m2, n2) == ("spawn", 150)
    # spawn: what densify left (17), but at most one per 9 empty pixels (150 // 9 = 16)
    assert b1 == 10 and b2 == 16 and out == {"densified": 3, "spawned": 16}
    # spawn_first (hole fills): the empty part claims its 16 before densification gets 4.
    s.calls = []
    out = grow(s, None, None, {"alpha": alpha}, mask, 20, {}, spawn_first=True)
    assert [c[2] for c in s.calls] == [4, 16] and out == {"densified": 3, "spawned": 16}


def test_inspection_notebook_runs_on_a_guided_run(guided_run, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    nb = nbformat.read(os.path.join(repo, "notebooks", "inspect_regions.ipynb"), as_version=4)
    monkeypatch.setenv("REGIONS_MODEL", guided_run)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": repo}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "5 analyses, 1 refine prune(s)" in text and "phase2" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # the count plot and one figure per phase


def test_attach_moves_analyses_off_the_strategys_opacity_resets(tmp_path):
    """The wiring: guidance builds its schedule from the strategy's own reset iterations and
    leaves FastGS's final prunes on FastGS's schedule (guided Gaussians are protected one by
    one instead)."""
    from dataclasses import replace
    from types import SimpleNamespace

    from scene.strategies import FastGS
    from tests.test_arguments_resolve import run_config
    cams = [camera(T=(x, 0.0, 4.0), uid=i) for i, x in enumerate((-1.0, 0.0, 1.0))]
    args = run_config(["--region_proposer", "error", "--iterations", "6000"],
                      [(c.image_width, c.image_height) for c in cams]).semantic
    strategy = FastGS(total_iterations=6000, densify_until_iter=4500)
    trainer = SimpleNamespace(scene=SimpleNamespace(getTrainCameras=lambda: cams),
                              dataset=SimpleNamespace(model_path=str(tmp_path)), plugins=[],
                              strategy=strategy, cfg=SimpleNamespace(quiet=True))
    trainer.add_plugin = trainer.plugins.append
    guidance = SemanticGuidance(args, ErrorProposer()).attach(trainer)
    assert trainer.plugins[0] is guidance and len(trainer.plugins) == 2   # + completion
    assert strategy.final_prune_iterations() == [
        4800, 5100, 5400, 5700] and guidance.refine_prunes == []
    assert guidance.phase(100) == "phase1" and guidance.phase(3000) == "phase2"
    assert guidance.schedule.analysis_at(3000) is None
    assert guidance.schedule.analysis_at(3150).name == "phase2"
    sched = json.load(open(os.path.join(tmp_path, "regions", "schedule.json")))
    assert sched["opacity_resets"] == [3000]
    assert sched["phases"][1]["analyses"] == [2700, 3150, 3300, 3600, 3900, 4200]
    # The completion flags (tests/test_semantic_completion.py) get phase 2's window.
    trainer.plugins.clear()
    guidance = SemanticGuidance(replace(args, completion_background="phase2"),
                                ErrorProposer()).attach(trainer)
    assert trainer.plugins[0] is guidance
    completion = trainer.plugins[1]
    assert completion.random_background(4200) and not completion.random_background(4201)
    assert completion.start == 2400
