"""The CPU backends (pure PyTorch, and C++ with the CUDA extension's per-Gaussian code) against
the float64 brute-force reference: image, depth, alpha, radii, metric counts and every
gradient, including the 4-channel viewspace statistics."""
import pytest
import torch

from gaussian_renderer import cpp_backend, torch_backend
from tests.backend_run import assert_matches_reference, rel_diff, run_with_reference
from bench.raster_cases import look_at_settings, random_gaussians
from tests.tiny import require_cpp

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("seed,sh_degree,mult", [(0, 0, 1.0), (1, 3, 1.0), (2, 1, 0.5), (3, 2, 2.0)])
def test_random_scene_matches_reference(cpu_rasterize, seed, sh_degree, mult):
    s = look_at_settings(sh_degree=sh_degree, mult=mult)
    g = random_gaussians(40, seed=seed, sh_degree=sh_degree)
    mm = torch.rand(s.image_height, s.image_width, generator=torch.Generator().manual_seed(seed)) > 0.5
    t, r = run_with_reference(cpu_rasterize, s, g, metric_map=mm)
    assert r["counts"].sum() > 0 and (r["radii"] > 0).sum() > 10
    assert_matches_reference(t, r)


def test_precomputed_colours_and_covariances(cpu_rasterize):
    s = look_at_settings()
    g = random_gaussians(30, seed=5)
    t, r = run_with_reference(cpu_rasterize, s, g, precomp_colors=True, precomp_cov=True)
    assert_matches_reference(t, r)


def test_off_centre_principal_point(cpu_rasterize):
    s = look_at_settings(cx_shift=0.2)
    g = random_gaussians(30, seed=6)
    t, r = run_with_reference(cpu_rasterize, s, g)
    assert_matches_reference(t, r)


def test_edge_cases_behind_offscreen_huge_tiny(cpu_rasterize):
    s = look_at_settings()
    g = random_gaussians(6, seed=8)
    g["means3D"][0] = torch.tensor([0.0, 0.0, -5.0])     # behind the camera
    g["means3D"][1] = torch.tensor([0.0, 0.0, -3.9])     # in front of near plane
    g["means3D"][2] = torch.tensor([30.0, 0.0, 0.0])     # far off-screen
    g["scales"][3] = torch.tensor([3.0, 3.0, 3.0])       # covers the whole image
    g["opacities"][3] = 0.5
    g["scales"][4] = torch.tensor([1e-4, 1e-4, 1e-4])    # tiny: dilation dominates
    g["opacities"][5] = 0.003                            # below 1/255: invisible
    t, r = run_with_reference(cpu_rasterize, s, g)
    assert t["radii"][0] == 0 and t["radii"][1] == 0 and t["radii"][2] == 0 and t["radii"][5] == 0
    assert t["radii"][3] > 10 and t["radii"][4] > 0
    assert_matches_reference(t, r)


def test_opaque_stack_terminates_early(cpu_rasterize):
    s = look_at_settings()
    g = random_gaussians(12, seed=9, spread=0.1)
    g["scales"][:] = 2.0
    g["opacities"][:] = 0.98                              # 0.99 clamp and T < 1e-4 cut
    t, r = run_with_reference(cpu_rasterize, s, g)
    assert float(t["alpha"].min()) > 0.99
    assert_matches_reference(t, r)


@pytest.mark.parametrize("n", [0, 1])
def test_zero_and_one_gaussian(cpu_rasterize, n):
    s = look_at_settings()
    g = random_gaussians(n, seed=10)
    t, r = run_with_reference(cpu_rasterize, s, g)
    assert_matches_reference(t, r)
    if n == 0:
        assert torch.allclose(t["color"], s.bg.double()[:, None, None].expand(3, s.image_height, s.image_width))


def test_viewspace_gradient_is_ndc_scaled_pixel_gradient(cpu_rasterize):
    """Columns 0-1 equal dL/d(pixel position) * (W/2, H/2); columns 2-3 bound them."""
    s = look_at_settings()
    g = random_gaussians(20, seed=11)
    t, _ = run_with_reference(cpu_rasterize, s, g)
    vs = t["grads"]["viewspace"]
    assert (vs[:, 2:] >= vs[:, :2].abs() - 1e-6).all()
    assert vs[:, 2:].sum() > 0


@pytest.mark.e2e  # a minute: too slow for the unit tier
def test_cpp_matches_torch_on_a_larger_scene_at_any_thread_count():
    """Many Gaussians per tile, several tiles, a metric map: the C++ backend agrees with the
    PyTorch one, and its results are bit-identical for 1 and 2 threads (fixed-order sums)."""
    require_cpp()
    s = look_at_settings(W=70, H=45, sh_degree=3)
    g = random_gaussians(600, seed=12, sh_degree=3)
    mm = torch.rand(45, 70, generator=torch.Generator().manual_seed(3)) > 0.7
    t, _ = run_with_reference(torch_backend.rasterize, s, g, metric_map=mm)
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(run_with_reference(cpp_backend.rasterize, s, g, metric_map=mm)[0])
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
        assert rel_diff(c1["grads"][k], t["grads"][k]) < 1e-4, k
