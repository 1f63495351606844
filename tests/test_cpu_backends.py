"""The CPU backends (pure PyTorch, and C++ with the CUDA extension's per-Gaussian code) against
the float64 brute-force reference: image, depth, alpha, radii, metric counts and every
gradient, including the 4-channel viewspace statistics."""
import pytest
import torch

from gaussian_renderer import cpp_backend, torch_backend
from gaussian_renderer.reference import reference_rasterize
from bench.raster_cases import look_at_settings, random_gaussians, rasterizer_inputs


@pytest.fixture(params=["torch", "cpp"])
def backend(request):
    if request.param == "cpp" and not cpp_backend.is_available():
        pytest.skip("the C++ rasterizer could not be built here (C++ compiler and ninja needed)")
    return {"torch": torch_backend, "cpp": cpp_backend}[request.param].rasterize


def _rel(a, b):
    return float((a - b).norm() / max(float(b.norm()), 1e-8))


def _run_both(rasterize, s, g, metric_map=None, precomp_colors=False, precomp_cov=False):
    """Returns outputs and gradients of both implementations for a random linear loss."""
    H, W = s.image_height, s.image_width
    gen = torch.Generator().manual_seed(7)
    wc, wd, wa = (torch.randn(3, H, W, generator=gen), torch.randn(1, H, W, generator=gen),
                  torch.randn(1, H, W, generator=gen))
    wi = torch.randn(1, H, W, generator=gen)
    N = g["means3D"].shape[0]
    kw = rasterizer_inputs(g, gen, precomp_colors, precomp_cov)
    res = {}
    for name in ("torch", "ref"):
        leaves = {k: v.detach().clone().double().requires_grad_(True) if name == "ref" else
                  v.detach().clone().requires_grad_(True)
                  for k, v in dict(means3D=g["means3D"], opacities=g["opacities"], **kw).items()}
        if name == "torch":
            vs = torch.zeros(N, 4, requires_grad=True)
            out = rasterize(s, means2D=vs, metric_map=metric_map, **leaves)
            color, depth, alpha, radii, counts, invdepth = out
        else:
            r = reference_rasterize(s, metric_map=metric_map, **leaves)
            color, depth, alpha, radii, counts, invdepth = (
                r["color"], r["depth"], r["alpha"], r["radii"], r["counts"], r["invdepth"])
        loss = ((color * wc.to(color.dtype)).sum() + (depth * wd.to(color.dtype)).sum()
                + (alpha * wa.to(color.dtype)).sum() + (invdepth * wi.to(color.dtype)).sum())
        if loss.requires_grad:
            loss.backward()
        grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).double()
                 for k, v in leaves.items()}
        if name == "torch":
            grads["viewspace"] = vs.grad if vs.grad is not None else torch.zeros(N, 4)
        else:
            d = r["delta"].grad
            if d is None:
                d = torch.zeros(2, H * W, max(N, 1))
            d = d[:, :, :N]
            grads["viewspace"] = torch.cat([d.sum(1).T, d.abs().sum(1).T], 1) * torch.tensor(
                [W / 2, H / 2, W / 2, H / 2])
        res[name] = dict(color=color.detach().double(), depth=depth.detach().double(),
                         invdepth=invdepth.detach().double(),
                         alpha=alpha.detach().double(), radii=radii, counts=counts, grads=grads)
    return res["torch"], res["ref"]


def _check(t, r, grad_tol=2e-4):
    assert torch.allclose(t["color"], r["color"], atol=2e-5), (t["color"] - r["color"]).abs().max()
    assert torch.allclose(t["depth"], r["depth"], atol=1e-4)
    assert torch.allclose(t["invdepth"], r["invdepth"], atol=1e-5)
    assert torch.allclose(t["alpha"], r["alpha"], atol=2e-5)
    assert torch.equal(t["radii"], r["radii"])
    assert torch.equal(t["counts"], r["counts"])
    for k in r["grads"]:
        assert _rel(t["grads"][k], r["grads"][k]) < grad_tol, (k, _rel(t["grads"][k], r["grads"][k]))


@pytest.mark.parametrize("seed,sh_degree,mult", [(0, 0, 1.0), (1, 3, 1.0), (2, 1, 0.5), (3, 2, 2.0)])
def test_random_scene_matches_reference(backend, seed, sh_degree, mult):
    s = look_at_settings(sh_degree=sh_degree, mult=mult)
    g = random_gaussians(40, seed=seed, sh_degree=sh_degree)
    mm = torch.rand(s.image_height, s.image_width, generator=torch.Generator().manual_seed(seed)) > 0.5
    t, r = _run_both(backend, s, g, metric_map=mm)
    assert r["counts"].sum() > 0 and (r["radii"] > 0).sum() > 10
    _check(t, r)


def test_precomputed_colours_and_covariances(backend):
    s = look_at_settings()
    g = random_gaussians(30, seed=5)
    t, r = _run_both(backend, s, g, precomp_colors=True, precomp_cov=True)
    _check(t, r)


def test_off_centre_principal_point(backend):
    s = look_at_settings(cx_shift=0.2)
    g = random_gaussians(30, seed=6)
    t, r = _run_both(backend, s, g)
    _check(t, r)


def test_edge_cases_behind_offscreen_huge_tiny(backend):
    s = look_at_settings()
    g = random_gaussians(6, seed=8)
    g["means3D"][0] = torch.tensor([0.0, 0.0, -5.0])     # behind the camera
    g["means3D"][1] = torch.tensor([0.0, 0.0, -3.9])     # in front of near plane
    g["means3D"][2] = torch.tensor([30.0, 0.0, 0.0])     # far off-screen
    g["scales"][3] = torch.tensor([3.0, 3.0, 3.0])       # covers the whole image
    g["opacities"][3] = 0.5
    g["scales"][4] = torch.tensor([1e-4, 1e-4, 1e-4])    # tiny: dilation dominates
    g["opacities"][5] = 0.003                            # below 1/255: invisible
    t, r = _run_both(backend, s, g)
    assert t["radii"][0] == 0 and t["radii"][1] == 0 and t["radii"][2] == 0 and t["radii"][5] == 0
    assert t["radii"][3] > 10 and t["radii"][4] > 0
    _check(t, r)


def test_opaque_stack_terminates_early(backend):
    s = look_at_settings()
    g = random_gaussians(12, seed=9, spread=0.1)
    g["scales"][:] = 2.0
    g["opacities"][:] = 0.98                              # 0.99 clamp and T < 1e-4 cut
    t, r = _run_both(backend, s, g)
    assert float(t["alpha"].min()) > 0.99
    _check(t, r)


@pytest.mark.parametrize("n", [0, 1])
def test_zero_and_one_gaussian(backend, n):
    s = look_at_settings()
    g = random_gaussians(n, seed=10)
    t, r = _run_both(backend, s, g)
    _check(t, r)
    if n == 0:
        assert torch.allclose(t["color"], s.bg.double()[:, None, None].expand(3, s.image_height, s.image_width))


def test_viewspace_gradient_is_ndc_scaled_pixel_gradient(backend):
    """Columns 0-1 equal dL/d(pixel position) * (W/2, H/2); columns 2-3 bound them."""
    s = look_at_settings()
    g = random_gaussians(20, seed=11)
    t, _ = _run_both(backend, s, g)
    vs = t["grads"]["viewspace"]
    assert (vs[:, 2:] >= vs[:, :2].abs() - 1e-6).all()
    assert vs[:, 2:].sum() > 0


def test_cpp_matches_torch_on_a_larger_scene_at_any_thread_count():
    """Many Gaussians per tile, several tiles, a metric map: the C++ backend agrees with the
    PyTorch one, and its results are bit-identical for 1 and 2 threads (fixed-order sums)."""
    if not cpp_backend.is_available():
        pytest.skip("the C++ rasterizer could not be built here (C++ compiler and ninja needed)")
    s = look_at_settings(W=70, H=45, sh_degree=3)
    g = random_gaussians(600, seed=12, sh_degree=3)
    mm = torch.rand(45, 70, generator=torch.Generator().manual_seed(3)) > 0.7
    t, _ = _run_both(torch_backend.rasterize, s, g, metric_map=mm)
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(_run_both(cpp_backend.rasterize, s, g, metric_map=mm)[0])
    finally:
        torch.set_num_threads(threads)
    c1, c2 = runs
    for k in ("color", "depth", "invdepth", "alpha", "radii", "counts"):
        assert torch.equal(c1[k], c2[k]), k
    for k in c1["grads"]:
        assert torch.equal(c1["grads"][k], c2["grads"][k]), k
    assert torch.equal(c1["counts"], t["counts"]) and int(t["counts"].sum()) > 100
    assert torch.allclose(c1["color"], t["color"], atol=1e-5)
    for k in t["grads"]:
        assert _rel(c1["grads"][k], t["grads"][k]) < 1e-4, k
