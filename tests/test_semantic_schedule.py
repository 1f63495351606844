"""Phase schedule arithmetic: windows, intervals, protection, defaults scaled to the run."""
from argparse import Namespace

import pytest

from arguments import CliParser, SemanticParams, check_semantic_args
from semantic.schedule import PhaseSchedule, phase_caps, phase_defaults
from utils.errors import UserError

pytestmark = pytest.mark.unit


def semantic_args(argv=(), iterations=20_000):
    parser = CliParser()  # range errors are UserErrors, as in the CLIs
    SemanticParams(parser)
    args = parser.parse_args(list(argv))
    args.iterations = iterations
    return args


def resolve_phase_defaults(args):
    """What arguments/resolve.py does with phase_defaults (on its copy of the flags)."""
    vars(args).update(phase_defaults(args))
    return args


def test_published_schedule_at_20k():
    args = semantic_args()
    resolve_phase_defaults(args)
    s = PhaseSchedule.from_args(args)
    assert [(p.start, p.end, p.interval) for p in s.phases] == [
        (0, 8000, 1000), (8000, 14000, 1000), (14000, 17000, 1000)]
    assert [i for i in range(1, 20_001) if s.analysis_at(i)] == list(range(1000, 17_001, 1000))
    assert s.analysis_at(8000).name == "phase1" and s.analysis_at(9000).name == "phase2"
    assert s.last_analysis == 17_000 and s.refine_start == 18_000
    assert s.phase_at(1) == "phase1" and s.phase_at(8000) == "phase1"
    assert s.phase_at(8001) == "phase2" and s.phase_at(17_000) == "phase3"
    assert s.phase_at(17_001) == "refine" and s.phase_at(20_000) == "refine"


def test_defaults_scale_with_the_run_and_total_iterations():
    args = semantic_args(iterations=6000)
    resolve_phase_defaults(args)
    assert (args.phase1_end, args.phase2_end, args.phase3_end) == (2400, 4200, 5100)
    assert args.phase1_interval == 300 and args.prune_protection == 300
    assert args.total_iterations == 6000
    args = semantic_args(["--total_iterations", "20000", "--phase2_interval", "500"],
                         iterations=6000)
    resolve_phase_defaults(args)
    assert args.phase1_end == 8000 and args.phase2_interval == 500  # given flags win
    s = PhaseSchedule.from_args(args)
    assert s.total == 20000


def test_explicit_windows_and_gaps():
    args = semantic_args(["--phase1_start", "100", "--phase1_end", "400", "--phase1_interval",
                          "150", "--phase2_start", "600", "--phase2_end", "700",
                          "--phase2_interval", "100", "--phase3_start", "700", "--phase3_end",
                          "700", "--prune_protection", "50"], iterations=1000)
    resolve_phase_defaults(args)
    s = PhaseSchedule.from_args(args)
    assert [p.name for p in s.phases] == ["phase1", "phase2"]  # an empty phase 3 is dropped
    assert [i for i in range(1, 1001) if s.analysis_at(i)] == [250, 400, 700]
    assert s.phase_at(50) == "" and s.phase_at(500) == "" and s.phase_at(650) == "phase2"
    assert s.refine_start == 750 and s.completion_window == (600, 700)
    args.phase2_end = 600   # no phase 2: no background completion
    assert PhaseSchedule.from_args(args).completion_window is None


def test_analyses_past_the_run_are_dropped():
    args = semantic_args(["--total_iterations", "20000"], iterations=5000)
    resolve_phase_defaults(args)
    s = PhaseSchedule.from_args(args)
    assert s.total == 20000
    s2 = PhaseSchedule(s.phases, 100, 5000)
    assert max(i for i in range(1, 20_001) if s2.analysis_at(i)) == 5000


def test_analyses_wait_for_the_model_to_recover_from_an_opacity_reset():
    args = semantic_args(iterations=6000)
    resolve_phase_defaults(args)
    resets = [3000]  # FastGS's reset with --iterations 6000 --densify_until_iter 4500
    s = PhaseSchedule.from_args(args, resets)
    its = [i for i in range(1, 6001) if s.analysis_at(i)]
    assert 3000 not in its and 3150 in its and s.analysis_at(3150).name == "phase2"
    assert its == [300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3150, 3300, 3600,
                   3900, 4200, 4500, 4800, 5100]
    assert s.analyses_of(s.phases[1]) == [2700, 3150, 3300, 3600, 3900, 4200]
    # A reset inside the window of an analysis moves it; one that would then collide with the
    # next analysis of its phase is merged into it, never duplicated.
    s = PhaseSchedule.from_args(args, [2950, 3100])
    assert s.analyses_of(s.phases[1]) == [2700, 3250, 3300, 3600, 3900, 4200]
    # The published schedule's phase-2 analyses at 9k and 12k fall on 3DGS's resets.
    args = semantic_args()
    resolve_phase_defaults(args)
    s = PhaseSchedule.from_args(args, [3000, 6000, 9000, 12000])
    assert s.analyses_of(s.phases[1]) == [9500, 10000, 11000, 12500, 13000, 14000]
    assert s.analyses_of(s.phases[0])[2:6] == [3500, 4000, 5000, 6500]


def test_strategies_report_their_opacity_resets():
    from scene.strategies import STRATEGIES
    for cls in STRATEGIES.values():
        st = cls(total_iterations=6000, densify_until_iter=4500, opacity_reset_interval=3000)
        assert st.opacity_reset_iterations() == [3000]
        st = cls(total_iterations=3200, densify_until_iter=15000, opacity_reset_interval=1000)
        assert st.opacity_reset_iterations() == [1000, 2000]  # never in the last 500
        st = cls(total_iterations=0, densify_until_iter=2500, opacity_reset_interval=1000,
                 white_background=True, densify_from_iter=500)
        assert st.opacity_reset_iterations() == [500, 1000, 2000]


def resolve_caps(args, sizes, proposer_caps=None):
    vars(args).update(phase_caps(args, sizes, proposer_caps))
    return args


def test_caps_scale_with_image_area_never_up():
    args = semantic_args(["--phase3_max_points", "7"])
    resolve_caps(args, [(500, 500)] * 3)
    assert (args.phase1_max_points, args.phase2_max_points, args.phase3_max_points) == (
        500, 2000, 7)
    args = semantic_args()
    resolve_caps(args, [(4000, 3000)])
    assert args.phase2_max_points == 8000
    # The mean area of the first CAP_SAMPLE_VIEWS views counts, not the 33rd's.
    args = semantic_args()
    resolve_caps(args, [(500, 500), (1000, 1000)] * 16 + [(4000, 3000)])
    assert args.phase2_max_points == round(8000 * (0.25 + 1.0) / 2)
    # A proposer's own defaults (the error proposer only observes phase 1) yield to the flag.
    from semantic.proposers import ErrorProposer, proposer_default_caps
    assert proposer_default_caps("error") == ErrorProposer.default_caps
    assert proposer_default_caps("qwen") is None and proposer_default_caps("none") is None
    args = semantic_args()
    resolve_caps(args, [(500, 500)], ErrorProposer.default_caps)
    assert (args.phase1_max_points, args.phase2_max_points) == (0, 2000)
    args = semantic_args(["--phase1_max_points", "30"])
    resolve_caps(args, [(500, 500)], ErrorProposer.default_caps)
    assert args.phase1_max_points == 30


def test_resolving_returns_values_and_leaves_the_flags_alone():
    args = semantic_args(iterations=6000)
    before = dict(vars(args))
    assert phase_defaults(args)["phase1_end"] == 2400 and phase_caps(args, [(500, 500)])
    assert vars(args) == before
    given = semantic_args(["--phase1_end", "10", "--phase1_max_points", "3",
                           "--prune_protection", "0"], iterations=6000)
    assert "phase1_end" not in phase_defaults(given)
    assert "prune_protection" not in phase_defaults(given)
    assert "phase1_max_points" not in phase_caps(given, [(500, 500)])


@pytest.mark.parametrize("argv, flag", [
    (["--region_proposer", "magic"], "--region_proposer"),
    (["--region_proposer", "qwen"], "--qwen_model_path"),
    (["--phase2_start", "500", "--phase2_end", "100"], "--phase2_end"),
    (["--phase1_interval", "0"], "--phase1_interval"),
    (["--max_box_frac", "0"], "--max_box_frac"),
    (["--semantic_num_samples", "0"], "--semantic_num_samples"),
    (["--phase3_views", "train"], "--phase3_views"),
    (["--vlm_dtype", "int4"], "--vlm_dtype"),
    (["--floater_support", "1.5"], "--floater_support"),
    (["--floater_near", "-0.1"], "--floater_near"),
    (["--spawn_depth", "guess"], "--spawn_depth"),
    (["--textureless_depth", "near"], "--textureless_depth"),
    (["--hole_opacity", "1"], "--hole_opacity"),
    (["--background_holes", "all"], "--background_holes"),
    (["--completion_background", "white"], "--completion_background"),
    (["--completion_alpha", "-1"], "--completion_alpha"),
])
def test_bad_semantic_flags_name_the_flag(argv, flag):
    with pytest.raises(UserError) as e:  # from the flag's declared range or the check
        check_semantic_args(semantic_args(argv))
    assert flag in str(e.value) and "\n" not in str(e.value)


def test_cfg_args_of_a_model_trained_before_a_flag_existed_pass_at_its_default():
    old = Namespace(**{k: v for k, v in vars(semantic_args([])).items()
                       if k != "completion_background"})
    check_semantic_args(old)   # render.py checks a model's saved flags ...
    assert not hasattr(old, "completion_background")   # ... without changing them
    old.spawn_depth = "guess"   # a saved bad value is still refused
    with pytest.raises(UserError, match="--spawn_depth"):
        check_semantic_args(old)
