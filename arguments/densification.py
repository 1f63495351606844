"""Densification Parameters: --strategy and the strategies' own flags.

The flags are generated from the strategies' config dataclasses (scene/strategies/): each
flag's name, default, range and help text is declared once, on its field (`flag(...)`), the
flags every strategy shares on the `Strategy` base.
"""
from arguments.groups import ParamGroup
from scene.strategies import STRATEGIES
from utils.flag_fields import flag_fields

STRATEGY_FLAGS = flag_fields(STRATEGIES.values())
DEFAULT_STRATEGY = next(iter(STRATEGIES))


class DensificationParams(ParamGroup):
    def __init__(self, parser):
        self.strategy = DEFAULT_STRATEGY
        for name, f in STRATEGY_FLAGS.items():
            setattr(self, name, f.default)
        super().__init__(parser, "Densification Parameters")

    def _help(self):
        return {"strategy": "densification strategy: fastgs (default) or 3dgs (the reference)",
                **{name: f.metadata["help"] for name, f in STRATEGY_FLAGS.items()}}

    def _ranges(self):
        return {name: f.metadata["range"] for name, f in STRATEGY_FLAGS.items()}
