"""Semantic Guidance Parameters: the region proposer and its phase schedule (semantic/)."""
from arguments.groups import ParamGroup
from utils.ranges import (ITERATIONS_MAX, POINTS_MAX, Float, Int, fraction, iteration,
                          non_negative)

PHASE_NAMES = {1: "detail formation", 2: "background completion", 3: "novel-view refinement"}


class SemanticParams(ParamGroup):
    """Semantic guidance (semantic/): a region proposer on a phase schedule."""

    def __init__(self, parser):
        self.region_proposer = ""
        self.qwen_model_path = ""
        self.vlm_device = "auto"
        self.vlm_dtype = "auto"
        self.vlm_max_pixels = 448 * 448
        self.vlm_max_new_tokens = 256
        self.vlm_offload = False
        self.prompt_file = ""
        self.semantic_num_samples = 4
        self.total_iterations = 0
        for i in (1, 2, 3):
            for key in ("start", "end", "interval", "max_points"):
                setattr(self, f"phase{i}_{key}", -1)
        self.prune_protection = -1
        self.phase3_views = "interpolated"
        self.max_boxes = 8
        self.max_box_frac = 0.5
        self.region_error_thresh = 0.3
        self.region_min_priority = 0.0
        self.floater_support = 0.2
        self.floater_near = 0.25
        self.spawn_depth = "photo"
        self.textureless_depth = "none"
        self.hole_opacity = 0.8
        self.background_holes = "fill"
        self.completion_background = "fixed"
        self.completion_alpha = 0.1
        self.save_region_vis = False
        super().__init__(parser, "Semantic Guidance Parameters")

    def _help(self):
        h = {
            "region_proposer": "qwen (Qwen3-VL, the default when --qwen_model_path is given), "
                               "error (error-map boxes, no model) or none (plain training)",
            "qwen_model_path": "Qwen3-VL model: a local folder or a hub id",
            "vlm_device": "device of the VLM (auto = the training device)",
            "vlm_dtype": "auto (bf16/fp16 on GPU, fp32 on CPU), fp32, bf16 or fp16",
            "vlm_max_pixels": "images are resized to multiples of 32 px within this many pixels",
            "vlm_max_new_tokens": "answer length limit of one analysis",
            "vlm_offload": "move the VLM to the CPU between analyses (gives VRAM back)",
            "prompt_file": "YAML with phase1/phase2/phase3 prompts, or one text for all",
            "semantic_num_samples": "views looked at per analysis (one batched VLM call)",
            "total_iterations": "length the phase schedule is laid out for (0 = --iterations)",
            "prune_protection": "iterations after the last guided densification before pruning "
                                "and refinement start (-1 = 1000 at 20k, scaled)",
            "phase3_views": "interpolated (poses between training cameras) or test (the test "
                            "cameras' poses, as the original method; leaks the test split)",
            "max_boxes": "boxes kept per view and answer",
            "max_box_frac": "boxes larger than this fraction of the view are dropped",
            "region_error_thresh": "error proposer: normalised error above which a pixel is "
                                   "part of a region",
            "region_min_priority": "inside a region, densify Gaussians whose gradient reaches "
                                   "this fraction of the strategy's threshold (1 = no "
                                   "relaxation, 0 = any Gaussian covering the region)",
            "floater_support": "phases 2 to 4 prune floaters: Gaussians composited into fewer "
                               "than this fraction of the training views and near a training "
                               "camera (0 = no floater pruning)",
            "floater_near": "'near a training camera' means within this fraction of the "
                            "cameras' extent (0 = no floater pruning)",
            "spawn_depth": "where phase 2 and 3 place new Gaussians on a pixel's ray: photo (the "
                           "depth where neighbouring training photos agree; phase 2 also "
                           "re-seeds background the model renders at a different depth) or "
                           "render (the render's depth, the back of the view where empty)",
            "textureless_depth": "with --spawn_depth photo, rays whose photos agree at many "
                                 "depths (textureless walls): none (not seeded) or far (the "
                                 "farthest depth where they agree)",
            "hole_opacity": "opacity of hole fills: what phase 3 adds in novel-view holes, "
                            "which no training photo may ever train, and phase 2's empty "
                            "background with --background_holes fill (0.1 = as fresh points, "
                            "which never make a hole opaque)",
            "background_holes": "phase 2, background a training view renders empty (dark "
                                "photo areas a black background passes for): fill (new "
                                "Gaussians there first, at --hole_opacity) or share (they "
                                "share the budget by area, at 0.1 like fresh points)",
            "completion_background": "train against random background colours from phase 2 "
                                     "(background completion) on (random) or within phase 2 "
                                     "only (phase2), so that the background must be made "
                                     "opaque, or keep the fixed background (fixed: a "
                                     "see-through, dark background matches its photos over "
                                     "black)",
            "completion_alpha": "from phase 2 (background completion) on, add this weight "
                                "times the mean shortfall of the render's alpha from 0.6 "
                                "(0.6 x the alpha mask where photos have one) to the loss, so "
                                "that dark background is made opaque (0 = off)",
            "save_region_vis": "write renders, targets, boxes and masks to <model>/regions/",
        }
        names = PHASE_NAMES
        for i, name in names.items():
            h[f"phase{i}_start"] = f"phase {i} ({name}) owns iterations (start, end] " \
                                   "(-1 = the published schedule scaled to the run)"
            h[f"phase{i}_interval"] = f"phase {i}: iterations between analyses"
            h[f"phase{i}_max_points"] = f"phase {i}: at most this many new Gaussians per view " \
                                        "and analysis (-1 = the published cap scaled by the " \
                                        "image area over 1 MP)"
        return h

    def _ranges(self):
        r = {"vlm_max_pixels": Int(32 * 32, 1 << 26), "vlm_max_new_tokens": Int(1, 1 << 15),
             "semantic_num_samples": Int(1, 1000), "total_iterations": iteration(),
             "prune_protection": Int(0, ITERATIONS_MAX, sentinels=(-1,)),
             "max_boxes": Int(1, 1000), "max_box_frac": Float(0.0, 1.0, lo_open=True),
             "region_error_thresh": fraction(), "region_min_priority": non_negative(),
             "floater_support": fraction(), "floater_near": fraction(),
             "hole_opacity": Float(0.0, 1.0, lo_open=True, hi_open=True),
             "completion_alpha": non_negative()}
        for i in PHASE_NAMES:
            r[f"phase{i}_start"] = r[f"phase{i}_end"] = Int(0, ITERATIONS_MAX, sentinels=(-1,))
            r[f"phase{i}_interval"] = Int(1, ITERATIONS_MAX, sentinels=(-1,))
            r[f"phase{i}_max_points"] = Int(0, POINTS_MAX, sentinels=(-1,))
        return r
