"""Choices and flag combinations that a single flag's range cannot express."""
from argparse import Namespace

from arguments.groups import group_defaults
from arguments.semantic import SemanticParams
from scene.strategies import STRATEGIES
from utils.errors import UserError, elide


def check_args(args):
    """Reject bad choices and flag combinations with one line naming the flag. (Numeric
    ranges are checked at parse time: each flag declares its range.)"""
    if getattr(args, "strategy", "fastgs") not in STRATEGIES:
        raise UserError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {args.strategy!r}")
    if getattr(args, "backend", "auto") not in ("auto", "cuda", "cpp", "torch"):
        raise UserError(f"--backend must be auto, cuda, cpp or torch, got {args.backend!r}")
    init = getattr(args, "depth_l1_weight_init", 1.0)
    final = getattr(args, "depth_l1_weight_final", 0.01)
    if (init == 0) != (final == 0):
        raise UserError("--depth_l1_weight_init and --depth_l1_weight_final must both be > 0 "
                        "(an exponential schedule), or both 0 (off)")
    if getattr(args, "optimizer_type", "default") not in ("default", "sparse_adam"):
        raise UserError("--optimizer_type must be default or sparse_adam, "
                        f"got {elide(args.optimizer_type)}")
    check_semantic_args(args)


def check_semantic_args(args):
    """The semantic flags' choices and combinations. A model trained before a flag existed
    has no value for it in cfg_args: that flag is checked at its default (args unchanged)."""
    if not hasattr(args, "region_proposer"):
        return
    args = Namespace(**{**group_defaults(SemanticParams), **vars(args)})
    if args.region_proposer not in ("", "none", "error", "qwen"):
        raise UserError(f"--region_proposer must be qwen, error or none, "
                        f"got {args.region_proposer!r}")
    if args.region_proposer == "qwen" and not args.qwen_model_path:
        raise UserError("--region_proposer qwen needs --qwen_model_path (a folder or hub id)")
    if args.phase3_views not in ("interpolated", "test"):
        raise UserError(f"--phase3_views must be interpolated or test, got {args.phase3_views!r}")
    if args.spawn_depth not in ("photo", "render"):
        raise UserError(f"--spawn_depth must be photo or render, got {args.spawn_depth!r}")
    if args.textureless_depth not in ("none", "far"):
        raise UserError("--textureless_depth must be none or far, "
                        f"got {args.textureless_depth!r}")
    if args.completion_background not in ("random", "phase2", "fixed"):
        raise UserError("--completion_background must be random, phase2 or fixed, "
                        f"got {args.completion_background!r}")
    if args.background_holes not in ("fill", "share"):
        raise UserError(f"--background_holes must be fill or share, got {args.background_holes!r}")
    for i in (1, 2, 3):
        start, end = getattr(args, f"phase{i}_start"), getattr(args, f"phase{i}_end")
        if start >= 0 and end >= 0 and end < start:
            raise UserError(f"--phase{i}_end ({end}) is before --phase{i}_start ({start})")
    if args.vlm_dtype not in ("auto", "fp32", "float32", "bf16", "bfloat16", "fp16", "float16"):
        raise UserError(f"--vlm_dtype must be auto, fp32, bf16 or fp16, got {args.vlm_dtype!r}")
