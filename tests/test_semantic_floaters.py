"""Floater pruning (phases 2 to 4): weakly supported Gaussians near a camera are found and
pruned; surfaces every camera sees are kept."""
import numpy as np
import pytest
import torch

from gaussian_renderer import render
from scene.view_scorer import ViewScorer
from semantic.floaters import near_cameras, prune_floaters, weak_gaussians
from tests.test_fastgs_strategy import fastgs
from tests.tiny import BG, PIPE, camera, model

pytestmark = pytest.mark.unit

EXTENT = 2.0
# Six cameras 0.5 apart along x, all looking along +z at the plane z = 0 from depth 4.
CAMS = [camera(T=(x, 0.0, 4.0), uid=i) for i, x in enumerate(np.linspace(-1.25, 1.25, 6))]
SCORER = ViewScorer(render, PIPE, BG, CAMS)


def scene_with_floater():
    """A 7x5 grid of Gaussians on z = 0 (every camera sees it) and one small blob 0.3 in front
    of camera 0 (only camera 0 sees it). Returns the model and the blob's row."""
    xs, ys = np.meshgrid(np.linspace(-1.5, 1.5, 7), np.linspace(-1.0, 1.0, 5))
    plane = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1)
    blob = CAMS[0].camera_center.numpy() + np.array([0.0, 0.0, 0.3])
    xyz = np.concatenate([plane, blob[None]])
    scale = np.full(len(xyz), 0.3)
    scale[-1] = 0.02
    return model(xyz, scale=scale, opacity=0.9), len(xyz) - 1


def test_support_counts_views_and_nearness_measures_distance_to_cameras():
    g, blob = scene_with_floater()
    support = SCORER.support(g, CAMS)
    assert abs(float(support[blob]) - 1 / 6) < 1e-6
    assert float(support[17]) == 1.0  # the plane's centre is seen from every camera
    near = near_cameras(g, CAMS, 0.25 * EXTENT)
    assert near.tolist() == [False] * blob + [True]


def test_only_the_blob_in_front_of_one_camera_is_weak():
    g, blob = scene_with_floater()
    weak = weak_gaussians(g, CAMS, EXTENT, SCORER, support_frac=0.2, near_frac=0.25)
    assert torch.nonzero(weak).flatten().tolist() == [blob]
    for off in ({"support_frac": 0.0, "near_frac": 0.25}, {"support_frac": 0.2, "near_frac": 0}):
        assert not weak_gaussians(g, CAMS, EXTENT, SCORER, **off).any()
    # A blob seen from a third of the views is supported, however near it is.
    assert not weak_gaussians(g, CAMS, EXTENT, SCORER, support_frac=0.15, near_frac=0.25).any()


def test_pruning_removes_the_blob_and_keeps_the_side_tables_in_step():
    g, blob = scene_with_floater()
    fastgs(g)
    assert prune_floaters(g, CAMS, EXTENT, SCORER, 0.2, 0.25) == 1
    assert g.num_points == blob and float(g.get_xyz.detach()[:, 2].abs().max()) < 1e-6
    assert sorted(g.tables) == ["abs_grad_accum", "denom", "grad_accum"]
    assert all(v.shape[0] == blob for v in g.tables.values())
    assert prune_floaters(g, CAMS, EXTENT, SCORER, 0.2, 0.25) == 0


def test_phase4_opens_by_pruning_every_floater(tmp_path):
    import json
    import types
    from semantic.guidance import SemanticGuidance
    g, blob = scene_with_floater()
    s = fastgs(g)
    trainer = types.SimpleNamespace(
        gaussians=g, strategy=s, cfg=types.SimpleNamespace(quiet=True),
        scorer=SCORER,
        scene=types.SimpleNamespace(getTrainCameras=lambda: CAMS, cameras_extent=EXTENT),
        dataset=types.SimpleNamespace(model_path=str(tmp_path)))
    args = types.SimpleNamespace(floater_support=0.2, floater_near=0.25)
    guidance = SemanticGuidance(args, proposer=None)
    assert guidance.refine_prune(trainer, 75, floaters=True, vcp=False) == 1
    assert g.num_points == blob  # no region needed: the blob is gone, the plane stays
    rec = json.load(open(tmp_path / "regions" / "iter_000075" / "regions.json"))
    assert rec["phase"] == "refine" and rec["pruned"] == 1
    args.floater_support = 0.0  # off: nothing more goes
    assert guidance.refine_prune(trainer, 80, floaters=True, vcp=False) == 0
