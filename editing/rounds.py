"""One edit round, in five named steps (`run_round` reads top to bottom):

 1. _prepare_views: load the previous round's snapshot (round 0 = the trained model), seed the
    round, lift the RoI onto the Gaussians, select the views and render them (the pre-edit
    renders);
 2. _edit_views: edit each render (the render and the instruction are the editor's input, never
    the photos) with the view's seed, and blend the edit in with the view's soft RoI mask;
 3. _optimise: the blended edits become the training targets (camera.original_image is
    swapped); --round_iters iterations, then --refine_iters GS-only ones, on the shared loop with
    the edit objective (losses.py) and the mode policy (policies.py);
 4. _score: render the views again and measure the round (metrics.py); the cameras get their
    photos back;
 5. _commit: PNGs, RoI weights, metrics, PLY, manifest entry, checkpoint; training_state.yaml
    comes last and is the commit point (artifacts.py).
The session (session.py) holds what lives across rounds.
"""
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
from tqdm import tqdm

from editing import artifacts
from editing.losses import EditObjective
from editing.metrics import colour_spread, summarise, view_metrics
from editing.policies import ModePolicy, restart_position_schedule, set_anchors
from editing.roi import RoI, build_roi
from editing.views import select_views, view_directions
from scene.sampler import CameraSampler
from utils.general_utils import set_seed
from utils.image_utils import save_png


class Timer:
    """Wall-clock seconds per named stage, summed over repeated entries."""

    def __init__(self):
        self.s: Dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.s[name] = self.s.get(name, 0.0) + time.perf_counter() - t

    def rounded(self) -> dict:
        out = {k: round(v, 3) for k, v in self.s.items()}
        out["total"] = round(sum(self.s.values()), 3)
        return out


def round_seed(seed: int, r: int) -> int:
    return int(seed) + 1000 * int(r)


@dataclass
class RoundViews:
    """What round `index` works on: the RoI, the selected views in editing order, and per view
    (by view index) its soft RoI mask, visibility, pre-edit render, diffusion seed and blended
    edit (the last two filled by _edit_views)."""
    index: int
    seed: int
    first_iteration: int
    gaussians_start: int
    roi: RoI
    selection: List[dict]
    masks: Dict[int, torch.Tensor]
    visibility: Dict[int, torch.Tensor]
    pre: Dict[int, torch.Tensor]
    seeds: Dict[int, int] = field(default_factory=dict)
    edited: Dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def ids(self) -> List[int]:
        return [s["view"] for s in self.selection]


@dataclass
class RoundResult:
    """What the round produced: its last iteration and the policy's events (_optimise), the
    post-optimisation renders and the metrics (_score)."""
    last_iteration: int
    events: List[dict]
    post: Dict[int, torch.Tensor] = field(default_factory=dict)
    per_view: Dict[int, dict] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    clip: Optional[float] = None


def run_round(session, r: int):
    """Run edit round r on the session and commit it (see the module docstring)."""
    timer = Timer()
    views = _prepare_views(session, r, timer)
    _edit_views(session, views, timer)
    result = _optimise(session, views, timer)
    _score(session, views, result, timer)
    _commit(session, views, result, timer)


def _prepare_views(session, r: int, timer: Timer) -> RoundViews:
    """Step 1: snapshot r-1 in the model, the round's seed, the RoI, the views and their
    pre-edit renders."""
    cfg, g = session.cfg, session.trainer.gaussians
    it0 = session.restore_snapshot(r - 1)
    restart_position_schedule(g, it0 + 1)
    seed = round_seed(cfg.seed, r)
    set_seed(seed)
    n_start = g.num_points
    with timer("render"):
        roi = build_roi(g, session.cams, session.annotations, session.render, session.pipe, cfg)
        coverage = roi.coverage()
        centre = (roi.centroid() if not roi.whole_image else g.get_xyz.detach().mean(0))
        selection = select_views(coverage, view_directions(session.cams, centre.cpu().numpy()),
                                 cfg.edit_fraction, cfg.off_axis_fraction,
                                 session.previous_residuals(r))
        sel = [s["view"] for s in selection]
        masks = {v: roi.mask(v) for v in sel}
        vis = {v: roi.visibility(v) for v in sel}
        pre = {v: session.render_view(g, v) for v in sel}
    return RoundViews(r, seed, it0 + 1, n_start, roi, selection, masks, vis, pre)


def _edit_views(session, views: RoundViews, timer: Timer):
    """Step 2: edit each pre-edit render (diffusion seed: round seed + view) and blend the
    edit in with the view's soft RoI mask."""
    cfg = session.cfg
    with timer("diffusion"):
        for v in tqdm(views.ids, desc=f"Round {views.index}: editing views", disable=cfg.quiet,
                      dynamic_ncols=True):
            views.seeds[v] = views.seed + v
            out = session.editor(views.pre[v], cfg.instruction, views.seeds[v]).to(session.device)
            m = views.masks[v][None]
            views.edited[v] = (m * out + (1 - m) * views.pre[v]).clamp(0, 1)


def _optimise(session, views: RoundViews, timer: Timer) -> RoundResult:
    """Step 3: swap the edits in as targets and run the loop over the round's views:
    --round_iters iterations, then --refine_iters with the policy's events off."""
    cfg, trainer, g = session.cfg, session.trainer, session.trainer.gaussians
    sel, it0 = views.ids, views.first_iteration - 1
    session.swap_targets(views.edited)
    keep = {v: (views.pre[v] if cfg.preserve_to == "pre_edit" else session.photo(v))
            for v in sel}
    set_anchors(g, views.roi.weights)
    last = it0 + cfg.round_iters
    cams = [session.cams[v] for v in sel]
    policy = ModePolicy(cfg, session.strategy, cams, views.masks, sel, it0 + 1, last,
                        views.index)
    objective = EditObjective(session.loss_weights, keep, views.masks,
                              {id(session.cams[v]): v for v in sel},
                              session.strategy.cameras_extent)
    sampler = CameraSampler(len(sel), views.seed)
    with timer("optimisation"):
        trainer.train(it0 + 1, last, cams, sampler, objective, [policy])
    it_end = last + cfg.refine_iters
    if cfg.refine_iters:
        policy.refining = True
        with timer("refine"):
            trainer.train(last + 1, it_end, cams, sampler, objective, [policy])
    return RoundResult(it_end, policy.log)


def _score(session, views: RoundViews, result: RoundResult, timer: Timer):
    """Step 4: post-optimisation renders and metrics against the targets, the original
    model's renders and the photos; then the cameras hold the photos again."""
    cfg, g, sel = session.cfg, session.trainer.gaussians, views.ids
    with timer("render"):
        result.post = {v: session.render_view(g, v) for v in sel}
    with timer("metrics"):
        result.per_view = {v: view_metrics(result.post[v], views.edited[v],
                                           session.original_render(v), session.photo(v),
                                           views.masks[v], session.lpips) for v in sel}
        result.summary = summarise(result.per_view)
        if session.clip is not None:
            result.clip = session.clip([session.original_render(v) for v in sel],
                                       [result.post[v] for v in sel], cfg.clip_source_text,
                                       cfg.clip_target_text or cfg.instruction)
    session.restore_photos()


def _commit(session, views: RoundViews, result: RoundResult, timer: Timer):
    """Step 5: write the round's files (each atomically), then training_state.yaml: only
    then does the round count as complete."""
    cfg, L, g, r = session.cfg, session.layout, session.trainer.gaussians, views.index
    with timer("save"):
        _save_images(session, views, result)
        timings = timer.rounded()
        artifacts.write_yaml(L.metrics(r), _metrics_record(session, views, result, timings))
        g.save_ply(L.ply(r))
        session.manifest["rounds"] = artifacts.replace_round(
            session.manifest["rounds"],
            artifacts.manifest_round(cfg, r, views.seed, views.ids, views.seeds,
                                     views.first_iteration, result.last_iteration,
                                     g.num_points, timings))
        artifacts.write_manifest(L, session.manifest)
        artifacts.save_checkpoint(L.checkpoint(r), r, result.last_iteration, g)
        artifacts.copy_atomic(L.checkpoint(r), L.latest)
    # The commit point: only now does this round count as complete.
    state = session.state
    state["rounds"] = artifacts.replace_round(state["rounds"], {
        "round": r, "seed": views.seed, "first_iteration": views.first_iteration,
        "last_iteration": result.last_iteration, "iterations": cfg.round_iters,
        "refine_iterations": cfg.refine_iters, "views": views.ids,
        "residuals": {int(v): result.per_view[v]["roi_residual"] for v in views.ids},
        "gaussians": g.num_points,
        "checkpoint": os.path.relpath(L.checkpoint(r), cfg.output),
        "timings_s": timer.rounded(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    state["completed_rounds"] = r
    state["iteration"] = result.last_iteration
    artifacts.write_state(L, state)
    if not cfg.quiet:
        _print_round(cfg, r, len(views.ids), g.num_points, timer.rounded(), result.summary)


def _save_images(session, views: RoundViews, result: RoundResult):
    """The round's renders, edits, masks and visibilities as PNGs, and the RoI weights."""
    L, r = session.layout, views.index
    for v in views.ids:
        save_png(views.pre[v], L.render(r, "pre_edit", v))
        save_png(views.edited[v], L.render(r, "edited", v))
        save_png(result.post[v], L.render(r, "post_opt", v))
        save_png(views.masks[v], L.roi(r, f"mask_view_{v:03d}.png"))
        save_png(views.visibility[v], L.roi(r, f"visibility_view_{v:03d}.png"))
    # The lifted weights as carried through the round's clone/split/prune/spawn, so they
    # are row-aligned with point_cloud/round_<r>/point_cloud.ply.
    weights = 1.0 - session.trainer.gaussians.tables["edit_damp"]
    artifacts.save_npy(weights.detach().cpu().numpy().astype(np.float32),
                       L.roi(r, "gaussian_weights.npy"))


def _metrics_record(session, views: RoundViews, result: RoundResult, timings: dict) -> dict:
    """metrics/round_<r>.yaml: the round's iterations, Gaussians, RoI, views and measures."""
    cfg, g, sel = session.cfg, session.trainer.gaussians, views.ids
    roi = views.roi
    return {
        "round": views.index, "instruction": cfg.instruction, "mode": cfg.mode,
        "iterations": {"first": views.first_iteration, "last": result.last_iteration,
                       "optimisation": cfg.round_iters, "refine": cfg.refine_iters},
        "gaussians": {"start": views.gaussians_start, "end": g.num_points},
        "roi": {"whole_image": roi.whole_image,
                "gaussians_in_roi": int((roi.weights > 0.5).sum()),
                "mean_weight": round(float(roi.weights.mean()), 6)},
        "views": [dict(s, image_name=session.cams[s["view"]].image_name,
                       seed=views.seeds[s["view"]]) for s in views.selection],
        "mean": result.summary,
        "per_view": {int(v): m for v, m in result.per_view.items()},
        "consistency": {
            "roi_colour_spread_targets": colour_spread([views.edited[v] for v in sel],
                                                       [views.masks[v] for v in sel]),
            "roi_colour_spread_renders": colour_spread([result.post[v] for v in sel],
                                                       [views.masks[v] for v in sel])},
        "clip_direction": result.clip,
        "clip_note": None if session.clip else "off (no --clip_model)",
        "lpips_note": session.lpips.reason,
        "events": result.events,
        "timings_s": timings,
    }


def _print_round(cfg, r: int, n_views: int, n_gaussians: int, t: dict, summary: dict):
    print(f"[ROUND {r}/{cfg.rounds}] {n_views} views, {n_gaussians} Gaussians; "
          f"render {t.get('render', 0):.1f} s, diffusion {t.get('diffusion', 0):.1f} s, "
          f"optimisation {t.get('optimisation', 0) + t.get('refine', 0):.1f} s; "
          f"RoI PSNR {_fmt(summary.get('roi_psnr'))} dB, outside vs original "
          f"{_fmt(summary.get('outside_psnr_to_original'))} dB")


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"
