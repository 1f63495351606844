"""Command-line parameter groups, one module per concern, in the reference codebase's style.

groups.py (ParamGroup: attributes become flags), model.py (Loading Parameters), pipeline.py,
optimization.py, densification.py (generated from the strategies' config dataclasses),
semantic.py (Semantic Guidance Parameters), checks.py (choices and combinations), ranges.py
(numeric ranges, CliParser), combined.py (render.py's flags over a saved cfg_args) and
resolve.py (every default of a run resolved before cfg_args is written).
"""
import importlib

from arguments.combined import get_combined_args, read_cfg_args
from arguments.groups import GroupParams, ParamGroup, fill_defaults, group_defaults
from arguments.model import ModelParams
from arguments.optimization import OptimizationParams
from arguments.pipeline import PipelineParams
from arguments.ranges import (ITERATIONS_MAX, POINTS_MAX, SH_DEGREE_MAX, Bounded, CliParser,
                              Float, Int, check_values, fraction, iteration, learning_rate,
                              non_negative, seed)
from arguments.semantic import PHASE_NAMES, SemanticParams

__all__ = ["check_args", "check_semantic_args", "get_combined_args", "read_cfg_args",
           "DensificationParams", "GroupParams", "ParamGroup", "fill_defaults",
           "group_defaults", "ModelParams", "OptimizationParams", "PipelineParams",
           "ITERATIONS_MAX", "POINTS_MAX", "SH_DEGREE_MAX", "Bounded", "CliParser", "Float",
           "Int", "check_values", "fraction", "iteration", "learning_rate", "non_negative",
           "seed", "PHASE_NAMES", "SemanticParams"]

# The Densification Parameters are generated from the strategies' dataclasses, and the checks
# name the strategies: importing those loads scene/ and torch. They load on first use, so that
# `arguments.ranges` (edit.py's, view.py's flags) stays quick to import: a bad flag costs no time.
LAZY = {"DensificationParams": "arguments.densification", "check_args": "arguments.checks",
        "check_semantic_args": "arguments.checks"}


def __getattr__(name):
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'arguments' has no attribute {name!r}")
