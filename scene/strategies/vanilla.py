"""The 3DGS reference densification (Kerbl et al. 2023) as a strategy."""
from dataclasses import dataclass

import torch

from scene.strategies.base import (BIG_FRACTION, RESET_MARGIN, RESET_OPACITY, Strategy,
                                   periodic_resets)
from utils.flag_fields import flag
from utils.ranges import fraction, non_negative


@dataclass
class Vanilla3DGS(Strategy):
    """Clone small / split large Gaussians whose mean view-space gradient is high; prune
    transparent and oversized ones; reset opacity periodically.

    densify_grad_threshold: mean |dL/dNDC| (viewspace columns 0-1) that triggers densification.
    percent_dense: fraction of the scene extent separating "small" (clone) from "large" (split).
    densification_interval, densify_from_iter, densify_until_iter: when densification runs.
    opacity_reset_interval: opacity is clamped to 0.01 every this many iterations (and once at
        densify_from_iter on white backgrounds, as the reference), but never in the last
        RESET_MARGIN iterations of the run: the model could not recover before it is saved.
    min_opacity: prune threshold. After the first opacity reset, Gaussians larger than 0.1 of
        the extent are pruned too. (The reference's screen-size test never fires because its
        statistics are zeroed just before; we omit it and keep the reference's behaviour.)
    """
    densify_grad_threshold: float = flag(
        0.0002, "3dgs: mean view-space gradient that triggers densification", non_negative())
    percent_dense: float = flag(
        0.01, "3dgs: fraction of the scene extent separating clone from split", fraction())
    densification_interval: int = 100
    white_background: bool = False

    TABLES = ("grad_accum", "denom", "max_radii2D")
    label = "3dgs"

    def size_fraction(self):
        return self.percent_dense

    def densify_priority(self, model):
        return self.mean_gradient(model) / self.densify_grad_threshold

    def step_post_backward(self, iteration, model, render_pkg, scorer=None):
        if iteration >= self.densify_until_iter:
            return
        vis = self.accumulate_gradients(model, render_pkg)
        if vis is not None:
            radii = model.tables["max_radii2D"]
            radii[vis] = torch.maximum(radii[vis], render_pkg["radii"][vis].float())
        if iteration > self.densify_from_iter and iteration % self.densification_interval == 0:
            self.densify_and_prune(model, prune_big=iteration > self.opacity_reset_interval)
        if self.reset_due(iteration, self.opacity_reset_interval, self.densify_from_iter,
                          self.white_background):
            model.reset_opacity(RESET_OPACITY)

    def opacity_reset_iterations(self):
        return periodic_resets(self.opacity_reset_interval, self.densify_until_iter,
                               self.total_iterations, RESET_MARGIN, self.white_background,
                               self.densify_from_iter)

    def densify_and_prune(self, model, prune_big: bool):
        grads = self.mean_gradient(model)
        small = self.small_mask(model)
        want = grads >= self.densify_grad_threshold
        want = self.top_k_mask(want, grads, self.budget(model))
        clone_mask, split_mask = want & small, want & ~small
        model.clone_and_split(clone_mask, split_mask)

        prune = (model.get_opacity < self.min_opacity).squeeze(1)
        if prune_big:
            prune |= model.get_scaling.max(dim=1).values > BIG_FRACTION * self.cameras_extent
        model.prune(prune)
        self.initialize_state(model)
        return dict(cloned=int(clone_mask.sum()), split=int(split_mask.sum()),
                    pruned=int(prune.sum()))
