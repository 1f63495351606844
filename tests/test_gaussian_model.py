"""GaussianModel and gaussian_ops: optimizer state stays aligned through every densification
primitive, checkpoints restore exactly, and the small numeric helpers behave."""
import io
import random
import types

import numpy as np
import pytest
import torch

from scene import gaussian_ops as ops
from scene.gaussian_model import PARAM_ATTRS, GaussianModel
from utils.general_utils import (build_rotation, get_expon_lr_func, get_rng_state,
                                 inverse_sigmoid, set_rng_state, set_seed, strip_symmetric)
from utils.sh_utils import SH2RGB
from tests.tiny import OPT

pytestmark = pytest.mark.unit


def _model(n=40, degree=2, seed=0):
    rng = np.random.default_rng(seed)
    pcd = types.SimpleNamespace(points=rng.normal(size=(n, 3)), colors=rng.uniform(size=(n, 3)))
    g = GaussianModel(degree)
    g.create_from_pcd(pcd, spatial_lr_scale=2.0)
    g.training_setup(OPT)
    return g


def _step(g, seed=0):
    """One Adam step of a loss with a different gradient for every row."""
    gen = torch.Generator().manual_seed(seed)
    loss = 0.0
    for p in g._params().values():
        loss = loss + (p * torch.randn(p.shape, generator=gen)).sum()
    loss = loss + g.get_opacity.sum() + g.get_scaling.sum()
    g.optimizer.zero_grad()
    loss.backward()
    g.optimizer.step()


def _moments(g):
    return {name: g.optimizer.state[p]["exp_avg"].clone() for name, p in g._params().items()}


def _check_aligned(g):
    for group in g.optimizer.param_groups:
        p = group["params"][0]
        assert p is getattr(g, PARAM_ATTRS[group["name"]])
        st = g.optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                assert st[key].shape == p.shape
        if "step" in st:
            assert torch.is_tensor(st["step"]) or isinstance(st["step"], (int, float))


# ------------------------------------------------------------------ helpers


def test_build_rotation_and_covariance():
    q = torch.randn(16, 4)
    R = build_rotation(q * 3.0)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(16, 3, 3),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(16), atol=1e-5, rtol=0)
    m = torch.arange(9.0).reshape(1, 3, 3)
    assert strip_symmetric(m).tolist() == [[0, 1, 2, 4, 5, 8]]
    g = _model(5)
    cov = g.get_covariance()
    s = g.get_scaling
    torch.testing.assert_close(cov[:, 0], s[:, 0] ** 2)  # identity rotation -> diagonal
    assert cov[:, 1].abs().max() == 0


def test_expon_lr():
    f = get_expon_lr_func(1e-2, 1e-4, max_steps=100)
    assert f(0) == pytest.approx(1e-2) and f(100) == pytest.approx(1e-4)
    assert f(50) == pytest.approx(1e-3) and f(1000) == pytest.approx(1e-4)
    d = get_expon_lr_func(1e-2, 1e-4, lr_delay_steps=10, lr_delay_mult=0.1, max_steps=100)
    assert d(0) == pytest.approx(1e-3) and d(10) == pytest.approx(f(10))
    assert get_expon_lr_func(0.0, 0.0)(5) == 0.0


def test_rng_state_round_trip_weights_only():
    set_seed(123)
    state = get_rng_state()
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    first = (random.random(), np.random.rand(), torch.rand(3), np.random.randn())
    set_rng_state(loaded)
    second = (random.random(), np.random.rand(), torch.rand(3), np.random.randn())
    assert first[0] == second[0] and first[1] == second[1] and first[3] == second[3]
    assert torch.equal(first[2], second[2])


# ------------------------------------------------------------------ initialisation


def test_create_from_pcd():
    g = _model(30, degree=3)
    assert g.num_points == 30 and g.get_features.shape == (30, 16, 3)
    assert g.get_features_rest.abs().max() == 0
    torch.testing.assert_close(g.get_opacity, torch.full((30, 1), 0.1))
    torch.testing.assert_close(g.get_rotation, torch.tensor([[1.0, 0, 0, 0]]).expand(30, 4))
    assert (g._scaling[:, 0] == g._scaling[:, 2]).all() and torch.isfinite(g._scaling).all()
    assert g.optimizer.param_groups[0]["lr"] == pytest.approx(1.6e-4 * 2.0)
    lrs = {gr["name"]: gr["lr"] for gr in g.optimizer.param_groups}
    assert lrs["f_rest"] == pytest.approx(0.0025 / 20)
    # as the reference: no delay steps, so delay_mult has no effect
    assert g.update_learning_rate(0) == pytest.approx(1.6e-4 * 2.0)
    assert g.update_learning_rate(30000) == pytest.approx(1.6e-6 * 2.0)


def test_feature_lr_overrides():
    g = _model(4)
    opt = types.SimpleNamespace(**vars(OPT), lowfeature_lr=0.01, highfeature_lr=0.001)
    g.training_setup(opt)
    lrs = {gr["name"]: gr["lr"] for gr in g.optimizer.param_groups}
    assert lrs["f_dc"] == 0.01 and lrs["f_rest"] == 0.001


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_point_clouds(n):
    g = _model(n)
    assert g.num_points == n and torch.isfinite(g._scaling).all()
    _step(g)
    g.clone(torch.ones(n, dtype=torch.bool))
    g.split(torch.ones(g.num_points, dtype=torch.bool))
    g.spawn(torch.zeros(1, 3), torch.full((1, 3), 0.5))
    assert g.num_points == (5 if n else 1)  # 1 -> clone 2 -> split 4 -> spawn 5
    _step(g)
    g.prune(torch.ones(g.num_points, dtype=torch.bool))
    assert g.num_points == 0
    _step(g)
    g.reset_opacity()
    _check_aligned(g)


def test_one_up_sh():
    g = GaussianModel(1)
    g.oneupSHdegree()
    g.oneupSHdegree()
    assert g.active_sh_degree == 1


# ------------------------------------------------------------------ ops keep state aligned


def test_prune_clone_move_moments_with_rows():
    g = _model(20)
    _step(g)
    before = _moments(g)
    ids = torch.arange(20.0)
    g.set_table("id", ids.clone())
    g.set_table("grad2d", torch.rand(20, 2))
    state = g.tables
    for not_per_gaussian in (torch.tensor(7), torch.zeros(3)):  # side tables are row-aligned
        with pytest.raises(ValueError, match="rows"):
            g.set_table("count", not_per_gaussian)

    mask = torch.zeros(20, dtype=torch.bool)
    mask[[1, 5, 6]] = True
    assert g.prune(mask) == 3
    kept = (~mask).nonzero()[:, 0]
    assert state["id"].tolist() == kept.float().tolist()
    for name, m in _moments(g).items():
        torch.testing.assert_close(m, before[name][kept], rtol=0, atol=0)

    sel = torch.zeros(17, dtype=torch.bool)
    sel[[0, 10]] = True
    assert g.clone(sel) == 2
    assert g.num_points == 19 and state["grad2d"].shape == (19, 2)
    assert state["id"][-2:].tolist() == state["id"][[0, 10]].tolist()  # copied state
    for name, p in g._params().items():
        torch.testing.assert_close(p.detach()[-2:], p.detach()[[0, 10]], rtol=0, atol=0)
        m = g.optimizer.state[p]["exp_avg"]
        assert m[-2:].abs().max() == 0
        torch.testing.assert_close(m[:17], before[name][kept], rtol=0, atol=0)
    _check_aligned(g)
    _step(g, seed=1)
    assert all(torch.isfinite(p).all() for p in g._params().values())


def test_split_samples_near_parent_and_state():
    torch.manual_seed(0)
    g = _model(10)
    with torch.no_grad():
        g._scaling[:] = torch.log(torch.tensor([0.1, 0.02, 0.3]))
        g._rotation[:] = torch.tensor([0.9, 0.1, -0.3, 0.2])
    g.training_setup(OPT)
    _step(g)
    before = _moments(g)
    parents_xyz = g.get_xyz.detach().clone()
    parent_rot = g._rotation.detach().clone()
    parent_scale = g.get_scaling.detach().clone()
    state = g.tables
    g.set_table("id", torch.arange(10.0))
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[2, 7]] = True
    assert g.split(mask, n=3) == 4
    assert g.num_points == 14
    # survivors first (moments kept), then 3 children of 2 and of 7 (moments zero)
    assert state["id"].tolist() == [0, 1, 3, 4, 5, 6, 8, 9] + [2, 7] * 3
    for name, p in g._params().items():
        m = g.optimizer.state[p]["exp_avg"]
        torch.testing.assert_close(m[:8], before[name][~mask], rtol=0, atol=0)
        assert m[8:].abs().max() == 0
    children = g.get_xyz.detach()[8:]
    parent_of = torch.tensor([2, 7] * 3)
    R = build_rotation(parent_rot[parent_of])
    local = (R.transpose(1, 2) @ (children - parents_xyz[parent_of])[..., None])[..., 0]
    # within 5 sigma along each of the parent's own axes
    assert (local.abs() < 5 * parent_scale[parent_of]).all()
    torch.testing.assert_close(g.get_scaling[8:], parent_scale[parent_of] / (0.8 * 3))
    torch.testing.assert_close(g._rotation.detach()[8:], parent_rot[parent_of])
    _check_aligned(g)
    _step(g, seed=2)


def test_split_is_reproducible_with_seed():
    outs = []
    for _ in range(2):
        g = _model(8)
        torch.manual_seed(5)
        g.split(torch.ones(8, dtype=torch.bool))
        outs.append(g.get_xyz.detach().clone())
    assert torch.equal(outs[0], outs[1])


def test_spawn_and_append():
    g = _model(10)
    _step(g)
    state = g.tables
    g.set_table("grad", torch.ones(10))
    xyz = torch.tensor([[0.0, 0, 0], [0.1, 0, 0]])
    rgb = torch.tensor([[1.0, 0, 0], [0.0, 0.5, 1.0]])
    assert g.spawn(xyz, rgb) == 2
    assert state["grad"].tolist() == [1.0] * 10 + [0.0, 0.0]
    torch.testing.assert_close(SH2RGB(g.get_features_dc[-2:, 0]), rgb)
    torch.testing.assert_close(g.get_opacity[-2:], torch.full((2, 1), 0.1))
    assert torch.isfinite(g._scaling).all()
    assert g.spawn(torch.ones(1, 3), torch.ones(1, 3), scales=torch.tensor([0.05]),
                   opacity=0.5) == 1
    torch.testing.assert_close(g.get_scaling[-1], torch.full((3,), 0.05))
    torch.testing.assert_close(g.get_opacity[-1], torch.tensor([0.5]))
    vals = {k: v[:2].detach() for k, v in g._params().items()}
    assert g.append_gaussians(vals) == 2
    assert g.num_points == 15 and state["grad"].tolist() == [1.0] * 10 + [0.0] * 5
    with pytest.raises(ValueError):
        g.append_gaussians({"xyz": torch.zeros(1, 3)})
    _check_aligned(g)
    _step(g)


def test_reset_opacity():
    g = _model(6)
    with torch.no_grad():
        g._opacity[:3] = inverse_sigmoid(torch.tensor(0.001))
    g.training_setup(OPT)
    _step(g)
    before = g.get_opacity.detach().clone()
    g.reset_opacity(0.01)
    torch.testing.assert_close(g.get_opacity, torch.clamp(before, max=0.01))
    st = g.optimizer.state[g._opacity]
    assert st["exp_avg"].abs().max() == 0 and st["exp_avg_sq"].abs().max() == 0
    assert g.optimizer.state[g._xyz]["exp_avg"].abs().max() > 0  # others untouched
    _check_aligned(g)
    _step(g)


def test_ops_without_optimizer_state():
    params = {"a": torch.nn.Parameter(torch.rand(5, 2)), "b": torch.nn.Parameter(torch.rand(5))}
    opt = torch.optim.Adam([{"params": [params["a"]], "name": "a"},
                            {"params": [params["b"]], "name": "b"}], lr=0.1)
    ops.duplicate(params, opt, torch.tensor([True, False, False, False, True]))
    ops.remove(params, opt, torch.tensor([False, True] + [False] * 5))
    ops.reset_rows(params, opt, "b", torch.tensor(0.0), mask=torch.tensor([0, 1]))
    assert params["a"].shape == (6, 2) and opt.param_groups[0]["params"][0] is params["a"]
    assert params["b"][:2].tolist() == [0.0, 0.0]
    (params["a"].sum() + params["b"].sum()).backward()
    opt.step()
    assert opt.state[params["a"]]["exp_avg"].shape == (6, 2)


# ------------------------------------------------------------------ IO


def test_capture_restore_bit_identical(tmp_path):
    g = _model(12, degree=1)
    g.oneupSHdegree()
    for i in range(3):
        _step(g, seed=i)
    g.set_table("protect_until", torch.arange(12))
    path = tmp_path / "chkpnt.pth"
    torch.save({"gaussians": g.capture()}, path)
    loaded = torch.load(path, weights_only=True)["gaussians"]
    h = GaussianModel(0)
    h.restore(loaded, OPT)
    assert h.active_sh_degree == 1 and h.max_sh_degree == 1 and h.spatial_lr_scale == 2.0
    assert list(h.tables) == ["protect_until"]
    h.tables["protect_until"] += 1                      # restored tables are the model's own
    assert torch.equal(loaded["tables"]["protect_until"], torch.arange(12))
    for i in range(3, 5):
        _step(g, seed=i)
        _step(h, seed=i)
    for (name, p), q in zip(g._params().items(), h._params().values()):
        assert torch.equal(p, q), name
        assert torch.equal(g.optimizer.state[p]["exp_avg_sq"], h.optimizer.state[q]["exp_avg_sq"])
    _check_aligned(h)


def test_checkpoints_before_side_tables_restore_the_strategy_state():
    from scene.checkpoint import model_capture
    g = _model(4)
    legacy = {"model": {k: v for k, v in g.capture().items() if k != "tables"},
              "strategy": {"grad_accum": torch.ones(4), "denom": torch.full((4,), 2.0)}}
    h = GaussianModel(0)
    h.restore(model_capture(legacy), OPT)
    assert sorted(h.tables) == ["denom", "grad_accum"]
    assert h.tables["denom"].tolist() == [2.0] * 4


def test_save_load_ply(tmp_path):
    g = _model(9, degree=3)
    _step(g)
    path = str(tmp_path / "point_cloud" / "iteration_7" / "point_cloud.ply")
    g.save_ply(path)
    h = GaussianModel(3)
    h.load_ply(path)
    assert h.active_sh_degree == 3
    for p, q in zip(g._params().values(), h._params().values()):
        assert torch.equal(p.detach(), q.detach())
    h.training_setup(OPT)
    _step(h)


def test_load_ply_degree_mismatch(tmp_path):
    from utils.errors import UserError
    g = _model(3, degree=1)
    path = str(tmp_path / "a.ply")
    g.save_ply(path)
    h = GaussianModel(3)
    h.load_ply(path)  # lower degree is zero-padded
    assert h.get_features.shape == (3, 16, 3) and h.get_features_rest[:, 3:].abs().max() == 0
    with pytest.raises(UserError, match="a.ply"):
        GaussianModel(0).load_ply(path)
