"""Every default of a run resolved in one place: what train.py records in cfg_args.

Several flags mean "the default" with a sentinel (-1 phase windows and caps, 0
--densification_interval and --total_iterations, an empty --region_proposer or
--model_path) or are completed by the run (--save_iterations always includes the last
iteration). `resolve_run_config` replaces each by the value the run uses, on a copy of the
parsed flags, before cfg_args is written; nothing changes the flags afterwards, so cfg_args
records exactly what the run used. (A saved cfg_args that predates a flag is completed with
the flag's default by arguments/groups.py: `fill_defaults`, for render.py.)
"""
from argparse import Namespace
from dataclasses import dataclass
from typing import Sequence, Tuple

from scene.strategies import resolve_strategy_defaults
from scene.trainer import default_model_path
from semantic.config import SemanticConfig
from semantic.proposers import proposer_default_caps
from semantic.schedule import CAP_SAMPLE_VIEWS, phase_caps, phase_defaults

# How many training views' sizes the size-dependent defaults need (scene/view_sizes.py).
SIZE_SAMPLE_VIEWS = CAP_SAMPLE_VIEWS


@dataclass(frozen=True)
class RunConfig:
    """A training run's resolved configuration.

    args: every flag, no sentinel left: what cfg_args records and the parameter groups extract.
    semantic: what semantic guidance, its schedule, proposer and completion read.
    """
    args: Namespace
    semantic: SemanticConfig


def proposer_kind(args) -> str:
    """--region_proposer, with its default: qwen when --qwen_model_path is given, else none."""
    return args.region_proposer or ("qwen" if args.qwen_model_path else "none")


def resolve_run_config(args: Namespace, image_sizes: Sequence[Tuple[int, int]]) -> RunConfig:
    """The run's configuration from train.py's checked flags (left unchanged) and the training
    views' (width, height) (scene/view_sizes.py: the first SIZE_SAMPLE_VIEWS of them)."""
    out = Namespace(**vars(args))
    out.save_iterations = sorted(set(out.save_iterations) | {out.iterations})
    resolve_strategy_defaults(out)
    out.region_proposer = proposer_kind(out)
    vars(out).update(phase_defaults(out))
    vars(out).update(phase_caps(out, image_sizes, proposer_default_caps(out.region_proposer)))
    if not out.model_path:
        out.model_path = default_model_path()
    return RunConfig(out, SemanticConfig.from_args(out))
