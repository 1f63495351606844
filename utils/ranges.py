"""Numeric ranges of flags and config fields: argparse types that check what they parse.

`Int(0, 3)` / `Float(0, 1)` parse text (or a YAML number), reject non-finite and out-of-range
values with `ArgumentTypeError` (so argparse names the flag), and re-check values that did not
come from the command line. A leaf module: config dataclasses outside `arguments/` (the
strategies') declare their ranges with it without importing the CLI code.
"""
import math
from argparse import ArgumentTypeError

SEED_MAX = 2 ** 32 - 1  # numpy's seed range
ITERATIONS_MAX = 10_000_000
SH_DEGREE_MAX = 3  # the reference's (and our rasterizers') highest SH degree
POINTS_MAX = 100_000_000  # --random_init, --max_gaussians: beyond any one-GPU scene


def _short(text, limit: int = 40) -> str:
    text = repr(text) if isinstance(text, str) else str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Bounded:
    """A number in [lo, hi] (either end open or absent), or one of `sentinels` (e.g. -1 =
    "the default"). Callable as an argparse `type`; accepts text or a number (YAML)."""

    kind = float

    def __init__(self, lo=None, hi=None, *, lo_open=False, hi_open=False, sentinels=()):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
        self.sentinels = tuple(sentinels)
        self.__name__ = self.kind.__name__  # argparse names the type in its generic messages

    def _parse(self, value):
        raise NotImplementedError

    def __call__(self, value):
        number = self._parse(value)
        if number in self.sentinels or self._inside(number):
            return number
        raise ArgumentTypeError(f"must be {self.describe()}, got {_short(value)}")

    def _inside(self, x) -> bool:
        if self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo)):
            return False
        if self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi)):
            return False
        return True

    def describe(self) -> str:
        def num(x):
            return f"{x:g}" if isinstance(x, float) else str(x)

        noun = "an integer" if self.kind is int else "a number"
        lo_b, hi_b = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        if self.lo is not None and self.hi is not None:
            text = f"{noun} in {lo_b}{num(self.lo)}, {num(self.hi)}{hi_b}"
        elif self.lo is not None:
            text = f"{noun} {'>' if self.lo_open else '>='} {num(self.lo)}"
        elif self.hi is not None:
            text = f"{noun} {'<' if self.hi_open else '<='} {num(self.hi)}"
        else:
            text = f"a finite {noun.split()[-1]}"
        if self.sentinels:
            text = " or ".join(str(s) for s in self.sentinels) + " or " + text
        return text


class Int(Bounded):
    kind = int

    def _parse(self, value):
        if isinstance(value, bool):
            raise ArgumentTypeError(f"must be {self.describe()}, got {_short(value)}")
        if isinstance(value, float):  # from YAML: 3.0 is 3, .inf and 2.5 are not integers
            if math.isfinite(value) and value == int(value):
                return int(value)
            raise ArgumentTypeError(f"must be {self.describe()}, got {_short(value)}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise ArgumentTypeError(f"must be {self.describe()}, got {_short(value)}") from None


class Float(Bounded):
    kind = float

    def _parse(self, value):
        if isinstance(value, bool):
            raise ArgumentTypeError(f"must be {self.describe()}, got {_short(value)}")
        try:
            x = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ArgumentTypeError(f"must be {self.describe()}, got {_short(value)}") from None
        if not math.isfinite(x):
            raise ArgumentTypeError(f"must be {self.describe()} (finite), got {_short(value)}")
        return x


# Shorthands for the common ranges.
def fraction():
    return Float(0.0, 1.0)


def non_negative():
    return Float(0.0)


def learning_rate():
    # Adam steps above 1 in any parameter's units are a typo, not an experiment.
    return Float(0.0, 1.0)


def iteration():
    return Int(0, ITERATIONS_MAX)


def iteration_list_entry():
    # -1 is the reference's "never" (full_eval.py passes --test_iterations -1)
    return Int(0, ITERATIONS_MAX, sentinels=(-1,))


def seed():
    return Int(0, SEED_MAX)
