"""Command-line parameter groups, one per concern, in the reference codebase's style.

Each attribute of a group becomes a flag (`foo_bar` -> `--foo_bar`); a leading underscore adds
the short form from its first letter (`_source_path` -> `-s/--source_path`). `extract(args)`
returns a plain namespace with the group's values.
"""
import os
from argparse import ArgumentParser

from arguments.combined import get_combined_args, read_cfg_args  # noqa: F401 (re-exported)
from arguments.ranges import (ITERATIONS_MAX, POINTS_MAX, SH_DEGREE_MAX, Bounded, CliParser,
                              Float, Int, check_values, fraction, iteration, learning_rate,
                              non_negative, seed)
from utils.errors import UserError, elide


class GroupParams:
    pass


class ParamGroup:
    def __init__(self, parser: ArgumentParser, name: str, fill_none: bool = False):
        group = parser.add_argument_group(name)
        for key, value in vars(self).items():
            shorthand = key.startswith("_")
            key = key.lstrip("_")
            flags = [f"--{key}"] + ([f"-{key[0]}"] if shorthand else [])
            default = None if fill_none else value
            help_text = self._help().get(key)
            kind = self._ranges().get(key)
            if kind is None and isinstance(value, (int, float)) and not isinstance(value, bool):
                raise TypeError(f"--{key}: numeric flags declare their range in _ranges()")
            if isinstance(value, bool):
                group.add_argument(*flags, default=default, action="store_true", help=help_text)
            elif value is None:
                group.add_argument(*flags, default=default, type=str, help=help_text)
            elif isinstance(value, (list, tuple)):
                group.add_argument(*flags, default=default, nargs="+", type=kind or type(value[0]),
                                   help=help_text)
            else:
                group.add_argument(*flags, default=default, type=kind or type(value),
                                   help=help_text)

    def _help(self) -> dict:
        return {}

    def _ranges(self) -> dict:
        """{flag: Int/Float range}: every numeric flag declares one (checked at parse time)."""
        return {}

    def extract(self, args) -> GroupParams:
        out = GroupParams()
        for key in vars(self):
            name = key.lstrip("_")
            setattr(out, name, getattr(args, name))
        return out


class ModelParams(ParamGroup):
    def __init__(self, parser, sentinel=False):
        self.sh_degree = 3
        self._source_path = ""
        self._model_path = ""
        self._images = "images"
        self._depths = ""
        self._resolution = -1
        self._white_background = False
        self.data_device = "auto"
        self.device = "auto"
        self.eval = False
        self.llffhold = 8
        self.random_init = 0
        self.seed = 0
        self.train_test_exp = False
        super().__init__(parser, "Loading Parameters", sentinel)

    def _help(self):
        return {
            "source_path": "scene folder (COLMAP sparse/ or Blender transforms_*.json)",
            "model_path": "output folder (default: output/<random>)",
            "images": "image folder inside the scene, e.g. images_2",
            "depths": "folder (inside the scene, or a path) of per-image inverse-depth maps: "
                      "16-bit PNGs named as the images (COLMAP scenes also need "
                      "sparse/0/depth_params.json from utils/make_depth_scale.py)",
            "resolution": "1, 2, 4, 8 divide the image size; another value is a target width; "
                          "-1 caps the width at 1600",
            "device": "cuda, cpu or auto (CUDA when available)",
            "data_device": "where training images live (auto = --device)",
            "random_init": "start from N random points in the cameras' view volume instead of "
                           "the SfM points (0 = use SfM points)",
            "seed": "seeds Python, NumPy and torch",
            "train_test_exp": "exposure compensation: learn a 3x4 colour transform per image; "
                              "test images train on their left half and are scored on their "
                              "right half (the reference's protocol)",
        }

    def _ranges(self):
        return {"sh_degree": Int(0, SH_DEGREE_MAX),
                # 1/2/4/8 divide; another value is a target width, at most the image's
                "resolution": Int(1, 1 << 16, sentinels=(-1,)),
                "llffhold": Int(1), "random_init": Int(0, POINTS_MAX), "seed": seed()}

    def extract(self, args):
        g = super().extract(args)
        g.source_path = os.path.abspath(g.source_path) if g.source_path else ""
        return g


class PipelineParams(ParamGroup):
    def __init__(self, parser):
        self.convert_SHs_python = False
        self.compute_cov3D_python = False
        self.debug = False
        self.backend = "auto"
        self.mult = 0.5
        self.antialiasing = False
        super().__init__(parser, "Pipeline Parameters")

    def _help(self):
        return {"backend": "rasterizer: auto (CUDA extension on CUDA, C++ rasterizer on CPU, "
                           "when built; else torch), cuda, cpp or torch (pure PyTorch oracle)",
                "mult": "FastGS compact footprint factor, shared by training and rendering "
                        "(1.0 = the reference 3DGS footprint)",
                "antialiasing": "2D mip filter (the reference's): opacity scaled by "
                                "sqrt(det(cov2D) / det(cov2D + dilation)); saved in cfg_args, "
                                "so render.py and edit.py use it too"}

    def _ranges(self):
        return {"mult": Float(0.0, 4.0, lo_open=True)}


class OptimizationParams(ParamGroup):
    def __init__(self, parser):
        self.iterations = 30_000
        self.position_lr_init = 0.00016
        self.position_lr_final = 0.0000016
        self.position_lr_delay_mult = 0.01
        self.position_lr_max_steps = 30_000
        self.feature_lr = 0.0025
        self.lowfeature_lr = 0.0
        self.highfeature_lr = 0.0
        self.opacity_lr = 0.025
        self.scaling_lr = 0.005
        self.rotation_lr = 0.001
        self.lambda_dssim = 0.2
        self.random_background = False
        self.depth_l1_weight_init = 1.0
        self.depth_l1_weight_final = 0.01
        self.optimizer_type = "default"
        self.exposure_lr_init = 0.01
        self.exposure_lr_final = 0.001
        self.exposure_lr_delay_steps = 0
        self.exposure_lr_delay_mult = 0.0
        super().__init__(parser, "Optimization Parameters")

    def _help(self):
        return {"lowfeature_lr": "learning rate of the SH DC (base colour) coefficients "
                                 "(0 = --feature_lr)",
                "highfeature_lr": "learning rate of the higher SH coefficients "
                                  "(0 = --feature_lr / 20, as the reference)",
                "depth_l1_weight_init": "with -d/--depths: weight of the L1 loss on inverse "
                                        "depth at iteration 1, decaying exponentially to ...",
                "depth_l1_weight_final": "... this weight at the last iteration",
                "optimizer_type": "default (Adam) or sparse_adam (Adam steps only the "
                                  "Gaussians visible in the iteration's view)"}

    def _ranges(self):
        lrs = ("position_lr_init", "position_lr_final", "feature_lr", "lowfeature_lr",
               "highfeature_lr", "opacity_lr", "scaling_lr", "rotation_lr",
               "exposure_lr_init", "exposure_lr_final")
        return {"iterations": Int(1, ITERATIONS_MAX), "position_lr_delay_mult": fraction(),
                "position_lr_max_steps": Int(1, ITERATIONS_MAX), "lambda_dssim": fraction(),
                "depth_l1_weight_init": non_negative(), "depth_l1_weight_final": non_negative(),
                "exposure_lr_delay_steps": Int(0, ITERATIONS_MAX),
                "exposure_lr_delay_mult": fraction(),
                **{name: learning_rate() for name in lrs}}


class DensificationParams(ParamGroup):
    def __init__(self, parser):
        self.strategy = "fastgs"
        self.percent_dense = 0.01
        self.densification_interval = 0
        self.opacity_reset_interval = 3000
        self.densify_from_iter = 500
        self.densify_until_iter = 15_000
        self.densify_grad_threshold = 0.0002
        self.min_opacity = 0.005
        self.max_gaussians = 0
        # FastGS (--strategy fastgs)
        self.vcd_views = 10
        self.loss_thresh = 0.1
        self.importance_thresh = 5.0
        self.grad_thresh = 0.0002
        self.grad_abs_thresh = 0.0012
        self.dense = 0.001
        self.final_prunes = 4
        self.final_prune_opacity = 0.1
        self.final_prune_score = 0.9
        self.sparse_points = 2000
        self.uncovered_spawn = 200
        super().__init__(parser, "Densification Parameters")

    def _help(self):
        return {
            "strategy": "densification strategy: fastgs (default) or 3dgs (the reference)",
            "densification_interval": "densify every N iterations (0 = the strategy's default: "
                                      "fastgs iterations/60 within [100, 500], 3dgs 100)",
            "percent_dense": "3dgs: fraction of the scene extent separating clone from split",
            "densify_grad_threshold": "3dgs: mean view-space gradient that triggers densification",
            "max_gaussians": "hard cap on the number of Gaussians (0 = no cap)",
            "vcd_views": "fastgs: training views rendered at each densification / pruning event "
                         "to score Gaussians across views",
            "loss_thresh": "fastgs: a pixel is high-error when its L1 error, min-max normalised "
                           "per view, exceeds this",
            "importance_thresh": "fastgs: densify only Gaussians covering at least this many "
                                 "high-error pixels per sampled view (mean), on 1-megapixel "
                                 "images; scaled down with smaller images",
            "grad_thresh": "fastgs: mean view-space gradient for cloning small Gaussians",
            "grad_abs_thresh": "fastgs: mean absolute (AbsGS) gradient for splitting large ones",
            "dense": "fastgs: fraction of the scene extent separating clone from split",
            "final_prunes": "fastgs: pruning events spread evenly between --densify_until_iter "
                            "and --iterations",
            "final_prune_opacity": "fastgs: those events remove Gaussians below this opacity",
            "final_prune_score": "fastgs: ... and those whose multi-view pruning score "
                                 "exceeds this",
            "sparse_points": "fastgs: below this many Gaussians (a sparse start such as "
                             "--random_init 100) densification runs 5x as often",
            "uncovered_spawn": "fastgs: per sampled view and densification event, spawn at most "
                               "this many Gaussians on high-error pixels no Gaussian covers "
                               "(0 = off)",
        }

    def _ranges(self):
        return {"percent_dense": fraction(), "densification_interval": iteration(),
                "opacity_reset_interval": Int(1, ITERATIONS_MAX),
                "densify_from_iter": iteration(), "densify_until_iter": iteration(),
                "densify_grad_threshold": non_negative(), "min_opacity": fraction(),
                "max_gaussians": Int(0, POINTS_MAX), "vcd_views": Int(1, 1000),
                "loss_thresh": fraction(), "importance_thresh": non_negative(),
                "grad_thresh": non_negative(), "grad_abs_thresh": non_negative(),
                "dense": fraction(), "final_prunes": Int(0, 1000),
                "final_prune_opacity": fraction(), "final_prune_score": fraction(),
                "sparse_points": Int(0, POINTS_MAX), "uncovered_spawn": Int(0, POINTS_MAX)}


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


PHASE_NAMES = {1: "detail formation", 2: "background completion", 3: "novel-view refinement"}
STRATEGIES = ("fastgs", "3dgs")


def check_args(args):
    """Reject bad choices and flag combinations with one line naming the flag. (Numeric
    ranges are checked at parse time: each flag declares its range in _ranges().)"""
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
    if not hasattr(args, "region_proposer"):
        return
    # A model trained before a flag existed has no value for it in cfg_args: its default.
    for key, value in vars(SemanticParams(ArgumentParser())).items():
        if not hasattr(args, key.lstrip("_")):
            setattr(args, key.lstrip("_"), value)
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

