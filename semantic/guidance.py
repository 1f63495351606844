"""Semantic guidance: on the phase schedule, propose regions and grow Gaussians there.

Attached to the trainer as a hook (called after every optimizer step). At an analysis
iteration of phase N it samples `--semantic_num_samples` views (training views for phases 1
and 2, novel views for phase 3), renders them, asks the proposer for regions, and hands each
view's mask to the strategy's region hooks: Gaussians that cover masked pixels are densified
(ranked by coverage), and masked pixels no Gaussian covers (alpha < 0.5) get new Gaussians
back-projected onto their rays. In phases 2 and 3 new Gaussians first go to photo-consistent
depths (seeding, semantic/depth_prior.py). Phase 2 and 3 analyses and the start of phase 4
first prune the weakly supported Gaussians (floaters, semantic/floaters.py), so the views show
the holes they were hiding. Never more than `--phaseN_max_points` per view, never past
`--max_gaussians`; what is added is kept by the strategy's final pruning for
`--prune_protection` iterations. From `refine_start` on, the run only prunes and refines.
From phase 2 on the training loss also asks for coverage (semantic/completion.py).
"""
import copy
import os
import time
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from scene.strategies.multiview import sample_views, score_gaussians, spread_iterations, vcp_prune
from scene.strategies.regions import ALPHA_SOLID, SPAWN_OPACITY, spawn_pixels
from semantic.depth_prior import seed_points
from semantic import visualize
from semantic.completion import attach_completion
from semantic.config import SemanticConfig
from semantic.floaters import prune_floaters
from semantic.proposers import ErrorProposer, Observation, QwenProposer
from semantic.schedule import REFINE, PhaseSchedule
from semantic.views import analysis_views, capture_focus
from utils.errors import UserError
from utils.io_utils import atomic_write_json

# Floaters go at every analysis from phase 2 on, while FastGS still densifies (until
# --densify_until_iter) and can refill what they hid; pruning first in phase 3 left holes
# that nothing refilled (bench/RESULTS.md).
FLOATER_PHASES = ("phase2", "phase3")
SEED_PHASES = ("phase2", "phase3")  # where --spawn_depth photo places new Gaussians
PIXELS_PER_SPAWN = 9   # at most one new Gaussian per 3x3 pixels of empty region


def make_proposer(args: SemanticConfig, device: torch.device):
    """None (plain training), ErrorProposer or QwenProposer, from the semantic flags."""
    kind = args.region_proposer or ("qwen" if args.qwen_model_path else "")
    if not kind or kind == "none":
        return None
    if kind == "error":
        return ErrorProposer(args.max_boxes, args.max_box_frac, args.region_error_thresh)
    if kind == "qwen":
        if not args.qwen_model_path:
            raise UserError("--region_proposer qwen needs --qwen_model_path (a folder or hub id)")
        from semantic.prompts import load_prompts
        from semantic.vlm import load_vlm
        vlm_device = device if args.vlm_device in ("", "auto") else torch.device(args.vlm_device)
        vlm = load_vlm(args.qwen_model_path, vlm_device, dtype=args.vlm_dtype,
                       max_pixels=args.vlm_max_pixels, max_new_tokens=args.vlm_max_new_tokens,
                       offload=args.vlm_offload)
        return QwenProposer(vlm, load_prompts(args.prompt_file), args.max_boxes,
                            args.max_box_frac)
    raise UserError(f"--region_proposer must be qwen, error or none, got {kind!r}")


def fill_colours(render_black: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Colours for pixels a novel view leaves empty: the surrounding surface colours spread
    into the holes (normalised convolution of the alpha-premultiplied render)."""
    k = max(3, (max(render_black.shape[1:]) // 8) | 1)
    num = F.avg_pool2d(render_black[None], k, stride=1, padding=k // 2, count_include_pad=False)
    den = F.avg_pool2d(alpha[None, None], k, stride=1, padding=k // 2, count_include_pad=False)
    own = render_black / alpha.clamp_min(1e-3)
    spread = num[0] / den[0].clamp_min(1e-3)
    mean = render_black.sum((1, 2)) / alpha.sum().clamp_min(1e-3)
    spread = torch.where(den[0] > 1e-3, spread, mean[:, None, None])
    return torch.where(alpha >= ALPHA_SOLID, own, spread).clamp(0, 1)


class SemanticGuidance:
    def __init__(self, args: SemanticConfig, proposer):
        self.args = args
        self.proposer = proposer
        self.schedule: Optional[PhaseSchedule] = None
        self.focus: Optional[torch.Tensor] = None   # where the training cameras look
        self.records: List[dict] = []

    # -- wiring -------------------------------------------------------------------------
    def attach(self, trainer):
        self.schedule = PhaseSchedule.from_args(self.args,
                                                trainer.strategy.opacity_reset_iterations())
        self.focus = capture_focus(trainer.scene.getTrainCameras())
        self.write_schedule(trainer.dataset.model_path)
        trainer.hooks.append(self)
        trainer.phase_of = self.schedule.phase_at
        attach_completion(trainer, self.args, self.schedule.completion_window)
        strategy = trainer.strategy
        self.refine_prunes = []
        # FastGS keeps its own final-prune schedule (deferring it all behind the guided
        # window left too few iterations to recover from it); what guidance adds is protected
        # per Gaussian for --prune_protection iterations instead. Strategies without such a
        # schedule get FastGS's pruning in phase 4.
        if not hasattr(strategy, "final_prune_iterations") and self.args.final_prunes > 0:
            self.refine_prunes = spread_iterations(self.schedule.refine_start - 1,
                                                   self.schedule.total, self.args.final_prunes)
        if not trainer.cfg.quiet:
            tqdm.write(f"Semantic guidance ({type(self.proposer).__name__}): "
                       f"{self.schedule.describe()}")
        return self

    def write_schedule(self, model_path: str):
        """<model>/regions/schedule.json: the resolved phases, caps and refine start."""
        sched = self.schedule
        data = {"phases": [dict(name=p.name, start=p.start, end=p.end, interval=p.interval,
                                max_points=p.max_points,
                                analyses=sched.analyses_of(p))
                           for p in sched.phases],
                "opacity_resets": sched.resets,
                "prune_protection": sched.prune_protection, "refine_start": sched.refine_start,
                "total_iterations": sched.total, "proposer": type(self.proposer).__name__,
                "semantic_num_samples": self.args.semantic_num_samples,
                "region_min_priority": self.args.region_min_priority,
                "capture_focus": None if self.focus is None else
                [round(float(v), 4) for v in self.focus]}
        atomic_write_json(os.path.join(model_path, "regions", "schedule.json"), data)

    def __call__(self, trainer, iteration: int):
        phase = self.schedule.analysis_at(iteration)
        if phase is not None:
            self.analyse(trainer, iteration, phase)
        floaters = iteration == self.schedule.refine_start
        if floaters or iteration in self.refine_prunes:
            self.refine_prune(trainer, iteration, floaters, iteration in self.refine_prunes)

    # -- one analysis -------------------------------------------------------------------
    @torch.no_grad()
    def analyse(self, trainer, iteration: int, phase) -> dict:
        ctx = trainer.strategy_context
        g, strategy = trainer.gaussians, trainer.strategy
        render, pipe, bg = ctx["render"], ctx["pipe"], ctx["background"]
        dev = g.get_xyz.device
        t0 = time.perf_counter()
        n0 = g.num_points
        floaters = self.prune_floaters(trainer) if phase.name in FLOATER_PHASES else 0
        views = analysis_views(phase.name, trainer.scene.getTrainCameras(),
                               trainer.scene.getTestCameras(), self.args.semantic_num_samples,
                               self.args.seed, iteration, self.args.phase3_views)
        observations, pkgs = [], []
        for i, view in enumerate(views):
            if phase.name == "phase3":
                # No photo for a novel view: spawned Gaussians take the colours around them.
                black = render(view, g, pipe, torch.zeros(3, device=dev))
                view = copy.copy(view)
                view.original_image = fill_colours(black["render"], black["alpha"][0])
                views[i] = view
            pkg = render(view, g, pipe, bg)
            pkgs.append(pkg)
            target = None if phase.name == "phase3" else view.original_image.to(dev)
            name = f"{phase.name}_{i}_{getattr(view, 'image_name', 'view')}"
            alpha = pkg["alpha"][0]
            depth = torch.where(alpha >= ALPHA_SOLID, pkg["depth"][0] / alpha.clamp_min(1e-6),
                                torch.zeros_like(alpha))
            observations.append(Observation(name, pkg["render"], alpha, target, depth,
                                            self.focus_depth(view)))
        t_render = time.perf_counter() - t0
        results = self.proposer.propose(observations, phase.name)
        t_propose = time.perf_counter() - t0 - t_render

        per_view = []
        until = iteration + self.schedule.prune_protection
        new_rows = visualize.AddedGaussians(g)
        for vi, (view, pkg, obs, res) in enumerate(zip(views, pkgs, observations, results)):
            seeded = self.seed(strategy, g, view, obs, res.mask, phase, trainer, until)
            if seeded:  # the view changed: grow from what it shows now
                new_rows.note("seeded", vi, g.num_points - seeded)
                pkg = render(view, g, pipe, bg)
            added = self.grow(strategy, g, view, pkg, res.mask, phase.max_points - seeded, ctx,
                              self.args.region_min_priority, until,
                              self.spawn_opacity(phase), spawn_first=self.fills_holes(phase),
                              on_added=lambda mode, first, vi=vi: new_rows.note(mode, vi, first))
            per_view.append(dict(res.summary(), seeded=seeded, camera=visualize.view_pose(view),
                                 **added))
        record = {"iteration": iteration, "phase": phase.name, "views": per_view,
                  "gaussians_before": n0, "gaussians_after": g.num_points,
                  "densified": sum(v["densified"] for v in per_view),
                  "spawned": sum(v["spawned"] for v in per_view),
                  "seeded": sum(v["seeded"] for v in per_view), "pruned": floaters,
                  "render_s": round(t_render, 4), "propose_s": round(t_propose, 4),
                  "total_s": round(time.perf_counter() - t0, 4)}
        folder = visualize.region_dir(trainer.dataset.model_path, iteration)
        if self.args.save_region_vis:
            for obs, res in zip(observations, results):
                visualize.save_view_images(folder, obs, res)
        new_rows.save(folder)
        visualize.write_record(folder, record)
        self.records.append(record)
        if not trainer.cfg.quiet:
            tqdm.write(f"[ITER {iteration}] {phase.name}: {sum(len(r.boxes) for r in results)} "
                       f"boxes in {len(results)} views, +{record['densified']} densified, "
                       f"+{record['spawned']} spawned, +{record['seeded']} seeded, "
                       f"-{record['pruned']} pruned "
                       f"({record['total_s']:.1f} s)")
        return record

    def seed(self, strategy, model, view, obs, mask: np.ndarray, phase, trainer,
             protect_until: int = 0) -> int:
        """Phases 2 and 3 with --spawn_depth photo: new Gaussians at photo-consistent depths
        (semantic/depth_prior.py) on masked pixels the view shows empty; phase 2 also on
        background it shows at a depth the photos disagree with (a wall rendered in front of
        where it is fits its own photo and smears in every other view). Returns how many."""
        if self.args.spawn_depth != "photo" or phase.name not in SEED_PHASES:
            return 0
        limit = phase.max_points
        cap = strategy.budget(model)
        limit = limit if cap is None else min(limit, cap)
        picked = seed_points(view, torch.as_tensor(mask, dtype=torch.bool), obs.alpha, obs.depth,
                             obs.target, trainer.scene.getTrainCameras(), obs.focus_depth,
                             limit, reseed_solid=phase.name == "phase2",
                             textureless=self.args.textureless_depth)
        if picked is None:
            return 0
        xs, ys, z, rgb, spacing = picked
        first = model.num_points
        dev = model.get_xyz.device
        # Re-seeded surfaces start as fresh points; seeds in empty pixels as hole fills.
        empty = obs.alpha.cpu()[ys, xs] < ALPHA_SOLID
        opacity = torch.where(empty, self.spawn_opacity(phase), SPAWN_OPACITY).to(dev)
        n = spawn_pixels(strategy, model, view, xs.to(dev), ys.to(dev), z, rgb, spacing,
                         opacity)
        if protect_until > 0 and n:
            strategy.protect(model, first, protect_until)
        return n

    def fills_holes(self, phase) -> bool:
        """Whether this phase's new Gaussians in empty pixels are hole fills (--hole_opacity,
        spawned before densifying). Phase 3: novel-view holes no training photo may ever
        train. Phase 2 with --background_holes fill: background a training view renders
        empty; where its photo is dark, black background already matches it, so nothing in
        the loss would ever raise a fresh point's opacity there."""
        return phase.name == "phase3" or (phase.name == "phase2"
                                          and self.args.background_holes == "fill")

    def spawn_opacity(self, phase) -> float:
        """At the usual 0.1, a hole fill would never make its hole opaque, and would fall to
        the first opacity prune."""
        return self.args.hole_opacity if self.fills_holes(phase) else SPAWN_OPACITY

    @staticmethod
    def grow(strategy, model, view, pkg, mask: np.ndarray, budget: int, ctx,
             min_priority: float = 0.0, protect_until: int = 0,
             spawn_opacity: float = SPAWN_OPACITY, spawn_first: bool = False,
             on_added=None) -> dict:
        """Densify the covered part of the mask and spawn in its empty part, `budget` in all.
        The budget is shared in proportion to the two parts' areas, or with spawn_first the
        empty part takes what it needs first (spawning at most one Gaussian per
        PIXELS_PER_SPAWN empty pixels); what one part leaves goes to the other.
        on_added(mode, first_row) hears of the rows each step adds (see add_regions)."""
        hear = {} if on_added is None else {"on_added": on_added}
        mask_t = torch.as_tensor(mask, dtype=torch.bool)
        empty = (pkg["alpha"][0] < ALPHA_SOLID).cpu()
        spawn_mask, dense_mask = mask_t & empty, mask_t & ~empty
        n_mask = int(mask_t.sum())
        out = {"densified": 0, "spawned": 0}
        if n_mask == 0 or budget <= 0:
            return out
        n_empty = int(spawn_mask.sum())
        spawn_cap = n_empty // PIXELS_PER_SPAWN
        spawn_share = min(spawn_cap, budget if spawn_first else round(budget * n_empty / n_mask))
        if bool(dense_mask.any()):
            out["densified"] = strategy.add_regions(model, [view], [dense_mask],
                                                    budget - spawn_share, "densify", ctx,
                                                    min_priority, protect_until,
                                                    **hear)["densified"]
        spawn_budget = min(spawn_cap, budget - out["densified"])
        if spawn_budget > 0:
            out["spawned"] = strategy.add_regions(model, [view], [spawn_mask], spawn_budget,
                                                  "spawn", ctx, protect_until=protect_until,
                                                  spawn_opacity=spawn_opacity,
                                                  **hear)["spawned"]
        return out

    def focus_depth(self, view) -> Optional[float]:
        """View-space depth of the cameras' focus point (None: no focus, or behind)."""
        if self.focus is None:
            return None
        w2v = view.world_view_transform.detach().cpu().float()
        z = float(self.focus @ w2v[:3, 2] + w2v[3, 2])
        return z if z > 0 else None

    def prune_floaters(self, trainer) -> int:
        ctx = trainer.strategy_context
        return prune_floaters(trainer.gaussians, trainer.strategy.state,
                              trainer.scene.getTrainCameras(), trainer.scene.cameras_extent,
                              ctx["render"], ctx["pipe"], ctx["background"],
                              self.args.floater_support, self.args.floater_near)

    # -- pruning and refinement ----------------------------------------------------------
    @torch.no_grad()
    def refine_prune(self, trainer, iteration: int, floaters: bool, vcp: bool) -> int:
        """Phase 4: on entry the floaters formed since phase 3 go; strategies without their
        own VCP schedule also get FastGS's view-consistent pruning, `--final_prunes` times."""
        ctx, g = trainer.strategy_context, trainer.gaussians
        render, pipe, bg = ctx["render"], ctx["pipe"], ctx["background"]
        n0 = g.num_points
        if floaters:
            self.prune_floaters(trainer)
        if vcp:
            views = sample_views(ctx["cameras"], self.args.vcd_views, self.args.seed, iteration)
            _, score = score_gaussians(g, views, render, pipe, bg, self.args.loss_thresh,
                                       ctx.get("lambda_dssim", 0.2))
            vcp_prune(g, score, self.args.final_prune_opacity, self.args.final_prune_score,
                      trainer.strategy.state, keep=trainer.strategy.protected(g, iteration))
        record = {"iteration": iteration, "phase": REFINE, "views": [],
                  "gaussians_before": n0, "gaussians_after": g.num_points,
                  "densified": 0, "spawned": 0, "seeded": 0, "pruned": n0 - g.num_points}
        visualize.write_record(visualize.region_dir(trainer.dataset.model_path, iteration),
                               record)
        self.records.append(record)
        if floaters and not trainer.cfg.quiet:
            tqdm.write(f"[ITER {iteration}] refine: -{record['pruned']} pruned (floaters"
                       f"{' and VCP' if vcp else ''})")
        return record["pruned"]
