"""Numeric flags with their ranges, checked once at parse time.

A flag's range is declared with the flag: `type=Int(0, 3)` or `type=Float(0, 1)` (utils/ranges.py,
re-exported here) is an argparse type that parses the text, rejects non-finite and out-of-range
values, and raises `ArgumentTypeError`, so argparse names the flag. The same object re-checks
values that did not come from the command line (a saved `cfg_args`, an edit YAML config):
`check_values`.

`CliParser` is the ArgumentParser of our four CLIs: a parse error is a `UserError`, which
`user_errors_exit` prints as one line (`train.py: error: argument --seed: ...`, exit code 2)
instead of argparse's usage block.
"""
from argparse import ArgumentParser, ArgumentTypeError

from utils.errors import UserError
from utils.ranges import (ITERATIONS_MAX, POINTS_MAX, SEED_MAX, SH_DEGREE_MAX,  # noqa: F401
                          Bounded, Float, Int, fraction, iteration, iteration_list_entry,
                          learning_rate, non_negative, seed)


def flag_name(action) -> str:
    longs = [s for s in action.option_strings if s.startswith("--")]
    return "/".join(action.option_strings) if len(action.option_strings) > 1 else (
        longs[0] if longs else action.dest)


def check_values(parser: ArgumentParser, values: dict, source: str):
    """Apply each Bounded flag's range to `values` that did not pass through argparse
    (a saved cfg_args, a config file); the first bad one is a UserError naming the flag
    and `source`. Returns the values with numbers normalised (3.0 -> 3 for integers)."""
    out = dict(values)
    for action in parser._actions:
        if not isinstance(action.type, Bounded) or values.get(action.dest) is None:
            continue
        value = values[action.dest]
        try:
            if isinstance(value, (list, tuple)):
                out[action.dest] = [action.type(v) for v in value]
            else:
                out[action.dest] = action.type(value)
        except ArgumentTypeError as e:
            raise UserError(f"{source}: {flag_name(action)} {e}") from None
    return out


def unbounded_numeric_flags(parser: ArgumentParser) -> list:
    """Flags whose type is a bare int/float (no declared range): there should be none."""
    return [flag_name(a) for a in parser._actions if a.type in (int, float)]


class CliParser(ArgumentParser):
    """ArgumentParser whose errors raise UserError (parse inside `user_errors_exit`)."""

    def error(self, message):
        raise UserError(" ".join(str(message).split()) + " (see --help)")
