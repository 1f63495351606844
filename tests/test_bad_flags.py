"""Every numeric flag of train.py, render.py, metrics.py and edit.py declares its range: a bad
value ends, at parse time, in exit code 2 and one line naming the flag (no traceback, nothing
loaded or written). The table runs each bad value through the CLI's own main(); a few run as
real subprocesses."""
import os
import subprocess
import sys

import pytest

from arguments.ranges import unbounded_numeric_flags

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOSCENE = "/nonexistent/scene"  # a bad flag must be refused before the scene is looked at

# (CLI, flag, bad value). The flag is what the error line must name.
BAD = [
    # train.py: the fuzz campaign's findings (issue 22) first
    ("train", "--seed", "-1"), ("train", "--seed", str(2 ** 70)), ("train", "--seed", "2**70"),
    ("train", "--llffhold", "0"), ("train", "--sh_degree", "-1"), ("train", "--sh_degree", "99"),
    ("train", "--resolution", "100000"), ("train", "--resolution", "0"),
    ("train", "--resolution", "-2"), ("train", "--lambda_dssim", "nan"),
    ("train", "--lambda_dssim", "1.5"),
    # every other numeric flag of train.py
    ("train", "--iterations", "0"), ("train", "--iterations", "1e3"),
    ("train", "--position_lr_init", "inf"), ("train", "--position_lr_final", "-0.5"),
    ("train", "--position_lr_delay_mult", "2"), ("train", "--position_lr_max_steps", "0"),
    ("train", "--feature_lr", "nan"), ("train", "--lowfeature_lr", "-0.1"),
    ("train", "--highfeature_lr", "5"), ("train", "--opacity_lr", "-0.5"),
    ("train", "--scaling_lr", "10"), ("train", "--rotation_lr", "-1"),
    ("train", "--random_init", "-5"), ("train", "--random_init", str(10 ** 12)),
    ("train", "--max_gaussians", "-1"), ("train", "--mult", "0"), ("train", "--mult", "nan"),
    ("train", "--percent_dense", "-0.5"), ("train", "--densification_interval", "-100"),
    ("train", "--opacity_reset_interval", "0"), ("train", "--densify_from_iter", "-1"),
    ("train", "--densify_until_iter", "1e9"), ("train", "--densify_grad_threshold", "nan"),
    ("train", "--min_opacity", "1.1"), ("train", "--vcd_views", "0"),
    ("train", "--loss_thresh", "inf"), ("train", "--importance_thresh", "-1"),
    ("train", "--grad_thresh", "nan"), ("train", "--grad_abs_thresh", "-1"),
    ("train", "--dense", "2"), ("train", "--final_prunes", "-1"),
    ("train", "--final_prune_opacity", "nan"), ("train", "--final_prune_score", "-0.1"),
    ("train", "--sparse_points", "-1"), ("train", "--uncovered_spawn", "-1"),
    ("train", "--test_iterations", "-7"), ("train", "--save_iterations", "nan"),
    ("train", "--test_iterations", "1.5"),
    ("train", "--checkpoint_iterations", "-2"),
    # semantic guidance
    ("train", "--vlm_max_pixels", "100"), ("train", "--vlm_max_new_tokens", "0"),
    ("train", "--semantic_num_samples", "0"), ("train", "--total_iterations", "-1"),
    ("train", "--phase1_start", "-2"), ("train", "--phase2_end", "-5"),
    ("train", "--phase1_interval", "0"), ("train", "--phase3_max_points", "-2"),
    ("train", "--prune_protection", "-3"), ("train", "--max_boxes", "0"),
    ("train", "--max_box_frac", "0"), ("train", "--region_error_thresh", "nan"),
    ("train", "--region_min_priority", "-1"), ("train", "--floater_support", "1.5"),
    ("train", "--floater_near", "-0.1"), ("train", "--hole_opacity", "1"),
    ("train", "--completion_alpha", "inf"),
    # render.py and metrics.py
    ("render", "--iteration", "-5"), ("render", "--sh_degree", "7"),
    ("render", "--mult", "-1"), ("metrics", "--iteration", "-1"),
    # edit.py
    ("edit", "--seed", "-1"), ("edit", "--seed", "inf"), ("edit", "--rounds", "0"),
    ("edit", "--round_iters", "0"), ("edit", "--refine_iters", "-1"),
    ("edit", "--iteration", "-2"), ("edit", "--from_round", "-1"),
    ("edit", "--edit_fraction", "0"), ("edit", "--off_axis_fraction", "nan"),
    ("edit", "--diffusion_steps", "0"), ("edit", "--guidance_scale", "nan"),
    ("edit", "--image_guidance_scale", "-1"), ("edit", "--diffusion_size", "32"),
    ("edit", "--roi_views", "0"), ("edit", "--roi_point_radius", "0"),
    ("edit", "--roi_threshold", "2"), ("edit", "--roi_softness", "nan"),
    ("edit", "--roi_feather", "-1"), ("edit", "--lambda_dssim", "nan"),
    ("edit", "--charbonnier_eps", "0"), ("edit", "--lambda_preserve", "-1"),
    ("edit", "--lambda_opacity", "inf"), ("edit", "--lambda_consistency", "-0.5"),
    ("edit", "--lambda_position", "nan"), ("edit", "--lambda_scale", "-1"),
    ("edit", "--outside_update", "1.5"), ("edit", "--densify_events", "-1"),
    ("edit", "--densify_budget", "-1"), ("edit", "--densify_grad_ratio", "nan"),
    ("edit", "--remove_decay", "2"), ("edit", "--prune_opacity", "-0.1"),
]


def _argv(cli, flag, value, tmp):
    if cli == "train":
        return ["-s", NOSCENE, "-m", str(tmp / "out"), flag, value]
    if cli == "render":
        return ["-m", str(tmp / "out"), flag, value]
    if cli == "metrics":
        return ["-m", str(tmp / "out"), flag, value]
    return ["-m", str(tmp / "out"), "--instruction", "x", flag, value]


def _main(cli):
    if cli == "edit":
        import edit
        return edit.main
    return __import__(cli).main


@pytest.mark.parametrize("cli,flag,value", BAD, ids=[f"{c}{f}={v}" for c, f, v in BAD])
def test_bad_flag_is_one_line_naming_it(cli, flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _main(cli)(_argv(cli, flag, value, tmp_path))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert e.value.code == 2, err
    assert len(lines) == 1 and flag in lines[0] and f"{cli}.py: error:" in lines[0], err
    assert len(lines[0]) < 300
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.e2e
@pytest.mark.parametrize("cli,flag,value", [
    ("train", "--seed", "-1"), ("train", "--sh_degree", "99"), ("train", "--lambda_dssim", "nan"),
    ("train", "-r", "100000"), ("render", "--iteration", "-5"), ("metrics", "--iteration", "x"),
    ("edit", "--guidance_scale", "nan"),
])
def test_bad_flag_as_a_real_subprocess(cli, flag, value, tmp_path):
    r = subprocess.run([sys.executable, f"{cli}.py", *_argv(cli, flag, value, tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and flag.lstrip("-") in lines[0]


def test_every_numeric_flag_declares_a_range():
    import edit  # noqa: F401 (edit.py's parser lives in editing/config.py)
    import metrics
    import render
    import train
    from editing.config import build_parser
    for parser in (train.build_parser()[0], render.build_parser()[0], metrics.build_parser(),
                   build_parser()):
        assert unbounded_numeric_flags(parser) == []


def test_good_edge_values_pass():
    import train
    parser, _ = train.build_parser()
    args = parser.parse_args(["--seed", str(2 ** 32 - 1), "--sh_degree", "0", "-r", "-1",
                              "--lambda_dssim", "1", "--llffhold", "1", "--phase1_start", "-1",
                              "--hole_opacity", "0.99", "--test_iterations", "-1"])
    assert (args.seed, args.sh_degree, args.resolution, args.lambda_dssim) == (
        2 ** 32 - 1, 0, -1, 1.0)


def test_saved_cfg_args_get_the_same_ranges(tmp_path):
    """render.py reads the training run's cfg_args: a hand-edited value is named with it."""
    import render
    (tmp_path / "cfg_args").write_text("Namespace(sh_degree=99, model_path='x', source_path='')")
    with pytest.raises(SystemExit) as e:
        render.main(["-m", str(tmp_path)])
    assert e.value.code == 2


def test_edit_yaml_values_get_the_same_ranges(tmp_path):
    from editing.config import resolve_config
    from utils.errors import UserError
    f = tmp_path / "c.yaml"
    for text, needle in (("seed: .inf\n", "'seed' must be an integer"),
                         ("seed: 1180591620717411303424\n", "'seed' must be an integer in"),
                         ("guidance_scale: .nan\n", "'guidance_scale' must be a number"),
                         ("rounds: 2.5\n", "'rounds' must be an integer")):
        f.write_text("instruction: x\n" + text)
        with pytest.raises(UserError, match=needle):
            resolve_config(["-m", "m", "--config", str(f)])
    f.write_text("instruction: x\nrounds: 2.0\n")
    assert resolve_config(["-m", "m", "--config", str(f)]).rounds == 2
