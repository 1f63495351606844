"""Backend selection and the CUDA adapter's wiring (no GPU needed: the extension is faked)."""
import types

import pytest
import torch

from gaussian_renderer import (backend_name, cpp_backend, cuda_backend, select_backend,
                               torch_backend)
from utils.errors import UserError

pytestmark = pytest.mark.unit


def test_auto_on_cpu_is_cpp_when_built_else_torch(monkeypatch):
    if cpp_backend.is_available():
        assert select_backend("auto", torch.device("cpu")) is cpp_backend.rasterize
        assert backend_name("auto", torch.device("cpu")) == "cpp"
    monkeypatch.setattr(cpp_backend, "_extension", lambda: None)
    assert select_backend("auto", torch.device("cpu")) is torch_backend.rasterize
    assert backend_name("auto", torch.device("cpu")) == "torch"
    with pytest.raises(UserError, match="--backend cpp"):
        select_backend("cpp", torch.device("cpu"))
    assert select_backend("torch", torch.device("cpu")) is torch_backend.rasterize


def test_cpp_on_cuda_is_one_clear_error():
    with pytest.raises(UserError, match="--backend cpp renders on the CPU"):
        select_backend("cpp", torch.device("cuda"))


def test_forced_cuda_on_cpu_is_one_clear_error():
    with pytest.raises(UserError, match="--backend cuda"):
        select_backend("cuda", torch.device("cpu"))


def test_auto_on_cuda_without_extension_falls_back(monkeypatch):
    monkeypatch.setattr(cuda_backend, "_extension", lambda: None)
    assert select_backend("auto", torch.device("cuda")) is torch_backend.rasterize
    with pytest.raises(UserError, match="not installed"):
        select_backend("cuda", torch.device("cuda"))


def test_cuda_adapter_maps_settings_and_outputs(monkeypatch):
    seen = {}

    class FakeRasterizer:
        def __init__(self, settings):
            seen["settings"] = settings

        def __call__(self, means3D, means2D, opacities, **kw):
            seen["kw"] = kw
            n = means3D.shape[0]
            return (torch.ones(3, 2, 2), torch.full((n,), 3, dtype=torch.int32),
                    torch.full((1, 2, 2), 5.0), torch.full((1, 2, 2), 0.5),
                    torch.arange(n, dtype=torch.int32), torch.full((1, 2, 2), 0.25))

    fake = types.SimpleNamespace(GaussianRasterizationSettings=lambda **kw: kw,
                                 GaussianRasterizer=FakeRasterizer)
    monkeypatch.setattr(cuda_backend, "_extension", lambda: fake)
    assert select_backend("auto", torch.device("cuda")) is cuda_backend.rasterize

    from gaussian_renderer.settings import RasterSettings
    s = RasterSettings(image_height=2, image_width=2, tanfovx=0.5, tanfovy=0.5,
                       bg=torch.zeros(3), scale_modifier=1.0, viewmatrix=torch.eye(4),
                       projmatrix=torch.eye(4), sh_degree=0, campos=torch.zeros(3), mult=0.5,
                       antialiasing=True)
    metric = torch.ones(2, 2)
    out = cuda_backend.rasterize(s, torch.zeros(4, 3), torch.zeros(4, 4), torch.ones(4, 1),
                                 shs=torch.zeros(4, 1, 3), scales=torch.ones(4, 3),
                                 rotations=torch.zeros(4, 4), metric_map=metric)
    assert seen["settings"]["mult"] == 0.5 and seen["settings"]["image_width"] == 2
    assert seen["settings"]["antialiasing"] is True
    assert seen["kw"]["metric_map"] is metric and seen["kw"]["colors_precomp"] is None
    assert float(out.depth.mean()) == 5.0 and float(out.alpha.mean()) == 0.5
    assert float(out.invdepth.mean()) == 0.25
    assert out.radii.tolist() == [3, 3, 3, 3]
    assert out.accum_metric_counts.tolist() == [0, 1, 2, 3]
