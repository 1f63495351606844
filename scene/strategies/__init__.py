"""Densification strategies: objects the training loop calls at fixed points.

A strategy owns its state (per-Gaussian statistics and counters) in `self.state`, which is
saved in checkpoints, and changes the model only through GaussianModel's primitives (clone,
split, spawn, prune, reset_opacity) so the optimizer state stays consistent.
"""
from scene.strategies.base import Strategy
from scene.strategies.vanilla import Vanilla3DGS

STRATEGIES = {"3dgs": Vanilla3DGS}


def make_strategy(name: str, dens, cameras_extent: float, white_background: bool = False,
                  total_iterations: int = 0):
    cls = STRATEGIES[name]
    return cls.from_args(dens, cameras_extent=cameras_extent, white_background=white_background,
                         total_iterations=total_iterations)


__all__ = ["Strategy", "Vanilla3DGS", "STRATEGIES", "make_strategy"]
