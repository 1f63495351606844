"""Command-line parameter groups, one per concern, in the reference codebase's style.

Each attribute of a group becomes a flag (`foo_bar` -> `--foo_bar`); a leading underscore adds
the short form from its first letter (`_source_path` -> `-s/--source_path`). `extract(args)`
returns a plain namespace with the group's values.
"""
import ast
import os
import sys
from argparse import SUPPRESS, ArgumentParser, Namespace

from utils.errors import UserError


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
            if isinstance(value, bool):
                group.add_argument(*flags, default=default, action="store_true", help=help_text)
            elif value is None:
                group.add_argument(*flags, default=default, type=str, help=help_text)
            elif isinstance(value, (list, tuple)):
                group.add_argument(*flags, default=default, nargs="+", type=type(value[0]),
                                   help=help_text)
            else:
                group.add_argument(*flags, default=default, type=type(value), help=help_text)

    def _help(self) -> dict:
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
        super().__init__(parser, "Pipeline Parameters")

    def _help(self):
        return {"backend": "rasterizer: auto (CUDA extension on CUDA, C++ rasterizer on CPU, "
                           "when built; else torch), cuda, cpp or torch (pure PyTorch oracle)",
                "mult": "FastGS compact footprint factor, shared by training and rendering "
                        "(1.0 = the reference 3DGS footprint)"}


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
                "optimizer_type": "default (Adam) or sparse_adam (Adam steps only the "
                                  "Gaussians visible in the iteration's view)"}


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
        names = {1: "detail formation", 2: "background completion", 3: "novel-view refinement"}
        for i, name in names.items():
            h[f"phase{i}_start"] = f"phase {i} ({name}) owns iterations (start, end] " \
                                   "(-1 = the published schedule scaled to the run)"
            h[f"phase{i}_interval"] = f"phase {i}: iterations between analyses"
            h[f"phase{i}_max_points"] = f"phase {i}: at most this many new Gaussians per view " \
                                        "and analysis (-1 = the published cap scaled by the " \
                                        "image area over 1 MP)"
        return h


STRATEGIES = ("fastgs", "3dgs")


def check_args(args):
    """Reject bad flag combinations with one line naming the flag."""
    if getattr(args, "strategy", "fastgs") not in STRATEGIES:
        raise UserError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {args.strategy!r}")
    if getattr(args, "backend", "auto") not in ("auto", "cuda", "cpp", "torch"):
        raise UserError(f"--backend must be auto, cuda, cpp or torch, got {args.backend!r}")
    if getattr(args, "optimizer_type", "default") not in ("default", "sparse_adam"):
        raise UserError("--optimizer_type must be default or sparse_adam, "
                        f"got {args.optimizer_type!r}")
    if getattr(args, "iterations", 1) < 1:
        raise UserError("--iterations must be at least 1")
    if getattr(args, "random_init", 0) < 0:
        raise UserError("--random_init must be >= 0")
    res = getattr(args, "resolution", -1)
    if res == 0 or res < -1:
        raise UserError("--resolution must be 1, 2, 4, 8, a target width, or -1")
    if getattr(args, "mult", 1.0) <= 0:
        raise UserError("--mult must be > 0")
    check_densification_args(args)
    check_semantic_args(args)


def check_densification_args(args):
    for flag in ("densification_interval", "final_prunes", "max_gaussians", "sparse_points",
                 "uncovered_spawn",
                 "lowfeature_lr", "highfeature_lr", "importance_thresh"):
        if getattr(args, flag, 0) < 0:
            raise UserError(f"--{flag} must be >= 0")
    if getattr(args, "vcd_views", 1) < 1:
        raise UserError("--vcd_views must be at least 1")
    for flag in ("loss_thresh", "final_prune_score", "final_prune_opacity"):
        if not 0.0 <= getattr(args, flag, 0.5) <= 1.0:
            raise UserError(f"--{flag} must be in [0, 1]")


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
    if args.semantic_num_samples < 1:
        raise UserError("--semantic_num_samples must be at least 1")
    if args.total_iterations < 0:
        raise UserError("--total_iterations must be >= 0")
    if not 0.0 < args.max_box_frac <= 1.0:
        raise UserError("--max_box_frac must be in (0, 1]")
    if args.region_min_priority < 0:
        raise UserError("--region_min_priority must be >= 0")
    if args.spawn_depth not in ("photo", "render"):
        raise UserError(f"--spawn_depth must be photo or render, got {args.spawn_depth!r}")
    if args.textureless_depth not in ("none", "far"):
        raise UserError("--textureless_depth must be none or far, "
                        f"got {args.textureless_depth!r}")
    if args.completion_background not in ("random", "phase2", "fixed"):
        raise UserError("--completion_background must be random, phase2 or fixed, "
                        f"got {args.completion_background!r}")
    if args.completion_alpha < 0:
        raise UserError("--completion_alpha must be >= 0")
    if args.background_holes not in ("fill", "share"):
        raise UserError(f"--background_holes must be fill or share, got {args.background_holes!r}")
    if not 0.0 < args.hole_opacity < 1.0:
        raise UserError("--hole_opacity must be in (0, 1)")
    for flag in ("floater_support", "floater_near"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            raise UserError(f"--{flag} must be in [0, 1]")
    if args.max_boxes < 1:
        raise UserError("--max_boxes must be at least 1")
    if args.vlm_max_pixels < 32 * 32:
        raise UserError("--vlm_max_pixels must be at least 1024 (one 32x32 tile)")
    for i in (1, 2, 3):
        start, end = getattr(args, f"phase{i}_start"), getattr(args, f"phase{i}_end")
        if start >= 0 and end >= 0 and end < start:
            raise UserError(f"--phase{i}_end ({end}) is before --phase{i}_start ({start})")
        if getattr(args, f"phase{i}_interval") == 0:
            raise UserError(f"--phase{i}_interval must be > 0 (-1 = the default)")
    if args.vlm_dtype not in ("auto", "fp32", "float32", "bf16", "bfloat16", "fp16", "float16"):
        raise UserError(f"--vlm_dtype must be auto, fp32, bf16 or fp16, got {args.vlm_dtype!r}")


def read_cfg_args(model_path: str) -> dict:
    """Parse `<model>/cfg_args` (a `Namespace(...)` line) without eval."""
    path = os.path.join(model_path, "cfg_args")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    try:
        call = ast.parse(text.strip(), mode="eval").body
        if not isinstance(call, ast.Call):
            raise ValueError
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError) as e:
        raise UserError(f"{path} is not a valid cfg_args file") from e


def get_combined_args(parser: ArgumentParser, argv=None) -> Namespace:
    """Flags given on the command line, over the training run's cfg_args, over defaults.

    Unlike the reference, a default never overrides cfg_args: a model trained with
    `--mult 1.0` renders with 1.0 unless `--mult` is given again."""
    argv = sys.argv[1:] if argv is None else argv
    cmd = parser.parse_args(argv)
    saved = [(a, a.default) for a in parser._actions]
    for a, _ in saved:
        a.default = SUPPRESS  # a second parse that only sees what was typed
    try:
        given = vars(parser.parse_args(argv))
    finally:
        for a, default in saved:
            a.default = default
    merged = {k: v for k, v in vars(cmd).items() if v is not None}
    merged.update(read_cfg_args(cmd.model_path) if cmd.model_path else {})
    merged.update(given)
    return Namespace(**merged)
