"""render.py's flags: those typed, over the training run's saved cfg_args, over defaults."""
import ast
import os
from argparse import SUPPRESS, ArgumentParser, Namespace
from typing import List

from arguments.ranges import check_values
from utils.errors import UserError


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


def get_combined_args(parser: ArgumentParser, argv: List[str]) -> Namespace:
    """Flags given on the command line, over the training run's cfg_args, over defaults.

    Unlike the reference, a default never overrides cfg_args: a model trained with
    `--mult 1.0` renders with 1.0 unless `--mult` is given again."""
    argv = list(argv)  # explicit: the caller passes sys.argv[1:] (no hidden read of it here)
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
    if cmd.model_path:  # saved values get the same range checks as typed ones
        merged.update(check_values(parser, read_cfg_args(cmd.model_path),
                                   os.path.join(cmd.model_path, "cfg_args")))
    merged.update(given)
    return Namespace(**merged)
