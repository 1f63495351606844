"""Background completion's loss pressure: the coverage term and the random-background window."""
import csv
import os
from argparse import Namespace
from types import SimpleNamespace

import pytest
import torch

from utils.general_utils import inverse_sigmoid
from semantic.completion import COVERED_ALPHA, CoverageTerm, attach_completion
from tests.demo_scenes import TRAIN_FLAGS

pytestmark = pytest.mark.unit


def test_coverage_term_raises_only_pixels_that_show_next_to_no_surface():
    alpha = torch.tensor([[[0.0, 0.3, COVERED_ALPHA + 0.05, 0.9]]], requires_grad=True)
    term = CoverageTerm(0.1, start=100)
    opaque_photo = SimpleNamespace(alpha_mask=None)
    assert term(None, {"alpha": alpha}, opaque_photo, 100) is None   # not before phase 2
    value = term(None, {"alpha": alpha}, opaque_photo, 101)
    assert float(value.detach()) == pytest.approx(0.1 * (COVERED_ALPHA + COVERED_ALPHA - 0.3) / 4)
    value.backward()
    assert (alpha.grad[0, 0, :2] < 0).all() and (alpha.grad[0, 0, 2:] == 0).all()
    # Where a photo's alpha mask says empty, nothing is asked for.
    masked = SimpleNamespace(alpha_mask=torch.tensor([[[0.0, 1.0, 0.0, 0.0]]]))
    value = term(None, {"alpha": alpha.detach()}, masked, 101)
    assert float(value) == pytest.approx(0.1 * (COVERED_ALPHA - 0.3) / 4)


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
    CoverageTerm(1.0, start=0)(t, pkg, cam, 1).backward()
    grad = g._opacity.grad
    assert (grad < 0).any() and not (grad > 0).any()
    g.optimizer.zero_grad(set_to_none=True)

    calls = []
    t.loss_terms.append(lambda tr, p, c, it: calls.append(it) or torch.tensor(3.0))
    t.loss_terms.append(lambda tr, p, c, it: None)   # off at this iteration
    t.train()
    rows = list(csv.DictReader(open(os.path.join(m, "training_log.csv"))))
    assert calls == list(range(1, 7)) and all(float(r["loss"]) >= 3.0 for r in rows)


def completion_args(background="fixed", alpha=0.0):
    return SimpleNamespace(completion_background=background, completion_alpha=alpha)


def fresh_trainer():
    return SimpleNamespace(random_background_at=lambda it: False, loss_terms=[])


def test_attach_completion_windows():
    window = (2400, 4200)   # phase 2's (start, end]
    t = fresh_trainer()
    attach_completion(t, completion_args(), window)
    assert not t.random_background_at(5000) and t.loss_terms == []   # the defaults
    t = fresh_trainer()
    attach_completion(t, completion_args("random"), window)
    assert t.random_background_at(2401) and t.random_background_at(6000)
    assert not t.random_background_at(2400)
    t = fresh_trainer()
    attach_completion(t, completion_args("phase2", alpha=0.1), window)
    assert [t.random_background_at(i) for i in (2400, 2401, 4200, 4201)] == [
        False, True, True, False]
    (term,) = t.loss_terms
    assert isinstance(term, CoverageTerm) and (term.weight, term.start) == (0.1, 2400)
    t = fresh_trainer()
    attach_completion(t, completion_args("random", alpha=0.1), None)   # no phase 2
    assert not t.random_background_at(5000) and t.loss_terms == []
