"""The CUDA extension against the PyTorch backend (the oracle, run on the CPU in float32):
image, depth, alpha, radii, metric counts and every gradient, on random scenes and edge cases;
k-NN against brute force; and a short training run through both backends.

With a CUDA GPU these run the installed extensions (`pip install --no-build-isolation
./submodules/diff-gaussian-rasterization ./submodules/simple-knn`). Without one, the same
unmodified kernels run on the CPU through our CUDA emulation under AddressSanitizer
(tests/cuda_emu: built into build/cuda_emu on first use, about a minute of CPU), so CI executes
them too; the training check then fits a small scene instead of a shared capture.
"""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from gaussian_renderer import cuda_backend, torch_backend
from tests.backend_run import fit, rel_diff, run
from tests.demo_scenes import REPO, shared_scene
from bench.bench_grad_accuracy import naive_autograd
from bench.grad_fd import PARAMS, analytic_grads, fd_grads, rel_error
from bench.raster_cases import hard_cases, random_gaussians, rasterizer_inputs

EMULATED = not torch.cuda.is_available()
if EMULATED:
    from tests.cuda_emu import harness
    if harness.unavailable_reason():
        pytest.skip("no CUDA device, and the CUDA emulation cannot build here: "
                    + harness.unavailable_reason(), allow_module_level=True)
elif not cuda_backend.is_available():
    pytest.skip("diff_gaussian_rasterization is not installed (pip install --no-build-isolation "
                "./submodules/diff-gaussian-rasterization)", allow_module_level=True)

# The real kernels on a GPU; otherwise the same kernels under the CPU emulation.
pytestmark = pytest.mark.cuda_cpu if EMULATED else pytest.mark.gpu
GRAD_RTOL = 1e-3
EMU = "tests.cuda_emu.emulated"


def _inputs(g, precomp_colors=False, precomp_cov=False):
    kw = rasterizer_inputs(g, torch.Generator().manual_seed(7), precomp_colors, precomp_cov)
    return dict(means3D=g["means3D"], opacities=g["opacities"], **kw)


def _run_cuda(settings_kw, inputs, metric_map):
    """The CUDA kernels' outputs and gradients: on the GPU, or emulated on the CPU."""
    if EMULATED:
        return harness.call(EMU, "run_raster", settings_kw, inputs, metric_map)
    return run(cuda_backend.rasterize, "cuda", settings_kw, inputs, metric_map)


def _dist_cuda2(points):
    if EMULATED:
        return harness.call(EMU, "dist_cuda2", points)
    from simple_knn._C import distCUDA2
    return distCUDA2(points.cuda()).cpu()


def _parity(settings_kw, g, metric_map=None, **kw):
    inputs = _inputs(g, **kw)
    cu = _run_cuda(settings_kw, inputs, metric_map)
    ref = run(torch_backend.rasterize, "cpu", settings_kw, inputs, metric_map)
    assert torch.allclose(cu["color"], ref["color"], atol=1e-4), (cu["color"] - ref["color"]).abs().max()
    assert torch.allclose(cu["depth"], ref["depth"], atol=1e-3 * max(1.0, float(ref["depth"].abs().max())))
    assert torch.allclose(cu["alpha"], ref["alpha"], atol=1e-4)
    assert torch.allclose(cu["invdepth"], ref["invdepth"], atol=1e-5)
    assert torch.equal(cu["radii"], ref["radii"])
    assert torch.equal(cu["counts"], ref["counts"])
    for k in ref["grads"]:
        assert rel_diff(cu["grads"][k], ref["grads"][k]) < GRAD_RTOL, (k, rel_diff(cu["grads"][k], ref["grads"][k]))
    return cu, ref


# Every case runs with the anti-aliasing filter off and on (--antialiasing).
AA = pytest.mark.parametrize("aa", [False, True], ids=["plain", "antialiasing"])


@AA
@pytest.mark.parametrize("seed,sh_degree,mult", [(0, 0, 1.0), (1, 3, 1.0), (2, 1, 0.5), (3, 2, 2.0)])
def test_random_scene(seed, sh_degree, mult, aa):
    g = random_gaussians(60, seed=seed, sh_degree=sh_degree)
    mm = torch.rand(18, 24, generator=torch.Generator().manual_seed(seed)) > 0.5
    cu, _ = _parity(dict(sh_degree=sh_degree, mult=mult, antialiasing=aa), g, metric_map=mm)
    assert int(cu["counts"].sum()) > 0 and int((cu["radii"] > 0).sum()) > 10


@AA
def test_many_tiles_and_gaussians_per_tile(aa):
    g = random_gaussians(3000, seed=4, sh_degree=3)
    mm = torch.rand(150, 230, generator=torch.Generator().manual_seed(4)) > 0.3
    _parity(dict(W=230, H=150, sh_degree=3, antialiasing=aa), g, metric_map=mm)


@AA
@pytest.mark.parametrize("colors,cov", [(True, False), (False, True), (True, True)])
def test_precomputed_colours_and_covariances(colors, cov, aa):
    _parity(dict(antialiasing=aa), random_gaussians(40, seed=5), precomp_colors=colors,
            precomp_cov=cov)


@AA
def test_off_centre_principal_point(aa):
    _parity(dict(cx_shift=0.2, antialiasing=aa), random_gaussians(30, seed=6))


@AA
def test_edge_cases_behind_offscreen_huge_tiny(aa):
    g = random_gaussians(6, seed=8)
    g["means3D"][0] = torch.tensor([0.0, 0.0, -5.0])     # behind the camera
    g["means3D"][1] = torch.tensor([0.0, 0.0, -3.9])     # in front of the near plane
    g["means3D"][2] = torch.tensor([30.0, 0.0, 0.0])     # far off-screen
    g["scales"][3] = torch.tensor([3.0, 3.0, 3.0])       # covers the whole image
    g["opacities"][3] = 0.5
    g["scales"][4] = torch.tensor([1e-4, 1e-4, 1e-4])    # tiny: the dilation dominates
    g["opacities"][5] = 0.003                            # below 1/255: invisible
    cu, _ = _parity(dict(antialiasing=aa), g)
    assert cu["radii"][:3].tolist() == [0, 0, 0] and int(cu["radii"][5]) == 0


def test_opaque_stack_terminates_early():
    g = random_gaussians(12, seed=9, spread=0.1)
    g["scales"][:] = 2.0
    g["opacities"][:] = 0.98
    cu, _ = _parity({}, g)
    assert float(cu["alpha"].min()) > 0.99


@pytest.mark.parametrize("n", [0, 1])
def test_zero_and_one_gaussian(n):
    _parity({}, random_gaussians(n, seed=10))


def _on_gpu(settings, **kw):
    """cuda_backend.rasterize on CPU tensors: moved to the GPU and back, differentiably."""
    t = lambda v: v.cuda() if isinstance(v, torch.Tensor) else v  # noqa: E731
    s = dataclasses.replace(settings, **{f.name: t(getattr(settings, f.name))
                                         for f in dataclasses.fields(settings)})
    out = cuda_backend.rasterize(s, **{k: t(v) for k, v in kw.items()})
    return type(out)(*(v.cpu() for v in out))


@pytest.mark.parametrize("name", [c[0] for c in hard_cases()])
def test_hard_case_gradients_match_finite_differences(name):
    """The kernels' float32 gradients on bench/raster_cases.hard_cases against float64 central
    differences: within 1e-3 relative, or no worse than twice plain float32 autograd where that
    cannot reach 1e-3 (the bound of tests/test_raster_gradients.py for the other backends)."""
    case = {c[0]: c for c in hard_cases()}[name]
    if EMULATED:
        got = harness.call(EMU, "hard_case_grads", name)
    else:
        got = analytic_grads(_on_gpu, case)
    fd = fd_grads(case)
    naive = analytic_grads(naive_autograd, case)
    for k in PARAMS:
        err, base = rel_error(got[k], fd[k]), rel_error(naive[k], fd[k])
        assert err <= max(GRAD_RTOL, 2 * base), (k, err, base)


def test_knn_matches_brute_force():
    pts = torch.randn(5000, 3, generator=torch.Generator().manual_seed(0))
    d2 = torch.cdist(pts.double(), pts.double()) ** 2
    d2.fill_diagonal_(float("inf"))
    want = d2.topk(3, largest=False).values.mean(1)
    got = _dist_cuda2(pts).double()
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)


def test_training_through_cuda_matches_the_pytorch_backend(tmp_path):
    """Equal iterations on a shared capture: test PSNR within 0.3 dB of the PyTorch backend.
    Emulated, a shared capture would take hours: a 30-step fit of a small scene instead, whose
    loss curve must follow the PyTorch backend's."""
    if EMULATED:
        size = dict(steps=30, W=32, H=24, n=80)
        cu = harness.call(EMU, "fit_cuda", **size)
        ref = fit(torch_backend.rasterize, "cpu", **size)
        assert ref[-1] < 0.7 * ref[0], ref  # the fit itself makes progress
        assert abs(cu[0] - ref[0]) < 1e-5 * ref[0], (cu[0], ref[0])
        assert max(abs(a - b) / b for a, b in zip(cu, ref)) < 0.02, (cu, ref)
        return
    scene = shared_scene("juicebox_table")
    psnr = {}
    for backend in ("cuda", "torch"):
        m = str(tmp_path / backend)
        for cmd in (["train.py", "-s", scene, "-m", m, "--eval", "-i", "images_2",
                     "--iterations", "1000", "--test_iterations", "1000", "--save_iterations",
                     "1000", "--backend", backend, "--device", "cuda", "--quiet",
                     "--no_tensorboard"],
                    ["render.py", "-m", m, "--skip_train", "--quiet"],
                    ["metrics.py", "-m", m]):
            r = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True,
                               timeout=1800)
            assert r.returncode == 0, r.stderr[-2000:]
        psnr[backend] = json.load(open(os.path.join(m, "results.json")))["ours_1000"]["PSNR"]
    assert abs(psnr["cuda"] - psnr["torch"]) < 0.3, psnr
