"""FastGS densification and pruning (Ren et al. 2025, "FastGS: Training 3D Gaussian Splatting
in 100 Seconds") as a strategy: multi-view consistent densification (VCD) and pruning (VCP)."""
import math
from dataclasses import dataclass
from typing import List

import torch

from scene.strategies.base import (BIG_FRACTION, RESET_MARGIN, RESET_OPACITY, Strategy,
                                   periodic_resets)
from scene.strategies.regions import add_regions
from scene.strategies.multiview import sample_views, spread_iterations, view_consistent_prune
from scene.view_scorer import high_error_map
from utils.general_utils import seeded_generator
from utils.graphics_utils import ALPHA_SOLID
from utils.flag_fields import flag
from utils.ranges import POINTS_MAX, Int, fraction, non_negative

OPACITY_CLAMP = 0.8       # FastGS caps opacities after every densification event
PRUNE_FRACTION = 0.5      # share of the low-opacity / oversized candidates removed per event
SPARSE_SPEEDUP = 5        # densification cadence multiplier while the model is sparse
REFERENCE_PIXELS = 1_000_000  # FastGS's pixel-count thresholds are for ~1-megapixel images


@dataclass
class FastGS(Strategy):
    """Densify where many views agree the reconstruction is wrong; prune what they blame.

    densify_from_iter, densify_until_iter, densification_interval: densification events happen
        every interval after densify_from_iter and before densify_until_iter. At each event
        `vcd_views` training views (sampled reproducibly from `seed` and the iteration) are
        rendered and scored (scene/strategies/multiview.py).
    loss_thresh: per-view normalised L1 error above which a pixel is high-error.
    importance_thresh: a Gaussian is densified only if it covers at least this many high-error
        pixels per sampled view on average, and
    grad_thresh: ... its mean view-space gradient exceeds this, when it is small (clone), or
    grad_abs_thresh: ... its mean absolute gradient exceeds this, when it is large (split);
    dense: fraction of the scene extent separating small from large.
    min_opacity: Gaussians below it (and, after the first opacity reset, those larger than 0.1
        of the extent) are pruning candidates at each event; the PRUNE_FRACTION of them with
        the highest multi-view pruning score are removed.
    opacity_reset_interval: opacity reset to 0.01, as 3DGS (never in the last RESET_MARGIN).
    final_prunes, final_prune_opacity, final_prune_score: after densification, `final_prunes`
        events spread evenly over the rest of the run remove Gaussians below
        final_prune_opacity or above final_prune_score (FastGS: 18k/21k/24k/27k of 15k..30k).
    final_prune_from: those events start no earlier than this iteration (0 = end of
        densification). Gaussians that semantic guidance protects (`Strategy.protect`) are
        kept by them until their protection ends.
    sparse_points: below this many Gaussians the model is sparse and densifies more often
        (see `interval`).
    uncovered_spawn: per sampled view and event, at most this many Gaussians are spawned on
        high-error pixels the model leaves transparent (see `spawn_uncovered`).
    """
    densification_interval: int = 500
    white_background: bool = False
    vcd_views: int = flag(10, "fastgs: training views rendered at each densification / pruning "
                              "event to score Gaussians across views", Int(1, 1000))
    loss_thresh: float = flag(0.1, "fastgs: a pixel is high-error when its L1 error, min-max "
                                   "normalised per view, exceeds this", fraction())
    importance_thresh: float = flag(
        5.0, "fastgs: densify only Gaussians covering at least this many high-error pixels "
             "per sampled view (mean), on 1-megapixel images; scaled down with smaller images",
        non_negative())
    grad_thresh: float = flag(0.0002, "fastgs: mean view-space gradient for cloning small "
                                      "Gaussians", non_negative())
    grad_abs_thresh: float = flag(0.0012, "fastgs: mean absolute (AbsGS) gradient for "
                                          "splitting large ones", non_negative())
    dense: float = flag(0.001, "fastgs: fraction of the scene extent separating clone from "
                               "split", fraction())
    final_prunes: int = flag(4, "fastgs: pruning events spread evenly between "
                                "--densify_until_iter and --iterations", Int(0, 1000))
    final_prune_opacity: float = flag(0.1, "fastgs: those events remove Gaussians below this "
                                           "opacity", fraction())
    final_prune_score: float = flag(0.9, "fastgs: ... and those whose multi-view pruning "
                                         "score exceeds this", fraction())
    final_prune_from: int = 0
    sparse_points: int = flag(2000, "fastgs: below this many Gaussians (a sparse start such as "
                                    "--random_init 100) densification runs 5x as often",
                              Int(0, POINTS_MAX))
    uncovered_spawn: int = flag(
        200, "fastgs: per sampled view and densification event, spawn at most this many "
             "Gaussians on high-error pixels no Gaussian covers (0 = off)", Int(0, POINTS_MAX))
    seed: int = 0

    TABLES = ("grad_accum", "abs_grad_accum", "denom")
    HAS_FINAL_PRUNES = True
    label = "fastgs"

    def size_fraction(self):
        return self.dense

    def densify_priority(self, model):
        return torch.maximum(self.mean_gradient(model) / self.grad_thresh,
                             self.mean_gradient(model, "abs_grad_accum") / self.grad_abs_thresh)

    # -- schedule ---------------------------------------------------------------------------
    @classmethod
    def auto_default(cls, name, args):
        """--densification_interval 0: FastGS's 500 is 1/60 of its 30k-iteration runs; keep
        that share for shorter runs, but never below the 3DGS cadence of 100 (3000 iterations
        -> 100, 30000 -> 500)."""
        if name == "densification_interval":
            iterations = int(getattr(args, "iterations", 30_000) or 30_000)
            return min(cls.densification_interval, max(100, iterations // 60))
        return super().auto_default(name, args)


    def final_prune_iterations(self) -> List[int]:
        """`final_prunes` iterations spread evenly over (end of densification, end of run):
        with 15k/30k and 4 prunes this is FastGS's 18k, 21k, 24k, 27k."""
        start = max(min(self.densify_until_iter, self.total_iterations), self.final_prune_from)
        return spread_iterations(start, self.total_iterations, self.final_prunes)

    def opacity_reset_iterations(self) -> List[int]:
        return periodic_resets(self.opacity_reset_interval, self.densify_until_iter,
                               self.total_iterations, RESET_MARGIN, self.white_background,
                               self.densify_from_iter)

    def step_post_backward(self, iteration, model, render_pkg, scorer=None):
        if iteration < self.densify_until_iter:
            self.accumulate_gradients(model, render_pkg, absolute=True)
            if iteration > self.densify_from_iter and iteration % self.interval(model) == 0:
                self.densify_and_prune(model, iteration, self._need(scorer))
            if self.reset_due(iteration, self.opacity_reset_interval, self.densify_from_iter,
                              self.white_background):
                model.reset_opacity(RESET_OPACITY)
        if iteration in self.final_prune_iterations():
            self.final_prune(model, iteration, self._need(scorer))

    @staticmethod
    def _need(scorer):
        if scorer is None:
            raise ValueError("the fastgs strategy needs the loop's ViewScorer at densification "
                             "events")
        return scorer

    # -- decisions --------------------------------------------------------------------------
    def interval(self, model) -> int:
        """Iterations between densification events for the model as it is now.

        Sparse starts (e.g. --random_init 100): FastGS's importance test does not block them
        (a few hundred Gaussians each cover hundreds of high-error pixels, so all pass), but
        with dense = 0.001 of the extent nothing counts as small, every densification is a
        split, and a model can at most double per event. At one event every 500 iterations a
        100-point start stays tiny for thousands of iterations. So while the model has fewer
        than `sparse_points` Gaussians, events come SPARSE_SPEEDUP times as often (the 3DGS
        cadence of 100 at the default 500). SfM starts (thousands of points) are unaffected.
        """
        if model.num_points < self.sparse_points:
            return max(1, self.densification_interval // SPARSE_SPEEDUP)
        return self.densification_interval

    def importance_threshold(self, cameras) -> float:
        """`importance_thresh` counts pixels on ~1-megapixel images (FastGS's setting). On
        smaller images a Gaussian of the same size covers proportionally fewer pixels, so the
        threshold scales with the mean image area, never up (192x108 images: 5 -> 0.1; what
        the unscaled threshold costs: bench/RESULTS.md, FastGS from SfM points)."""
        sample = list(cameras)[:32]
        if not sample:
            return self.importance_thresh
        pixels = sum(c.image_width * c.image_height for c in sample) / len(sample)
        return self.importance_thresh * min(1.0, pixels / REFERENCE_PIXELS)

    @torch.no_grad()
    def densify_and_prune(self, model, iteration, scorer) -> dict:
        views = sample_views(scorer.cameras, self.vcd_views, self.seed, iteration)
        importance, prune_score = scorer.multiview_scores(model, views, self.loss_thresh)
        grads = self.mean_gradient(model)
        abs_grads = self.mean_gradient(model, "abs_grad_accum")
        small = self.small_mask(model)
        supported = importance >= self.importance_threshold(scorer.cameras)
        clone = supported & small & (grads >= self.grad_thresh)
        split = supported & ~small & (abs_grads >= self.grad_abs_thresh)
        # Over the cap, the candidates with most error support x gradient excess win.
        want = self.top_k_mask(clone | split, importance * self.densify_priority(model),
                               self.budget(model))
        clone, split = clone & want, split & want

        model.set_table("prune_score", prune_score)  # a table follows clones and splits
        model.clone_and_split(clone, split)
        score = model.drop_table("prune_score")

        cand = (model.get_opacity < self.min_opacity).squeeze(1)
        if iteration > self.opacity_reset_interval:
            cand |= model.get_scaling.max(dim=1).values > BIG_FRACTION * self.cameras_extent
        n_remove = math.ceil(int(cand.sum()) * PRUNE_FRACTION)
        remove = self.top_k_mask(cand, score, n_remove)
        model.prune(remove)
        if not self.near_end(iteration):
            model.reset_opacity(OPACITY_CLAMP)
        spawned = self.spawn_uncovered(model, iteration, scorer)
        self.initialize_state(model)
        return dict(cloned=int(clone.sum()), split=int(split.sum()), pruned=int(remove.sum()),
                    candidates=int(cand.sum()), spawned=spawned)

    @torch.no_grad()
    def spawn_uncovered(self, model, iteration, scorer) -> int:
        """Spawn Gaussians on the high-error pixels that no Gaussian covers (alpha < 0.5) in the
        sampled views, at the back of what each view sees (regions.spawn_in_region).

        Clone and split only grow Gaussians where some already are: from 100 random points
        near the middle of a scene they never reach the walls and sky behind it (a sharp table
        in front of noise: bench/RESULTS.md, FastGS from random points). Once the model
        covers the views there is nothing left to spawn, so SfM starts are barely touched."""
        if self.uncovered_spawn <= 0:
            return 0
        views = sample_views(scorer.cameras, self.vcd_views, self.seed, iteration + 1)
        dev = model.get_xyz.device
        masks = []
        for view in views:
            pkg = scorer.render(view, model)
            err = high_error_map(pkg["render"], view.original_image.to(dev), self.loss_thresh)
            masks.append((err & (pkg["alpha"][0] < ALPHA_SOLID)).cpu())
        return add_regions(self, model, views, masks, self.uncovered_spawn, mode="spawn",
                           scorer=scorer,
                           generator=seeded_generator(self.seed, iteration, 1))["spawned"]

    @torch.no_grad()
    def final_prune(self, model, iteration, scorer) -> int:
        views = sample_views(scorer.cameras, self.vcd_views, self.seed, iteration)
        return view_consistent_prune(model, scorer, views, self.loss_thresh,
                                     self.final_prune_opacity, self.final_prune_score,
                                     keep=self.protected(model, iteration))
