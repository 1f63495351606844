"""Strategy base class: hooks, gradient statistics, prune protection, the Gaussian cap."""
from dataclasses import dataclass, fields
from typing import List, Optional

import torch

from utils.flag_fields import flag
from utils.ranges import ITERATIONS_MAX, POINTS_MAX, Int, fraction, iteration

RESET_MARGIN = 500      # no opacity reset (or FastGS clamp) this close to the end of a run
RESET_OPACITY = 0.01    # the 3DGS opacity reset value
BIG_FRACTION = 0.1      # after the first reset, Gaussians larger than this x extent are pruned
PROTECT_KEY = "protect_until"


@dataclass
class Strategy:
    """Base for densification strategies.

    A strategy keeps its per-Gaussian statistics as side tables of the model
    (`GaussianModel.tables`, names in `TABLES`), which every prune, clone, split and spawn
    keeps row-aligned and checkpoints save with the model; it changes the model only through
    GaussianModel's primitives, and asks the loop's ViewScorer for any render it needs.

    cameras_extent: scene radius used for the world-size tests.
    densification_interval, opacity_reset_interval, densify_from_iter, densify_until_iter,
        min_opacity: the densification schedule and prune threshold every strategy shares
        (their flags are declared here, once; a strategy redeclares a field only to change
        its default, as densification_interval, whose flag value 0 means that default).
    max_gaussians: hard cap on the number of Gaussians (0 = none); densification never
        exceeds it, the highest-scoring candidates win.
    total_iterations: length of the run (0 = unknown); lets schedules avoid its very end.

    A field declared with `flag` is also the command-line flag `--<name>` (train.py's
    Densification Parameters are generated from the strategies' fields).
    """
    cameras_extent: float = 1.0
    densification_interval: int = flag(
        0, "densify every N iterations (0 = the strategy's default: fastgs iterations/60 "
           "within [100, 500], 3dgs 100)", iteration())
    opacity_reset_interval: int = flag(3000, None, Int(1, ITERATIONS_MAX))
    densify_from_iter: int = flag(500, None, iteration())
    densify_until_iter: int = flag(15_000, None, iteration())
    min_opacity: float = flag(0.005, None, fraction())
    max_gaussians: int = flag(0, "hard cap on the number of Gaussians (0 = no cap)",
                              Int(0, POINTS_MAX))
    total_iterations: int = 0

    # Flags whose value 0 means "this strategy's default" (e.g. densification_interval).
    AUTO_ZERO = ("densification_interval",)
    TABLES = ("grad_accum", "denom")   # the side tables initialize_state (re)creates
    HAS_FINAL_PRUNES = False           # FastGS: its own view-consistent final prunes
    label = "strategy"                 # the name training prints

    @classmethod
    def auto_default(cls, name: str, args):
        """The value an AUTO_ZERO flag left at 0 takes for this run (the field's default)."""
        return {f.name: f.default for f in fields(cls)}[name]

    @classmethod
    def from_args(cls, args, **overrides):
        names = {f.name for f in fields(cls)}
        values = {n: getattr(args, n) for n in names if hasattr(args, n)
                  and not (n in cls.AUTO_ZERO and getattr(args, n) == 0)}
        values.update(overrides)
        return cls(**values)

    # -- hooks --------------------------------------------------------------------------
    def initialize_state(self, model):
        """(Re)create this strategy's statistics tables as zeros (other tables, such as prune
        protection, are left alone)."""
        for name in self.TABLES:
            model.new_table(name)

    def step_pre_backward(self, iteration: int, model, render_pkg: dict, camera=None):
        """Called after render, before loss.backward()."""

    def step_post_backward(self, iteration: int, model, render_pkg: dict, scorer=None):
        """Called after loss.backward(), before optimizer.step(). `scorer` (the loop's
        ViewScorer) renders whatever views a densification event needs."""

    def opacity_reset_iterations(self) -> List[int]:
        """Iterations at which this strategy resets opacities to near zero (none here). A
        render just after one shows an almost transparent model, so semantic guidance keeps
        its analyses clear of them."""
        return []

    def final_prune_iterations(self) -> List[int]:
        """Iterations of the strategy's own view-consistent final prunes (HAS_FINAL_PRUNES)."""
        return []

    # -- gradient statistics ----------------------------------------------------------------
    @staticmethod
    def accumulate_gradients(model, render_pkg: dict, absolute: bool = False):
        """Add this step's view-space gradient norms of the visible Gaussians to grad_accum
        (columns 0-1: |dL/dNDC|) and, with `absolute`, abs_grad_accum (columns 2-3, the
        AbsGS gradient); count the step in denom. Returns the visibility mask, or None
        when the render had no gradient."""
        grad = render_pkg["viewspace_points"].grad
        if grad is None:
            return None
        vis = render_pkg["visibility_filter"]
        t = model.tables
        t["grad_accum"][vis] += grad[vis, :2].norm(dim=-1)
        if absolute:
            t["abs_grad_accum"][vis] += grad[vis, 2:4].norm(dim=-1)
        t["denom"][vis] += 1
        return vis

    @staticmethod
    def mean_gradient(model, key: str = "grad_accum") -> torch.Tensor:
        """The accumulated statistic per step seen (0 for Gaussians never seen)."""
        t = model.tables
        return torch.nan_to_num(t[key] / t["denom"], nan=0.0, posinf=0.0)

    # -- opacity resets ----------------------------------------------------------------------
    def reset_due(self, iteration: int, interval: int, densify_from: int,
                  white_background: bool) -> bool:
        """The 3DGS opacity-reset rule: every `interval` (and once at `densify_from` on white
        backgrounds), never in the last RESET_MARGIN iterations of the run."""
        if self.near_end(iteration):
            return False
        return iteration % interval == 0 or (white_background and iteration == densify_from)

    def near_end(self, iteration: int) -> bool:
        return bool(self.total_iterations) and iteration > self.total_iterations - RESET_MARGIN

    # -- per-Gaussian prune protection (semantic guidance) ---------------------------------
    @staticmethod
    def protect(model, first_row: int, until: int):
        """Rows first_row.. (just added) are kept by the strategy's final pruning until
        iteration `until` (the model's protect_until table)."""
        prot = model.tables.get(PROTECT_KEY)
        if prot is None:
            prot = model.new_table(PROTECT_KEY, torch.int64)
        prot[first_row:] = torch.clamp_min(prot[first_row:], int(until))

    @staticmethod
    def protected(model, iteration: int) -> torch.Tensor:
        """(N,) bool: Gaussians the strategy's final pruning must keep at this iteration."""
        prot = model.tables.get(PROTECT_KEY)
        if prot is None:
            return torch.zeros(model.num_points, dtype=torch.bool, device=model.get_xyz.device)
        return prot > iteration

    def densify_priority(self, model) -> torch.Tensor:
        """Per-Gaussian gradient statistic that ranks densification candidates, as a ratio
        to the strategy's own threshold (>= 1: the strategy would densify it by gradient)."""
        return torch.zeros(model.num_points, device=model.get_xyz.device)

    def small_mask(self, model) -> torch.Tensor:
        """Gaussians small enough to be cloned rather than split."""
        return model.get_scaling.max(dim=1).values <= self.size_fraction() * self.cameras_extent

    def size_fraction(self) -> float:
        """Fraction of the scene extent separating small (clone) from large (split)."""
        return 0.01

    # -- helpers ------------------------------------------------------------------------
    def budget(self, model) -> Optional[int]:
        """How many Gaussians may still be added (None = unlimited)."""
        if not self.max_gaussians:
            return None
        return max(self.max_gaussians - model.num_points, 0)

    @staticmethod
    def top_k_mask(mask: torch.Tensor, score: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        """Keep at most k True entries of `mask`, those with the highest `score`."""
        if k is None or int(mask.sum()) <= k:
            return mask
        out = torch.zeros_like(mask)
        if k <= 0:
            return out
        idx = torch.nonzero(mask).squeeze(1)
        best = idx[torch.topk(score[idx], k).indices]
        out[best] = True
        return out


def periodic_resets(interval: int, until: int, total: int, margin: int,
                    white_background: bool = False, densify_from: int = 0) -> List[int]:
    """The 3DGS opacity-reset iterations: every `interval` before `until` (and once at
    `densify_from` on white backgrounds), never in the last `margin` iterations of a run of
    `total` (0 = unknown length)."""
    its = set(range(interval, until, interval)) if interval > 0 else set()
    if white_background and 0 < densify_from < until:
        its.add(densify_from)
    return sorted(i for i in its if not (total and i > total - margin))
