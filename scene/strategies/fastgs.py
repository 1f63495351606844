"""FastGS densification and pruning (Ren et al. 2025, "FastGS: Training 3D Gaussian Splatting
in 100 Seconds") as a strategy: multi-view consistent densification (VCD) and pruning (VCP)."""
import math
from dataclasses import dataclass
from typing import List

import torch

from scene.strategies.base import Strategy, periodic_resets
from scene.strategies.multiview import (high_error_map, sample_views, score_gaussians,
                                        spread_iterations, vcp_prune)
from scene.strategies.regions import ALPHA_SOLID
from utils.flag_fields import flag
from utils.ranges import POINTS_MAX, Int, fraction, non_negative

RESET_MARGIN = 500        # as Vanilla3DGS: no opacity reset/clamp this close to the end
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

    def initialize_state(self, model):
        n, dev = model.num_points, model.get_xyz.device
        self.state = {**self.kept_protection(model),
            "grad_accum": torch.zeros(n, device=dev),       # |dL/dNDC| (viewspace cols 0-1)
            "abs_grad_accum": torch.zeros(n, device=dev),   # AbsGS gradient (cols 2-3)
            "denom": torch.zeros(n, device=dev),
        }
        return self.state

    # -- statistics -------------------------------------------------------------------------
    def _accumulate(self, render_pkg):
        grad = render_pkg["viewspace_points"].grad
        if grad is None:
            return
        vis = render_pkg["visibility_filter"]
        st = self.state
        st["grad_accum"][vis] += grad[vis, :2].norm(dim=-1)
        st["abs_grad_accum"][vis] += grad[vis, 2:4].norm(dim=-1)
        st["denom"][vis] += 1

    def _mean(self, key):
        return torch.nan_to_num(self.state[key] / self.state["denom"], nan=0.0, posinf=0.0)

    def size_fraction(self):
        return self.dense

    def densify_priority(self, model):
        return torch.maximum(self._mean("grad_accum") / self.grad_thresh,
                             self._mean("abs_grad_accum") / self.grad_abs_thresh)

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

    def _near_end(self, iteration):
        return self.total_iterations and iteration > self.total_iterations - RESET_MARGIN

    def step_post_backward(self, iteration, model, render_pkg, camera=None, context=None):
        if iteration < self.densify_until_iter:
            self._accumulate(render_pkg)
            if iteration > self.densify_from_iter and iteration % self.interval(model) == 0:
                self.densify_and_prune(model, iteration, self._need(context))
            if not self._near_end(iteration) and (iteration % self.opacity_reset_interval == 0 or (
                    self.white_background and iteration == self.densify_from_iter)):
                model.reset_opacity(0.01)
        if iteration in self.final_prune_iterations():
            self.final_prune(model, iteration, self._need(context))

    @staticmethod
    def _need(context):
        if not context or "cameras" not in context:
            raise ValueError("the fastgs strategy needs the trainer's context (cameras, render, "
                             "pipe, background) at densification events")
        return context

    def _scores(self, model, iteration, ctx):
        views = sample_views(ctx["cameras"], self.vcd_views, self.seed, iteration)
        return score_gaussians(model, views, ctx["render"], ctx["pipe"], ctx["background"],
                               self.loss_thresh, ctx.get("lambda_dssim", 0.2))

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
        threshold scales with the mean image area, never up (juicebox at images_2, 192x108:
        5 -> 0.1; unscaled, 3000 iterations end at 11.7k Gaussians and 23.6 dB test PSNR)."""
        sample = list(cameras)[:32]
        if not sample:
            return self.importance_thresh
        pixels = sum(c.image_width * c.image_height for c in sample) / len(sample)
        return self.importance_thresh * min(1.0, pixels / REFERENCE_PIXELS)

    @torch.no_grad()
    def densify_and_prune(self, model, iteration, ctx) -> dict:
        importance, prune_score = self._scores(model, iteration, ctx)
        grads, abs_grads = self._mean("grad_accum"), self._mean("abs_grad_accum")
        small = self.small_mask(model)
        supported = importance >= self.importance_threshold(ctx["cameras"])
        clone = supported & small & (grads >= self.grad_thresh)
        split = supported & ~small & (abs_grads >= self.grad_abs_thresh)
        # Over the cap, the candidates with most error support x gradient excess win.
        want = self.top_k_mask(clone | split, importance * self.densify_priority(model),
                               self.budget(model))
        clone, split = clone & want, split & want

        st = self.state
        st["prune_score"] = prune_score  # a row-aligned state entry follows clones and splits
        n_before = model.num_points
        model.clone(clone, state=st)
        pad = torch.zeros(model.num_points - n_before, dtype=torch.bool, device=split.device)
        model.split(torch.cat([split, pad]), state=st)
        score = st.pop("prune_score")

        cand = (model.get_opacity < self.min_opacity).squeeze(1)
        if iteration > self.opacity_reset_interval:
            cand |= model.get_scaling.max(dim=1).values > 0.1 * self.cameras_extent
        n_remove = math.ceil(int(cand.sum()) * PRUNE_FRACTION)
        remove = self.top_k_mask(cand, score, n_remove)
        model.prune(remove, state=st)
        if not self._near_end(iteration):
            model.reset_opacity(OPACITY_CLAMP)
        spawned = self.spawn_uncovered(model, iteration, ctx)
        self.initialize_state(model)
        return dict(cloned=int(clone.sum()), split=int(split.sum()), pruned=int(remove.sum()),
                    candidates=int(cand.sum()), spawned=spawned)

    @torch.no_grad()
    def spawn_uncovered(self, model, iteration, ctx) -> int:
        """Spawn Gaussians on the high-error pixels that no Gaussian covers (alpha < 0.5) in the
        sampled views, at the back of what each view sees (regions.spawn_in_region).

        Clone and split only grow Gaussians where some already are: from 100 random points
        near the middle of a scene they never reach the walls and sky behind it (juicebox at
        5000 iterations: a sharp table in front of noise). Once the model covers the views
        there is nothing left to spawn, so SfM starts are barely touched."""
        if self.uncovered_spawn <= 0:
            return 0
        views = sample_views(ctx["cameras"], self.vcd_views, self.seed, iteration + 1)
        dev = model.get_xyz.device
        masks = []
        for view in views:
            pkg = ctx["render"](view, model, ctx["pipe"], ctx["background"])
            err = high_error_map(pkg["render"], view.original_image.to(dev), self.loss_thresh)
            masks.append((err & (pkg["alpha"][0] < ALPHA_SOLID)).cpu())
        return self.add_regions(model, views, masks, self.uncovered_spawn, mode="spawn",
                                context=ctx)["spawned"]

    @torch.no_grad()
    def final_prune(self, model, iteration, ctx) -> int:
        _, prune_score = self._scores(model, iteration, ctx)
        return vcp_prune(model, prune_score, self.final_prune_opacity, self.final_prune_score,
                         self.state, keep=self.protected(model, iteration))
