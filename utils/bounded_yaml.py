"""YAML for files a user hands us: safe tags only, no anchors or aliases (a "billion laughs"
file of a few hundred bytes otherwise expands to gigabytes), bounded nesting and size,
strict UTF-8. Any problem is one UserError line naming the file."""
import yaml

from utils.errors import UserError, one_line

MAX_BYTES = 1 << 20   # a config is a few KB
MAX_DEPTH = 32        # a config is a flat mapping of flags (append flags: one list level)


class _Refused(Exception):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses anchors/aliases and deep nesting before building
    anything (the composer is where PyYAML recurses and where aliases are resolved)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _Refused("uses an alias (*name): anchors and aliases are not allowed")
        if getattr(self.peek_event(), "anchor", None) is not None:
            raise _Refused("defines an anchor (&name): anchors and aliases are not allowed")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"is nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml_file(path: str, source: str):
    """The decoded document of `path` (None when empty); `source` names it in errors."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UserError(f"{source}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise UserError(f"{source}: larger than {MAX_BYTES // 1024} KB, not a config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{source}: not UTF-8 text (byte {e.start})") from None
    loader = None
    try:
        loader = _BoundedLoader(text)  # already reads: refuses control characters
        return loader.get_single_data()
    except _Refused as e:
        raise UserError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or type(e).__name__
        raise UserError(f"{source}: not valid YAML{where} ({one_line(problem, 80)})") from None
    except (ValueError, OverflowError, RecursionError) as e:  # e.g. 4300+ digit int, bad date
        raise UserError(f"{source}: a value cannot be read ({one_line(str(e), 80)})") from None
    finally:
        if loader is not None:
            loader.dispose()
