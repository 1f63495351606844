"""--optimizer_type sparse_adam: only visible Gaussians step; state survives row surgery and
checkpoints exactly."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from scene import gaussian_ops as ops
from scene.sparse_adam import SparseGaussianAdam, make_optimizer
from tests.demo_scenes import TRAIN_FLAGS, saved_params, train_inprocess

pytestmark = pytest.mark.unit


def _setup(n=7, seed=0):
    torch.manual_seed(seed)
    params = {"xyz": nn.Parameter(torch.randn(n, 3)), "f_rest": nn.Parameter(torch.randn(n, 15, 3))}
    groups = [{"params": [p], "lr": 0.01 * (i + 1), "name": k}
              for i, (k, p) in enumerate(params.items())]
    return params, SparseGaussianAdam(groups, lr=0.0, eps=1e-15)


def _backward(params, seed):
    g = torch.Generator().manual_seed(seed)
    for p in params.values():
        p.grad = torch.randn(p.shape, generator=g)


@pytest.mark.parametrize("visible", [
    [True, False, True, True, False, False, True],    # mostly visible: update all, restore
    [False, False, True, False, False, True, False],  # mostly hidden: gather, scatter
])
def test_invisible_rows_and_moments_untouched_visible_rows_follow_the_formula(visible):
    params, opt = _setup()
    visible = torch.tensor(visible)
    # First a full step so that every row has non-zero moments.
    _backward(params, 1)
    opt.step(torch.ones(7, dtype=torch.bool))
    before = {k: (p.detach().clone(), opt.state[p]["exp_avg"].clone(),
                  opt.state[p]["exp_avg_sq"].clone()) for k, p in params.items()}
    _backward(params, 2)
    grads = {k: p.grad.clone() for k, p in params.items()}
    opt.step(visible)
    for i, (k, p) in enumerate(params.items()):
        x0, m0, v0 = (t.double() for t in before[k])
        g = grads[k].double()
        m = 0.9 * m0 + 0.1 * g
        v = 0.999 * v0 + 0.001 * g * g
        x = x0 - 0.01 * (i + 1) * m / (v.sqrt() + 1e-15)
        st = opt.state[p]
        for got, want, old in ((p.detach(), x, x0), (st["exp_avg"], m, m0),
                               (st["exp_avg_sq"], v, v0)):
            assert torch.equal(got[~visible], old[~visible].float())  # bit-identical
            assert torch.allclose(got[visible].double(), want[visible], rtol=1e-5, atol=1e-7)
        assert float(st["step"]) == 2


def test_all_visible_matches_dense_update_and_no_grad_group_is_skipped():
    params, opt = _setup()
    ref, ref_opt = _setup()
    _backward(params, 3)
    _backward(ref, 3)
    opt.step(torch.ones(7, dtype=torch.bool))
    ref_opt.step(None)
    for k in params:
        assert torch.equal(params[k], ref[k])
    # A tensor just replaced by densification has no gradient: it is not stepped.
    params["xyz"].grad = None
    x = params["xyz"].detach().clone()
    params["f_rest"].grad = torch.ones_like(params["f_rest"])
    opt.step(torch.zeros(7, dtype=torch.bool))
    assert torch.equal(params["xyz"], x)


def test_wrong_mask_length_is_an_error():
    params, opt = _setup()
    _backward(params, 4)
    with pytest.raises(ValueError, match="visibility mask"):
        opt.step(torch.ones(5, dtype=torch.bool))


def test_row_surgery_keeps_sparse_moments_aligned():
    params, opt = _setup()
    _backward(params, 5)
    opt.step(torch.ones(7, dtype=torch.bool))
    m_before = opt.state[params["xyz"]]["exp_avg"].clone()
    ops.remove(params, opt, torch.tensor([False, True, False, False, False, False, False]))
    ops.duplicate(params, opt, torch.tensor([True, False, False, False, False, False]))
    st = opt.state[params["xyz"]]
    assert st["exp_avg"].shape[0] == 7
    assert torch.equal(st["exp_avg"][:6], m_before[[0, 2, 3, 4, 5, 6]])
    assert torch.equal(st["exp_avg"][6], torch.zeros(3))  # copies start with zero moments
    _backward(params, 6)
    opt.step(torch.ones(7, dtype=torch.bool))  # still steps after surgery


def test_make_optimizer_types():
    p = nn.Parameter(torch.zeros(2, 3))
    assert type(make_optimizer("default", [{"params": [p]}])) is torch.optim.Adam
    assert isinstance(make_optimizer("sparse_adam", [{"params": [p]}]), SparseGaussianAdam)


def test_sparse_adam_resume_is_bit_identical(demo_scene, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    common = ["-s", demo_scene, "--iterations", "40", "--test_iterations", "99",
              "--save_iterations", "40", "--optimizer_type", "sparse_adam", *TRAIN_FLAGS]
    train_inprocess(["-m", a, "--checkpoint_iterations", "15", *common])
    ckpt = os.path.join(a, "chkpnt15.pth")
    saved = torch.load(ckpt, weights_only=True)["model"]["optimizer"]["state"]
    assert saved and all("exp_avg" in s for s in saved.values())
    train_inprocess(["-m", b, "--start_checkpoint", ckpt, *common])
    pa, pb = saved_params(a, 40), saved_params(b, 40)
    for k in ("xyz", "features_dc", "features_rest", "opacity", "scaling", "rotation"):
        assert np.array_equal(pa[k], pb[k]), k
