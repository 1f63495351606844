"""Command-line parameter groups, in the reference codebase's style.

Each attribute of a group becomes a flag (`foo_bar` -> `--foo_bar`); a leading underscore adds
the short form from its first letter (`_source_path` -> `-s/--source_path`). `extract(args)`
returns a plain namespace with the group's values.
"""
from argparse import ArgumentParser, Namespace


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


def group_defaults(group: type) -> dict:
    """{flag name: default} of a ParamGroup class."""
    return {key.lstrip("_"): value for key, value in vars(group(ArgumentParser())).items()}


def fill_defaults(args: Namespace, *groups: type) -> Namespace:
    """Give `args` the default of every flag of `groups` (ParamGroup classes) it lacks or
    holds as None: a saved cfg_args from before a flag existed, or render.py's flags that
    default to None so that cfg_args wins over them."""
    for name, value in {k: v for g in groups for k, v in group_defaults(g).items()}.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args
