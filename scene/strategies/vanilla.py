"""The 3DGS reference densification (Kerbl et al. 2023) as a strategy."""
from dataclasses import dataclass

import torch

from scene.strategies.base import Strategy, periodic_resets
from utils.flag_fields import flag
from utils.ranges import fraction, non_negative

RESET_MARGIN = 500


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

    def initialize_state(self, model):
        n, dev = model.num_points, model.get_xyz.device
        self.state = {**self.kept_protection(model),
            "grad_accum": torch.zeros(n, device=dev),
            "denom": torch.zeros(n, device=dev),
            "max_radii2D": torch.zeros(n, device=dev),
        }
        return self.state

    def _accumulate(self, render_pkg):
        vis = render_pkg["visibility_filter"]
        grad = render_pkg["viewspace_points"].grad
        if grad is None:
            return
        st = self.state
        st["max_radii2D"][vis] = torch.maximum(st["max_radii2D"][vis],
                                               render_pkg["radii"][vis].float())
        st["grad_accum"][vis] += grad[vis, :2].norm(dim=-1)
        st["denom"][vis] += 1

    def size_fraction(self):
        return self.percent_dense

    def densify_priority(self, model):
        grads = self.state["grad_accum"] / self.state["denom"]
        return torch.nan_to_num(grads, nan=0.0, posinf=0.0) / self.densify_grad_threshold

    def _reset_stats(self, model):
        self.initialize_state(model)

    def step_post_backward(self, iteration, model, render_pkg, camera=None, context=None):
        if iteration >= self.densify_until_iter:
            return
        self._accumulate(render_pkg)
        if iteration > self.densify_from_iter and iteration % self.densification_interval == 0:
            self.densify_and_prune(model, prune_big=iteration > self.opacity_reset_interval)
        near_end = self.total_iterations and iteration > self.total_iterations - RESET_MARGIN
        if not near_end and (iteration % self.opacity_reset_interval == 0 or (
                self.white_background and iteration == self.densify_from_iter)):
            model.reset_opacity(0.01)

    def opacity_reset_iterations(self):
        return periodic_resets(self.opacity_reset_interval, self.densify_until_iter,
                               self.total_iterations, RESET_MARGIN, self.white_background,
                               self.densify_from_iter)

    def densify_and_prune(self, model, prune_big: bool):
        st = self.state
        grads = st["grad_accum"] / st["denom"]
        grads[~torch.isfinite(grads)] = 0.0
        big = model.get_scaling.max(dim=1).values > self.percent_dense * self.cameras_extent
        want = grads >= self.densify_grad_threshold
        want = self.top_k_mask(want, grads, self.budget(model))
        clone_mask, split_mask = want & ~big, want & big
        n_before = model.num_points
        model.clone(clone_mask, state=st)
        pad = torch.zeros(model.num_points - n_before, dtype=torch.bool, device=split_mask.device)
        model.split(torch.cat([split_mask, pad]), state=st)

        prune = (model.get_opacity < self.min_opacity).squeeze(1)
        if prune_big:
            prune |= model.get_scaling.max(dim=1).values > 0.1 * self.cameras_extent
        model.prune(prune, state=st)
        self._reset_stats(model)
        return dict(cloned=int(clone_mask.sum()), split=int(split_mask.sum()),
                    pruned=int(prune.sum()))
