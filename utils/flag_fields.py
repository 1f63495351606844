"""Config dataclass fields that are also command-line flags.

A config dataclass (a densification strategy's, for example) declares a flag where it declares
the field: `vcd_views: int = flag(10, "views scored per event", Int(1, 1000))`. The CLI's
parameter groups are generated from these declarations (`flag_fields`), so a flag's name,
default, range and help text live in one place.
"""
import dataclasses
from typing import Dict, Iterable, Optional

FLAG = "flag"  # metadata key marking a field as a flag


def flag(default, help: Optional[str] = None, range=None):
    """A dataclass field with this default that is also the flag `--<field name>`; `range` is
    the argparse type (utils/ranges.py) every numeric flag declares."""
    return dataclasses.field(default=default, metadata={FLAG: True, "help": help,
                                                        "range": range})


def flag_fields(classes: Iterable[type]) -> Dict[str, dataclasses.Field]:
    """name -> the field declaring flag `--name`, over `classes` and their dataclass bases
    (bases first, then each class in turn, in declaration order). A flag is declared once: a
    subclass may redeclare the field only to change its default (without `flag`); the flag
    keeps the declaring field's default, range and help."""
    out: Dict[str, dataclasses.Field] = {}
    owner: Dict[str, type] = {}
    for cls in classes:
        for klass in reversed(cls.__mro__):
            for f in vars(klass).get("__dataclass_fields__", {}).values():
                if not f.metadata.get(FLAG) or f.name not in vars(klass).get(
                        "__annotations__", {}):
                    continue  # inherited (declared by a base) or not a flag
                if f.name in out and owner[f.name] is not klass:
                    raise TypeError(f"--{f.name} is declared twice ({owner[f.name].__name__}, "
                                    f"{klass.__name__}): declare a shared flag on a base class")
                out[f.name], owner[f.name] = f, klass
    return out
