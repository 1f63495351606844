"""render.py's argument merge: typed flags > the run's cfg_args > defaults."""
from argparse import ArgumentParser

import pytest

from arguments import ModelParams, PipelineParams, get_combined_args

pytestmark = pytest.mark.unit


def _parser():
    p = ArgumentParser()
    ModelParams(p, sentinel=True)
    PipelineParams(p)
    p.add_argument("--skip_train", action="store_true")
    return p


def test_trained_values_win_over_defaults_and_typed_flags_win_over_both(tmp_path, pipe_params):
    (tmp_path / "cfg_args").write_text(
        f"Namespace(source_path='/data/scene', model_path='{tmp_path}', mult=1.0, "
        "backend='torch', sh_degree=3)")
    a = get_combined_args(_parser(), ["-m", str(tmp_path)])
    assert a.mult == 1.0 and a.backend == "torch" and a.source_path == "/data/scene"
    assert a.skip_train is False
    b = get_combined_args(_parser(), ["-m", str(tmp_path), "--mult", "0.7", "--skip_train"])
    assert b.mult == 0.7 and b.skip_train is True and b.backend == "torch"
    # Without cfg_args, defaults fill in.
    c = get_combined_args(_parser(), ["-m", str(tmp_path / "missing")])
    assert c.mult == pipe_params.mult
