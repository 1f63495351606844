"""Strategy base class: hooks, state, checkpointing, the Gaussian cap."""
from dataclasses import dataclass, field, fields
from typing import List, Optional

import torch

from scene.strategies import regions
from utils.flag_fields import flag
from utils.ranges import ITERATIONS_MAX, POINTS_MAX, Int, fraction, iteration


@dataclass
class Strategy:
    """Base for densification strategies.

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
    state: dict = field(default_factory=dict, repr=False)

    # Flags whose value 0 means "this strategy's default" (e.g. densification_interval).
    AUTO_ZERO = ("densification_interval",)

    @classmethod
    def auto_default(cls, name: str, args):
        """The value an AUTO_ZERO flag left at 0 takes for this run (the field's default)."""
        return {f.name: f.default for f in fields(cls)}[name]

    @classmethod
    def from_args(cls, args, **overrides):
        names = {f.name for f in fields(cls)} - {"state"}
        values = {n: getattr(args, n) for n in names if hasattr(args, n)
                  and not (n in cls.AUTO_ZERO and getattr(args, n) == 0)}
        values.update(overrides)
        return cls(**values)

    # -- hooks --------------------------------------------------------------------------
    def initialize_state(self, model) -> dict:
        self.state = {}
        return self.state

    def step_pre_backward(self, iteration: int, model, render_pkg: dict, camera=None):
        """Called after render, before loss.backward()."""

    def step_post_backward(self, iteration: int, model, render_pkg: dict, camera=None,
                           context: Optional[dict] = None):
        """Called after loss.backward(), before optimizer.step().

        context (from the trainer, the same dict every call): "cameras" (training views),
        "render" (the render function), "pipe", "background" (the fixed background colour)
        and "lambda_dssim"; what a strategy needs to render views of its own.
        """

    def opacity_reset_iterations(self) -> List[int]:
        """Iterations at which this strategy resets opacities to near zero (none here). A
        render just after one shows an almost transparent model, so semantic guidance keeps
        its analyses clear of them."""
        return []

    # -- region hooks (semantic guidance, editing) ----------------------------------------
    def add_regions(self, model, views, masks, budget, mode: str = "both",
                    context: Optional[dict] = None, min_priority: float = 0.0,
                    protect_until: int = 0, spawn_opacity: float = regions.SPAWN_OPACITY,
                    on_added=None) -> dict:
        """Densify / spawn Gaussians inside per-view (H,W) bool masks, at most `budget` new
        Gaussians per view and never past max_gaussians; `protect_until` > 0 keeps them from
        final pruning until that iteration; on_added(mode, first_row) hears of each step's new
        rows. See scene/strategies/regions.py."""
        return regions.add_regions(self, model, views, masks, budget, mode, context,
                                   min_priority, protect_until, spawn_opacity, on_added)

    # -- per-Gaussian prune protection (semantic guidance) ---------------------------------
    def _protection(self, model) -> Optional[torch.Tensor]:
        """The row-aligned protect_until entry, if it matches the model (follows prunes,
        clones and splits like every state entry)."""
        prot = self.state.get(PROTECT_KEY)
        return prot if prot is not None and prot.shape[0] == model.num_points else None

    def protect(self, model, first_row: int, until: int):
        """Rows first_row.. (just added) are kept by the strategy's final pruning until
        iteration `until`."""
        prot = self._protection(model)
        if prot is None:
            prot = torch.zeros(model.num_points, dtype=torch.int64, device=model.get_xyz.device)
        prot[first_row:] = torch.clamp_min(prot[first_row:], int(until))
        self.state[PROTECT_KEY] = prot

    def kept_protection(self, model) -> dict:
        """The protection entry, for a strategy that rebuilds its state from scratch (the
        statistics reset at a densification event must not end protection)."""
        prot = self._protection(model)
        return {} if prot is None else {PROTECT_KEY: prot}

    def protected(self, model, iteration: int) -> torch.Tensor:
        """(N,) bool: Gaussians the strategy's final pruning must keep at this iteration."""
        prot = self._protection(model)
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

    # -- checkpointing ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in self.state.items()}

    def load_state_dict(self, state: dict, device=None):
        self.state = {k: (v.to(device) if torch.is_tensor(v) and device is not None else v)
                      for k, v in state.items()}

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


PROTECT_KEY = "protect_until"


def periodic_resets(interval: int, until: int, total: int, margin: int,
                    white_background: bool = False, densify_from: int = 0) -> List[int]:
    """The 3DGS opacity-reset iterations: every `interval` before `until` (and once at
    `densify_from` on white backgrounds), never in the last `margin` iterations of a run of
    `total` (0 = unknown length)."""
    its = set(range(interval, until, interval)) if interval > 0 else set()
    if white_background and 0 < densify_from < until:
        its.add(densify_from)
    return sorted(i for i in its if not (total and i > total - margin))
