"""edit.py's flags, their YAML config file, and validation.

Precedence, lowest first: built-in defaults < the saved `<output>/config.yaml` (only with
--resume / --from_round) < `--config FILE` < flags typed on the command line. The resolved
config is what the run saves, so `config.yaml` always says what a run did.
"""
import argparse
import os
from argparse import SUPPRESS, ArgumentParser
from typing import Optional

from arguments.ranges import (ITERATIONS_MAX, CliParser, Float, Int, fraction, iteration,
                              non_negative)
from utils.bounded_yaml import load_yaml_file
from utils.errors import UserError, elide

MODES = ("restyle", "replace", "remove")
PRESERVE_TO = ("pre_edit", "photo")
# Run-control flags: they say how to run this invocation, not what the edit is, so they are
# never taken from a saved config.
RUN_CONTROL = ("config", "resume", "from_round")
# Round seeds add 1000 per round (and diffusion seeds the view index) to --seed, and numpy
# takes seeds below 2**32: keep --seed well inside that.
SEED_MAX = (1 << 31) - 1


def build_parser() -> ArgumentParser:
    p = CliParser(
        prog="edit.py",
        description="Edit a trained Gaussian splatting scene with a text instruction "
                    "(InstructPix2Pix rounds: render -> edit -> swap targets -> optimise).")
    a = p.add_argument_group("Input and output")
    a.add_argument("-m", "--model_path", default="", help="train.py output folder to edit")
    a.add_argument("-s", "--source_path", default=None,
                   help="scene folder (default: the one in the model's cfg_args)")
    a.add_argument("-i", "--images", default=None,
                   help="image folder inside the scene (default: the model's)")
    a.add_argument("--iteration", type=Int(0, ITERATIONS_MAX, sentinels=(-1,)), default=-1,
                   help="trained iteration to start from (-1 = the latest saved)")
    a.add_argument("--output", default=None, help="output folder (default: <model>_edit)")
    a.add_argument("--config", default=None, help="YAML file with any of these flags")
    a.add_argument("--resume", action="store_true",
                   help="continue after the last complete round in --output")
    a.add_argument("--from_round", type=Int(0, 10_000), default=None,
                   help="restart from round K's snapshot (0 = the trained model); later "
                        "rounds are discarded")
    a.add_argument("--seed", type=Int(0, SEED_MAX), default=0,
                   help="seeds everything; each round and view derives its own seed from it")
    a.add_argument("--device", default=None, help="cpu, cuda or auto (default: the model's)")
    a.add_argument("--backend", default=None, help="rasterizer (default: the model's)")
    a.add_argument("--quiet", action="store_true")

    e = p.add_argument_group("Edit")
    e.add_argument("--instruction", default="", help="the edit, e.g. 'make the juice box red'")
    e.add_argument("--mode", default="restyle",
                   help="restyle (appearance), replace (densify in the RoI) or remove "
                        "(decay/prune the RoI and fill the background)")
    e.add_argument("--rounds", type=Int(1, 10_000), default=3)
    e.add_argument("--round_iters", type=Int(1, 10_000_000), default=2500,
                   help="optimisation iterations per round")
    e.add_argument("--refine_iters", type=iteration(), default=0,
                   help="extra GS-only iterations per round on the same targets (no new diffusion, "
                        "no densification)")
    e.add_argument("--edit_fraction", type=Float(0.0, 1.0, lo_open=True), default=1.0,
                   help="share of the candidate views edited per round")
    e.add_argument("--off_axis_fraction", type=fraction(), default=0.25,
                   help="share of the selected views picked for viewpoint diversity rather "
                        "than RoI coverage")
    e.add_argument("--editor", default="pix2pix",
                   help="pix2pix (InstructPix2Pix), or recolor:R,G,B: a deterministic edit "
                        "(each pixel becomes its luminance times R,G,B) for tests and ablations")

    d = p.add_argument_group("Diffusion (InstructPix2Pix)")
    d.add_argument("--pix2pix_model", default="timbrooks/instruct-pix2pix",
                   help="diffusers pipeline folder or hub id")
    d.add_argument("--diffusion_steps", type=Int(1, 1000), default=20)
    d.add_argument("--guidance_scale", type=Float(0.0, 100.0), default=7.5)
    d.add_argument("--image_guidance_scale", type=Float(0.0, 100.0), default=1.5)
    d.add_argument("--diffusion_size", type=Int(64, 4096), default=512,
                   help="renders are resized so their long side is this (multiples of 64) "
                        "for diffusion, and the edit resized back")

    r = p.add_argument_group("Region of interest")
    r.add_argument("--roi_prompt", default=None,
                   help="object to edit, found by Qwen3-VL grounding (needs --qwen_model_path)")
    r.add_argument("--qwen_model_path", default=None, help="Qwen3-VL folder or hub id")
    r.add_argument("--roi_views", type=Int(1, 1000), default=8,
                   help="--roi_prompt: views (evenly spaced) the VLM looks at")
    r.add_argument("--roi_box", action="append", default=None, metavar="VIEW:x1,y1,x2,y2",
                   help="pixel box in a training view (index or image name); repeatable")
    r.add_argument("--roi_polygon", action="append", default=None, metavar="VIEW:x1,y1,x2,y2,...",
                   help="pixel polygon (3+ vertices) in a training view; repeatable")
    r.add_argument("--roi_points", action="append", default=None, metavar="VIEW:x,y[,x,y...]",
                   help="points on the object in a training view (discs of --roi_point_radius)")
    r.add_argument("--roi_point_radius", type=Float(0.0, 1e4, lo_open=True), default=6.0)
    r.add_argument("--roi_threshold", type=fraction(), default=0.5,
                   help="share of a Gaussian's visible footprint inside the masks that makes it "
                        "half in the RoI")
    r.add_argument("--roi_softness", type=Float(0.0, 1.0, lo_open=True), default=0.3,
                   help="width of the soft edge of the per-Gaussian weight around --roi_threshold")
    r.add_argument("--roi_feather", type=Float(0.0, 1e3), default=1.5,
                   help="Gaussian blur (px) of the per-view blend masks")

    o = p.add_argument_group("Objective")
    o.add_argument("--lambda_dssim", type=fraction(), default=0.2)
    o.add_argument("--charbonnier_eps", type=Float(0.0, 1.0, lo_open=True), default=1e-3)
    o.add_argument("--lambda_preserve", type=non_negative(), default=1.0,
                   help="preservation outside the RoI")
    o.add_argument("--preserve_to", default="pre_edit",
                   help="what outside the RoI is kept like: pre_edit (this round's renders) "
                        "or photo (the original photos)")
    o.add_argument("--lambda_opacity", type=non_negative(), default=0.1,
                   help="penalty on opacity growth of Gaussians outside the RoI")
    o.add_argument("--lambda_consistency", type=non_negative(), default=0.05,
                   help="cross-view consistency: penalty on view-dependent colour in the RoI")
    o.add_argument("--lambda_position", type=non_negative(), default=1.0,
                   help="restyle: pull of positions to the round start (per scene extent^2)")
    o.add_argument("--lambda_scale", type=non_negative(), default=0.1,
                   help="restyle: pull of log-scales to the round start")
    o.add_argument("--outside_update", type=fraction(), default=0.0,
                   help="share of each optimizer step Gaussians fully outside the RoI take "
                        "(0 = frozen; the RoI weight interpolates)")
    o.add_argument("--densify_events", type=Int(0, 1000), default=3,
                   help="replace: RoI densification events per round")
    o.add_argument("--densify_budget", type=Int(0, 10_000_000), default=300,
                   help="replace: new Gaussians per view and event (remove: background fill)")
    o.add_argument("--densify_grad_ratio", type=non_negative(), default=0.5,
                   help="replace: densify only RoI Gaussians whose mean view-space gradient "
                        "this round reaches this fraction of the trained --grad_thresh")
    o.add_argument("--remove_decay", type=fraction(), default=0.01,
                   help="remove: per-iteration opacity decay of RoI Gaussians")
    o.add_argument("--prune_opacity", type=fraction(), default=0.05,
                   help="remove/replace: RoI Gaussians below this opacity are pruned")

    m = p.add_argument_group("Metrics")
    m.add_argument("--clip_model", default=None,
                   help="CLIP folder or hub id for the text-image direction similarity "
                        "(off when not given)")
    m.add_argument("--clip_source_text", default="a photo",
                   help="caption of the unedited scene for the CLIP direction")
    m.add_argument("--clip_target_text", default=None,
                   help="caption of the edited scene (default: the instruction)")
    return p


def _typed(parser: ArgumentParser, argv) -> dict:
    """The flags actually present in argv (a second parse with every default suppressed)."""
    saved = [(a, a.default) for a in parser._actions]
    for a, _ in saved:
        a.default = SUPPRESS
    try:
        return vars(parser.parse_args(argv))
    finally:
        for a, default in saved:
            a.default = default


def _actions(parser: ArgumentParser) -> dict:
    return {a.dest: a for a in parser._actions if a.dest != "help"}


def _coerce(action, key: str, value, source: str):
    """A YAML value -> the type the flag would have produced; anything else is refused
    naming the key (null for a flag that needs a value, bools as numbers, 2.5 as an int,
    lists or mappings as scalars)."""
    def bad(why="has an invalid value"):
        return UserError(f"{source}: '{key}' {why} {elide(value)}")

    if value is None:
        if action.default is None:
            return None
        raise UserError(f"{source}: '{key}' is null; give a value or leave the key out")
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise bad("must be true or false, got")
        return value
    if isinstance(action, argparse._AppendAction):
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int, float)) for v in values):
            raise bad("must be a string or a list of strings, got")
        return [str(v) for v in values]
    if isinstance(value, (list, dict)):
        raise bad("must be a single value, got")
    if isinstance(value, bool):
        raise bad("must be a value, not true/false:")
    try:
        return action.type(value) if action.type is not None else str(value)
    except argparse.ArgumentTypeError as e:  # a declared range (arguments/ranges.py)
        raise UserError(f"{source}: '{key}' {e}") from None
    except (TypeError, ValueError, OverflowError):
        raise bad() from None


def read_yaml_config(path: str, parser: ArgumentParser, source: Optional[str] = None) -> dict:
    source = source or f"--config {path}"
    if not os.path.isfile(path):
        raise UserError(f"{source}: no such file")
    data = load_yaml_file(path, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of flag names to values")
    actions = _actions(parser)
    out = {}
    for key, value in data.items():
        key = str(key).lstrip("-")
        if key not in actions:
            raise UserError(f"{source}: unknown key {elide(key)}")
        out[key] = _coerce(actions[key], key, value, source)
    return out


def default_output(model_path: str) -> str:
    return os.path.normpath(model_path).rstrip(os.sep) + "_edit"


def resolve_config(argv) -> argparse.Namespace:
    """Parse argv, merge YAML configs (see module docstring), validate; returns a Namespace."""
    parser = build_parser()
    defaults = vars(parser.parse_args([]))
    parsed = vars(parser.parse_args(argv))
    typed = _typed(parser, argv)
    from_file = read_yaml_config(parsed["config"], parser) if parsed.get("config") else {}

    def merge(*layers):
        cfg = dict(defaults)
        for layer in layers:
            cfg.update(layer)
        return cfg

    cfg = merge(from_file, typed)
    if not cfg["model_path"]:
        raise UserError("-m/--model_path is required (a train.py output folder)")
    if not cfg["output"]:
        cfg["output"] = default_output(cfg["model_path"])
    saved_path = os.path.join(cfg["output"], "config.yaml")
    if (cfg["resume"] or cfg["from_round"] is not None) and os.path.isfile(saved_path):
        saved = read_yaml_config(saved_path, parser, source=saved_path)
        for key in RUN_CONTROL:
            saved.pop(key, None)
        cfg = merge(saved, from_file, typed)
    ns = argparse.Namespace(**cfg)
    check_config(ns)
    return ns


def saved_config(cfg) -> dict:
    """What config.yaml holds: every flag except the run-control ones."""
    return {k: v for k, v in vars(cfg).items() if k not in RUN_CONTROL}


def parse_editor(spec: str):
    """'pix2pix' -> ('pix2pix', None); 'recolor:R,G,B' -> ('recolor', (r, g, b))."""
    spec = (spec or "").strip()
    if spec == "pix2pix":
        return "pix2pix", None
    if spec.startswith("recolor:"):
        try:
            rgb = tuple(float(v) for v in spec[len("recolor:"):].split(","))
        except ValueError:
            rgb = ()
        if len(rgb) != 3 or any(v < 0 for v in rgb):
            raise UserError(f"--editor {elide(spec)}: recolor needs three non-negative "
                            "numbers R,G,B")
        return "recolor", rgb
    raise UserError(f"--editor must be pix2pix or recolor:R,G,B, got {elide(spec)}")


def check_config(cfg):
    """Reject bad values with one line naming the flag."""
    if not (cfg.instruction or "").strip():
        raise UserError("--instruction is empty: say what the edit should do")
    if cfg.mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)}, got {elide(cfg.mode)}")
    if cfg.preserve_to not in PRESERVE_TO:
        raise UserError(f"--preserve_to must be pre_edit or photo, got {elide(cfg.preserve_to)}")
    parse_editor(cfg.editor)
    given = [f for f in ("roi_box", "roi_polygon", "roi_points") if getattr(cfg, f)]
    if cfg.roi_prompt is not None:
        if not cfg.roi_prompt.strip():
            raise UserError("--roi_prompt is empty")
        if given:
            raise UserError(f"--roi_prompt and --{given[0]} exclude each other: give the RoI "
                            "one way")
        if not cfg.qwen_model_path:
            raise UserError("--roi_prompt needs --qwen_model_path (a Qwen3-VL folder or hub id)")
    if cfg.from_round is not None and cfg.from_round >= cfg.rounds:
        raise UserError(f"--from_round {cfg.from_round}: nothing left to run with --rounds "
                        f"{cfg.rounds}")
