"""Typed configuration (issue 20): every default of a run resolved in one place before
cfg_args is written, guidance reading a frozen SemanticConfig, the strategies' flags generated
from their config dataclasses, and train.py's flags unchanged by it all."""
import dataclasses
import os
from argparse import ArgumentParser

import pytest

from arguments import DensificationParams, SemanticParams, group_defaults, read_cfg_args
from arguments.resolve import resolve_run_config
from scene.strategies import STRATEGIES, FastGS, Vanilla3DGS
from semantic.config import SemanticConfig
from semantic.schedule import PUBLISHED
from tests.demo_scenes import make_scene
from utils.errors import UserError
from utils.flag_fields import flag, flag_fields

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS_FILE = os.path.join(REPO, "tests", "data", "train_flags.txt")
# Flags whose sentinel means "the default": none of these values may reach cfg_args.
AUTO = {"densification_interval": 0, "total_iterations": 0, "prune_protection": -1,
        "region_proposer": "", "model_path": "",
        **{f"phase{i}_{k}": -1 for i in PUBLISHED for k in ("start", "end", "interval",
                                                              "max_points")}}


def parse(argv):
    import train
    return train.build_parser()[0].parse_args(list(argv))


def run_config(argv, sizes=((192, 108),)):
    """train.py's resolution of `argv` (with `-s` filled in) for training views of `sizes`."""
    return resolve_run_config(parse(["-s", "unused", *argv]), list(sizes))


def test_every_auto_value_is_resolved_and_the_parsed_flags_are_left_alone():
    args = parse(["-s", "unused", "--iterations", "1200", "--region_proposer", "error"])
    before = dict(vars(args))
    run = resolve_run_config(args, [(192, 108)] * 3)
    assert vars(args) == before
    out = run.args
    assert [k for k, v in AUTO.items() if getattr(out, k) == v] == []
    assert out.densification_interval == 100    # fastgs: 1200 // 60, at least 100
    assert out.total_iterations == 1200 and out.save_iterations == [1200, 7000, 30000]
    assert (out.phase1_end, out.phase2_end, out.phase3_end) == (480, 840, 1020)
    # caps: the error proposer's own phase-1 cap, else the published one x area / 1 MP
    area = 192 * 108 / 1e6
    assert (out.phase1_max_points, out.phase2_max_points, out.phase3_max_points) == (
        0, round(8000 * area), round(4000 * area))
    assert run.semantic == SemanticConfig.from_args(out)
    assert run_config(["--strategy", "3dgs"]).args.densification_interval == 100
    assert run_config(["--iterations", "60000"]).args.densification_interval == 500
    assert run_config([]).args.region_proposer == "none"
    assert run_config(["--qwen_model_path", "m"]).args.region_proposer == "qwen"
    given = run_config(["--phase2_max_points", "5", "--densification_interval", "7",
                        "--total_iterations", "900", "-m", "out"]).args
    assert (given.phase2_max_points, given.densification_interval, given.total_iterations,
            given.model_path) == (5, 7, 900, "out")   # given flags win


def test_semantic_config_is_frozen_and_has_every_semantic_flag():
    cfg = run_config(["--region_proposer", "error"]).semantic
    names = {f.name for f in dataclasses.fields(SemanticConfig)}
    assert set(group_defaults(SemanticParams)) <= names
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.phase1_max_points = 5
    args = run_config([]).args
    del args.floater_near
    with pytest.raises(TypeError, match="floater_near"):
        SemanticConfig.from_args(args)


def test_strategy_flags_come_from_the_strategies_dataclasses():
    declared = flag_fields(STRATEGIES.values())
    assert set(group_defaults(DensificationParams)) == {"strategy", *declared}
    # shared flags are declared once, on the Strategy base; a strategy only changes a default
    assert declared["min_opacity"] is dataclasses.fields(FastGS)[
        [f.name for f in dataclasses.fields(FastGS)].index("min_opacity")]
    assert FastGS().densification_interval == 500 and Vanilla3DGS().densification_interval == 100
    assert group_defaults(DensificationParams)["densification_interval"] == 0  # = auto
    for name, f in declared.items():
        assert f.metadata["range"] is not None, name  # every numeric flag declares its range
    # Each strategy takes its own fields from the parsed flags.
    dens = DensificationParams(ArgumentParser())
    parsed = ArgumentParser()
    DensificationParams(parsed)
    ns = parsed.parse_args(["--vcd_views", "3", "--percent_dense", "0.05", "--min_opacity", "0.1"])
    fast, vanilla = FastGS.from_args(dens.extract(ns)), Vanilla3DGS.from_args(dens.extract(ns))
    assert (fast.vcd_views, fast.min_opacity, fast.densification_interval) == (3, 0.1, 500)
    assert (vanilla.percent_dense, vanilla.min_opacity) == (0.05, 0.1)


def test_a_flag_declared_twice_is_refused():
    @dataclasses.dataclass
    class A:
        x: int = flag(1, "x")

    @dataclasses.dataclass
    class B:
        x: int = flag(2, "x again")

    @dataclasses.dataclass
    class C(A):
        x: int = 3   # a new default for A's flag: allowed

    assert flag_fields([A, C])["x"].default == 1
    with pytest.raises(TypeError, match="--x is declared twice"):
        flag_fields([A, B])


def flag_rows(parser) -> list:
    rows = []
    for a in parser._actions:
        kind = a.type.describe() if hasattr(a.type, "describe") else getattr(
            a.type, "__name__", a.type)
        rows.append(f"{'/'.join(a.option_strings) or a.dest} | default {a.default!r} | "
                    f"{kind} | nargs {a.nargs} | {type(a).__name__} | {a.help}")
    return sorted(rows)


def test_train_flags_are_unchanged():
    """Every flag of train.py with its default, range, arity and help, against
    tests/data/train_flags.txt (written before the strategies' flags moved onto their
    dataclasses). A new or changed flag updates that file in the same change."""
    import train
    with open(FLAGS_FILE) as f:
        want = f.read().splitlines()
    assert flag_rows(train.build_parser()[0]) == want


@pytest.fixture(scope="module")
def demo_scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene") / "demo", views=6, width=64, height=48)


def test_training_view_sizes_are_those_the_scene_loads(demo_scene, tmp_path):
    from arguments import ModelParams
    from scene import Scene
    from scene.gaussian_model import GaussianModel
    from scene.view_sizes import training_view_sizes
    for r in ("-1", "2", "40"):
        args = parse(["-s", demo_scene, "-r", r, "--eval", "--llffhold", "3",
                      "-m", str(tmp_path)])
        dataset = ModelParams(ArgumentParser()).extract(args)
        dataset.data_device = "cpu"
        sizes = training_view_sizes(dataset, 32)
        scene = Scene(dataset, GaussianModel(3), quiet=True) if r == "-1" else None
        if scene is not None:
            assert sizes == [(c.image_width, c.image_height) for c in scene.getTrainCameras()]
        assert len(sizes) == 4 and sizes[0] == {"-1": (64, 48), "2": (32, 24), "40": (40, 30)}[r]
    args = parse(["-s", demo_scene, "-r", "65"])   # wider than the 64 px images
    with pytest.raises(UserError, match="-r/--resolution"):   # refused before the scene loads
        training_view_sizes(ModelParams(ArgumentParser()).extract(args), 32)


def test_cfg_args_records_the_resolved_values(demo_scene, tmp_path):
    import train
    m = str(tmp_path / "model")
    train.main(["-s", demo_scene, "-m", m, "--iterations", "3", "--region_proposer", "error",
                "--random_init", "50", "--test_iterations", "-1", "--quiet",
                "--no_tensorboard", "--disable_viewer"])
    saved = read_cfg_args(m)
    assert [k for k, v in AUTO.items() if saved[k] == v] == []
    area = 64 * 48 / 1e6
    assert (saved["phase1_max_points"], saved["phase2_max_points"],
            saved["phase3_max_points"]) == (0, round(8000 * area), round(4000 * area))
    assert saved["total_iterations"] == 3 and saved["densification_interval"] == 100
    import json
    with open(os.path.join(m, "regions", "schedule.json")) as f:
        phases = json.load(f)["phases"]
    # what guidance used is what cfg_args says
    assert [p["max_points"] for p in phases] == [saved[f"phase{i}_max_points"]
                                                 for i in (1, 2, 3) if saved[f"phase{i}_end"]
                                                 > saved[f"phase{i}_start"]]


def test_the_flag_ranges_import_without_torch():
    """edit.py and view.py parse their flags with arguments.ranges before loading anything:
    the strategies (and torch) behind the densification group must not load with it."""
    import subprocess
    import sys
    code = ("import sys, arguments.ranges, arguments; "
            "assert 'torch' not in sys.modules and 'scene' not in sys.modules, 'heavy import'; "
            "arguments.DensificationParams; assert 'scene.strategies' in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
