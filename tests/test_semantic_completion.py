"""Background completion's loss pressure: the coverage term and the random-background window."""
import csv
import math
import os
from argparse import Namespace
from types import SimpleNamespace

import pytest
import torch

from utils.general_utils import inverse_sigmoid
from scene.plugins import Step, TrainingPlugin
from semantic.completion import COVERED_ALPHA, CompletionPlugin, completion_plugin
from tests.demo_scenes import TRAIN_FLAGS

pytestmark = pytest.mark.unit


def coverage(plugin, alpha, camera, iteration):
    return plugin.loss_terms(Step(None, iteration, camera, {"alpha": alpha})).get(
        "completion_alpha")


def test_coverage_term_raises_only_pixels_that_show_next_to_no_surface():
    alpha = torch.tensor([[[0.0, 0.3, COVERED_ALPHA + 0.05, 0.9]]], requires_grad=True)
    term = CompletionPlugin(0.1, start=100, random_until=-math.inf)
    opaque_photo = SimpleNamespace(alpha_mask=None)
    assert coverage(term, alpha, opaque_photo, 100) is None   # not before phase 2
    value = coverage(term, alpha, opaque_photo, 101)
    assert float(value.detach()) == pytest.approx(0.1 * (COVERED_ALPHA + COVERED_ALPHA - 0.3) / 4)
    value.backward()
    assert (alpha.grad[0, 0, :2] < 0).all() and (alpha.grad[0, 0, 2:] == 0).all()
    # Where a photo's alpha mask says empty, nothing is asked for.
    masked = SimpleNamespace(alpha_mask=torch.tensor([[[0.0, 1.0, 0.0, 0.0]]]))
    value = coverage(term, alpha.detach(), masked, 101)
    assert float(value) == pytest.approx(0.1 * (COVERED_ALPHA - 0.3) / 4)


class ExtraTerm(TrainingPlugin):
    """A plugin adding a constant term, and one that adds nothing."""
    TERMS = ("three",)

    def __init__(self):
        self.calls = []

    def loss_terms(self, step):
        self.calls.append(step.iteration)
        return {"three": torch.tensor(3.0)}


def test_the_trainer_adds_loss_terms_and_the_term_reaches_opacity(demo_scene, tmp_path):
    import train
    from gaussian_renderer import render
    from scene.trainer import Trainer, TrainConfig
    parser, (lp, op, pp, dp, _) = train.build_parser()
    m = str(tmp_path / "m")
    args = parser.parse_args(["-s", demo_scene, "-m", m, "--iterations", "6", *TRAIN_FLAGS])
    os.makedirs(m)
    open(os.path.join(m, "cfg_args"), "w").write(str(Namespace(**vars(args))))
    t = Trainer(lp.extract(args), op.extract(args), pp.extract(args), dp.extract(args),
                TrainConfig(quiet=True))
    # Through the renderer's alpha, the term asks every Gaussian of a faint model for more
    # opacity, and none for less.
    g, cam = t.gaussians, t.scene.getTrainCameras()[0]
    with torch.no_grad():
        g._opacity[:] = inverse_sigmoid(torch.tensor(0.02))
    pkg = render(cam, g, t.pipe, t.background)
    coverage(CompletionPlugin(1.0, 0, -math.inf), pkg["alpha"], cam, 1).backward()
    grad = g._opacity.grad
    assert (grad < 0).any() and not (grad > 0).any()
    g.optimizer.zero_grad(set_to_none=True)

    extra = t.add_plugin(ExtraTerm())
    t.add_plugin(TrainingPlugin())   # adds nothing
    t.train()
    rows = list(csv.DictReader(open(os.path.join(m, "training_log.csv"))))
    assert extra.calls == list(range(1, 7)) and len(rows) == 6
    for r in rows:   # every term is logged, and the loss is their sum
        assert float(r["term_three"]) == 3.0
        total = float(r["term_l1"]) + float(r["term_dssim"]) + 3.0
        assert float(r["loss"]) == pytest.approx(total, abs=2e-6)


def completion_args(background="fixed", alpha=0.0):
    return SimpleNamespace(completion_background=background, completion_alpha=alpha)


def test_completion_plugin_windows():
    window = (2400, 4200)   # phase 2's (start, end]
    assert completion_plugin(completion_args(), window) is None   # the defaults: off
    p = completion_plugin(completion_args("random"), window)
    assert p.random_background(2401) and p.random_background(6000)
    assert not p.random_background(2400)
    assert coverage(p, torch.zeros(1, 2, 2), SimpleNamespace(alpha_mask=None), 3000) is None
    p = completion_plugin(completion_args("phase2", alpha=0.1), window)
    assert [p.random_background(i) for i in (2400, 2401, 4200, 4201)] == [
        False, True, True, False]
    assert (p.weight, p.start) == (0.1, 2400)
    p = completion_plugin(completion_args("fixed", alpha=0.1), window)
    assert not any(p.random_background(i) for i in (2401, 5000))
    assert completion_plugin(completion_args("random", alpha=0.1), None) is None  # no phase 2
