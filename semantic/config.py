"""SemanticConfig: everything semantic guidance reads, resolved, in one frozen object.

Built once from train.py's parsed and resolved flags (`arguments/resolve.py`), after every
"auto" value (-1 phase windows and caps, 0 total iterations, an unnamed proposer) has been
replaced by what the run uses, so guidance, its schedule, the proposer and background
completion never see raw `args` and cannot change them. The flags themselves (defaults, ranges,
help) are declared in arguments/semantic.py; `from_args` fails loudly when a field has no flag.
"""
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SemanticConfig:
    # the proposer (semantic/proposers.py): none, error or qwen, and the VLM's settings
    region_proposer: str
    qwen_model_path: str
    vlm_device: str
    vlm_dtype: str
    vlm_max_pixels: int
    vlm_max_new_tokens: int
    vlm_offload: bool
    prompt_file: str
    max_boxes: int
    max_box_frac: float
    region_error_thresh: float
    # the phase schedule (semantic/schedule.py); iterations = the run's length
    iterations: int
    total_iterations: int
    phase1_start: int
    phase1_end: int
    phase1_interval: int
    phase1_max_points: int
    phase2_start: int
    phase2_end: int
    phase2_interval: int
    phase2_max_points: int
    phase3_start: int
    phase3_end: int
    phase3_interval: int
    phase3_max_points: int
    prune_protection: int
    # one analysis (semantic/guidance.py)
    semantic_num_samples: int
    phase3_views: str
    region_min_priority: float
    spawn_depth: str
    textureless_depth: str
    hole_opacity: float
    background_holes: str
    save_region_vis: bool
    seed: int
    # floater pruning (semantic/floaters.py) and phase 4's view-consistent pruning, with the
    # FastGS flags it shares
    floater_support: float
    floater_near: float
    final_prunes: int
    vcd_views: int
    loss_thresh: float
    final_prune_opacity: float
    final_prune_score: float
    # background completion (semantic/completion.py)
    completion_background: str
    completion_alpha: float

    @classmethod
    def from_args(cls, args) -> "SemanticConfig":
        """The fields' values from a namespace of resolved flags (arguments/resolve.py)."""
        missing = [f.name for f in fields(cls) if not hasattr(args, f.name)]
        if missing:
            raise TypeError(f"SemanticConfig: no flag for {', '.join(missing)}")
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})
