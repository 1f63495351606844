"""Semantic guidance: on the phase schedule, propose regions and grow Gaussians there.

A training-loop plugin (scene/plugins.py): it labels each iteration with its phase and, after
the optimizer step of an analysis iteration of phase N, samples
`--semantic_num_samples` views (training views for phases 1
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

import torch
import torch.nn.functional as F
from tqdm import tqdm

from scene.plugins import TrainingPlugin
from scene.strategies.multiview import sample_views, spread_iterations, view_consistent_prune
from semantic import visualize
from semantic.completion import completion_plugin
from semantic.config import SemanticConfig
from semantic.floaters import prune_floaters
from semantic.growth import RegionGrowth, grow
from semantic.proposers import ErrorProposer, Observation, QwenProposer
from semantic.schedule import REFINE, PhaseSchedule
from semantic.views import analysis_views, capture_focus
from utils.device import resolve_secondary_device
from utils.errors import UserError
from utils.general_utils import seeded_generator
from utils.graphics_utils import ALPHA_SOLID
from utils.io_utils import atomic_write_json

# Floaters go at every analysis from phase 2 on, while FastGS still densifies (until
# --densify_until_iter) and can refill what they hid; pruning first in phase 3 left holes
# that nothing refilled (bench/RESULTS.md).
FLOATER_PHASES = ("phase2", "phase3")


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
        vlm_device = resolve_secondary_device(args.vlm_device, device, "--vlm_device")
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


class SemanticGuidance(TrainingPlugin):
    """Semantic guidance on its phase schedule (the module docstring); `attach` adds it, and
    the completion pressure from phase 2 on, to a Trainer's plugins."""

    def __init__(self, args: SemanticConfig, proposer):
        self.args = args
        self.proposer = proposer
        self.schedule: Optional[PhaseSchedule] = None
        self.focus: Optional[torch.Tensor] = None   # where the training cameras look
        self.records: List[dict] = []

    # -- wiring -------------------------------------------------------------------------
    def attach(self, trainer):
        """Make the schedule for this run, write regions/schedule.json and add the plugins."""
        self.schedule = PhaseSchedule.from_args(self.args,
                                                trainer.strategy.opacity_reset_iterations())
        self.focus = capture_focus(trainer.scene.getTrainCameras())
        self.write_schedule(trainer.dataset.model_path)
        trainer.add_plugin(self)
        completion = completion_plugin(self.args, self.schedule.completion_window)
        if completion is not None:
            trainer.add_plugin(completion)
        self.refine_prunes = []
        # FastGS keeps its own final-prune schedule (deferring it all behind the guided
        # window left too few iterations to recover from it); what guidance adds is protected
        # per Gaussian for --prune_protection iterations instead. Strategies without such a
        # schedule get FastGS's pruning in phase 4.
        if not trainer.strategy.HAS_FINAL_PRUNES and self.args.final_prunes > 0:
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

    # -- plugin moments -----------------------------------------------------------------
    def phase(self, iteration: int) -> str:
        return self.schedule.phase_at(iteration)

    def after_step(self, step):
        trainer, iteration = step.trainer, step.iteration
        phase = self.schedule.analysis_at(iteration)
        if phase is not None:
            self.analyse(trainer, iteration, phase)
        floaters = iteration == self.schedule.refine_start
        if floaters or iteration in self.refine_prunes:
            self.refine_prune(trainer, iteration, floaters, iteration in self.refine_prunes)

    # -- one analysis -------------------------------------------------------------------
    @torch.no_grad()
    def analyse(self, trainer, iteration: int, phase) -> dict:
        """One analysis, in three steps: observe (prune floaters in phases 2-3, render the
        phase's views), propose (the proposer's regions per view), apply (seed, densify and
        spawn in them); then save the record and what was added to regions/iter_<N>/."""
        t0 = time.perf_counter()
        n0 = trainer.gaussians.num_points
        floaters = self.prune_floaters(trainer) if phase.name in FLOATER_PHASES else 0
        views, pkgs, observations = self.observe(trainer, iteration, phase)
        t_render = time.perf_counter() - t0
        results = self.proposer.propose(observations, phase.name)
        t_propose = time.perf_counter() - t0 - t_render
        per_view, added = self.apply(trainer, iteration, phase, views, pkgs, observations,
                                     results)
        record = {"iteration": iteration, "phase": phase.name, "views": per_view,
                  "gaussians_before": n0, "gaussians_after": trainer.gaussians.num_points,
                  "densified": sum(v["densified"] for v in per_view),
                  "spawned": sum(v["spawned"] for v in per_view),
                  "seeded": sum(v["seeded"] for v in per_view), "pruned": floaters,
                  "render_s": round(t_render, 4), "propose_s": round(t_propose, 4),
                  "total_s": round(time.perf_counter() - t0, 4)}
        folder = visualize.region_dir(trainer.dataset.model_path, iteration)
        if self.args.save_region_vis:
            for obs, res in zip(observations, results):
                visualize.save_view_images(folder, obs, res)
        added.save(folder)
        visualize.write_record(folder, record)
        self.records.append(record)
        if not trainer.cfg.quiet:
            tqdm.write(f"[ITER {iteration}] {phase.name}: {sum(len(r.boxes) for r in results)} "
                       f"boxes in {len(results)} views, +{record['densified']} densified, "
                       f"+{record['spawned']} spawned, +{record['seeded']} seeded, "
                       f"-{record['pruned']} pruned "
                       f"({record['total_s']:.1f} s)")
        return record

    def observe(self, trainer, iteration: int, phase):
        """The phase's views (training views, or novel ones in phase 3 whose target is the
        render with its holes filled by the colours around them), their renders and the
        proposer's Observations (render, alpha, photo, depth, the focus depth)."""
        g, scorer = trainer.gaussians, trainer.scorer
        dev = g.get_xyz.device
        views = analysis_views(phase.name, trainer.scene.getTrainCameras(),
                               trainer.scene.getTestCameras(), self.args.semantic_num_samples,
                               self.args.seed, iteration, self.args.phase3_views)
        observations, pkgs = [], []
        for i, view in enumerate(views):
            if phase.name == "phase3":
                # No photo for a novel view: spawned Gaussians take the colours around them.
                black = scorer.render(view, g, background=torch.zeros(3, device=dev))
                view = copy.copy(view)
                view.original_image = fill_colours(black["render"], black["alpha"][0])
                views[i] = view
            pkg = scorer.render(view, g)
            pkgs.append(pkg)
            target = None if phase.name == "phase3" else view.original_image.to(dev)
            name = f"{phase.name}_{i}_{getattr(view, 'image_name', 'view')}"
            alpha = pkg["alpha"][0]
            depth = torch.where(alpha >= ALPHA_SOLID, pkg["depth"][0] / alpha.clamp_min(1e-6),
                                torch.zeros_like(alpha))
            observations.append(Observation(name, pkg["render"], alpha, target, depth,
                                            self.focus_depth(view)))
        return views, pkgs, observations

    def apply(self, trainer, iteration: int, phase, views, pkgs, observations, results):
        """Grow Gaussians in each view's regions (semantic/growth.py), protected until
        iteration + --prune_protection. Returns the per-view summaries and the added rows."""
        g, strategy, scorer = trainer.gaussians, trainer.strategy, trainer.scorer
        growth = RegionGrowth(self.args, trainer.scene.getTrainCameras())
        generator = seeded_generator(self.args.seed, iteration)  # the pixels seeded and spawned
        per_view = []
        until = iteration + self.schedule.prune_protection
        new_rows = visualize.AddedGaussians(g)
        for vi, (view, pkg, obs, res) in enumerate(zip(views, pkgs, observations, results)):
            seeded = growth.seed(strategy, g, view, obs, res.mask, phase, until, generator)
            if seeded:  # the view changed: grow from what it shows now
                new_rows.note("seeded", vi, g.num_points - seeded)
                pkg = scorer.render(view, g)
            added = grow(strategy, g, view, pkg, res.mask, phase.max_points - seeded, scorer,
                         self.args.region_min_priority, until, growth.spawn_opacity(phase),
                         spawn_first=growth.fills_holes(phase),
                         on_added=lambda mode, first, vi=vi: new_rows.note(mode, vi, first),
                         generator=generator)
            per_view.append(dict(res.summary(), seeded=seeded, camera=visualize.view_pose(view),
                                 **added))
        return per_view, new_rows

    def focus_depth(self, view) -> Optional[float]:
        """View-space depth of the cameras' focus point (None: no focus, or behind)."""
        if self.focus is None:
            return None
        w2v = view.world_view_transform.detach().cpu().float()
        z = float(self.focus @ w2v[:3, 2] + w2v[3, 2])
        return z if z > 0 else None

    def prune_floaters(self, trainer) -> int:
        return prune_floaters(trainer.gaussians, trainer.scene.getTrainCameras(),
                              trainer.scene.cameras_extent, trainer.scorer,
                              self.args.floater_support, self.args.floater_near)

    # -- pruning and refinement ----------------------------------------------------------
    @torch.no_grad()
    def refine_prune(self, trainer, iteration: int, floaters: bool, vcp: bool) -> int:
        """Phase 4: on entry the floaters formed since phase 3 go; strategies without their
        own VCP schedule also get FastGS's view-consistent pruning, `--final_prunes` times."""
        g, scorer = trainer.gaussians, trainer.scorer
        n0 = g.num_points
        if floaters:
            self.prune_floaters(trainer)
        if vcp:
            views = sample_views(scorer.cameras, self.args.vcd_views, self.args.seed, iteration)
            view_consistent_prune(g, scorer, views, self.args.loss_thresh,
                                  self.args.final_prune_opacity, self.args.final_prune_score,
                                  keep=trainer.strategy.protected(g, iteration))
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
