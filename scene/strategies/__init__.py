"""Densification strategies: objects the training loop calls at fixed points.

A strategy keeps its per-Gaussian statistics as side tables of the model (saved with it in
checkpoints), changes the model only through GaussianModel's primitives (clone, split, spawn,
prune, reset_opacity) so the optimizer state and every table stay consistent, and asks the
loop's ViewScorer for the renders its events need.
"""
from dataclasses import fields

from scene.strategies.base import Strategy
from scene.strategies.fastgs import FastGS
from scene.strategies.vanilla import Vanilla3DGS

STRATEGIES = {"fastgs": FastGS, "3dgs": Vanilla3DGS}


def make_strategy(name: str, dens, cameras_extent: float, white_background: bool = False,
                  total_iterations: int = 0, seed: int = 0):
    cls = STRATEGIES[name]
    extra = {"seed": seed} if "seed" in {f.name for f in fields(cls)} else {}
    return cls.from_args(dens, cameras_extent=cameras_extent, white_background=white_background,
                         total_iterations=total_iterations, **extra)


def resolve_strategy_defaults(args):
    """Replace "0 = the strategy's default" flags in `args` by that default, so cfg_args
    records the values the run really used."""
    cls = STRATEGIES[args.strategy]
    for name in cls.AUTO_ZERO:
        if getattr(args, name, None) == 0:
            setattr(args, name, cls.auto_default(name, args))
    return args


__all__ = ["Strategy", "FastGS", "Vanilla3DGS", "STRATEGIES", "make_strategy",
           "resolve_strategy_defaults"]
