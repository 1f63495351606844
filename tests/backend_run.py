"""One backend's outputs and gradients for a fixed random linear loss: shared by the CUDA parity
tests in this process and the emulated-CUDA worker (tests/cuda_emu/emulated.py); and the CPU
backends' against the float64 reference (test_cpu_backends, test_antialiasing)."""
import torch

from bench.raster_cases import look_at_settings, rasterizer_inputs


def run(rasterize, device, settings_kw, inputs, metric_map):
    """Outputs and gradients of `rasterize` on `device`, as CPU float64/int64 tensors."""
    s = look_at_settings(device=device, **settings_kw)
    H, W = s.image_height, s.image_width
    gen = torch.Generator().manual_seed(11)
    wc, wd, wa = (torch.randn(3, H, W, generator=gen), torch.randn(1, H, W, generator=gen),
                  torch.randn(1, H, W, generator=gen))
    wi = torch.randn(1, H, W, generator=gen)
    leaves = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in inputs.items()}
    n = inputs["means3D"].shape[0]
    vs = torch.zeros(n, 4, device=device, requires_grad=True)
    mm = None if metric_map is None else metric_map.to(device=device, dtype=torch.int32)
    out = rasterize(s, means2D=vs, metric_map=mm, **leaves)
    loss = ((out.color * wc.to(device)).sum() + (out.depth * wd.to(device)).sum()
            + (out.alpha * wa.to(device)).sum() + (out.invdepth * wi.to(device)).sum())
    if loss.requires_grad:
        loss.backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).detach().cpu().double()
             for k, v in leaves.items()}
    grads["viewspace"] = (vs.grad if vs.grad is not None else torch.zeros_like(vs)).cpu().double()
    return dict(color=out.color.detach().cpu().double(), depth=out.depth.detach().cpu().double(),
                invdepth=out.invdepth.detach().cpu().double(),
                alpha=out.alpha.detach().cpu().double(), radii=out.radii.cpu().long(),
                counts=out.accum_metric_counts.cpu().long(), grads=grads)


def fit(rasterize, device, steps=60, W=48, H=36, n=150):
    """A short optimisation through `rasterize`: n random Gaussians fitted with Adam to the image
    of another random scene (rendered by the PyTorch backend); returns the L1 loss per step."""
    from gaussian_renderer import torch_backend
    from bench.raster_cases import random_gaussians
    s = look_at_settings(W=W, H=H, device=device)
    with torch.no_grad():
        t = random_gaussians(120, seed=100)
        target = torch_backend.rasterize(look_at_settings(W=W, H=H), means2D=torch.zeros(120, 4),
                                         **t).color.to(device)
    g = random_gaussians(n, seed=101)
    params = [g["means3D"], g["scales"].log(), g["rotations"], torch.logit(g["opacities"]), g["shs"]]
    params = [p.clone().to(device).requires_grad_(True) for p in params]
    opt = torch.optim.Adam(params, lr=0.01)
    losses = []
    for _ in range(steps):
        means, log_s, q, logit_o, shs = params
        out = rasterize(s, means3D=means, means2D=torch.zeros(n, 4, device=device, requires_grad=True),
                        opacities=torch.sigmoid(logit_o), shs=shs, scales=log_s.exp(),
                        rotations=q / q.norm(dim=1, keepdim=True))
        loss = (out.color - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def rel_diff(a, b):
    """Norm-relative difference of a from b."""
    return float((a - b).norm() / max(float(b.norm()), 1e-8))


def run_with_reference(rasterize, s, g, metric_map=None, precomp_colors=False, precomp_cov=False):
    """Outputs and gradients of `rasterize` (float32) and of the float64 brute-force reference
    for the same random linear loss: (ours, reference), float64/int64 CPU tensors."""
    from gaussian_renderer.reference import reference_rasterize
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


def assert_matches_reference(t, r, grad_tol=2e-4):
    """run_with_reference's two results agree: images within float32 rounding, the same radii
    and metric counts, every gradient within grad_tol relative."""
    assert torch.allclose(t["color"], r["color"], atol=2e-5), (t["color"] - r["color"]).abs().max()
    assert torch.allclose(t["depth"], r["depth"], atol=1e-4)
    assert torch.allclose(t["invdepth"], r["invdepth"], atol=1e-5)
    assert torch.allclose(t["alpha"], r["alpha"], atol=2e-5)
    assert torch.equal(t["radii"], r["radii"])
    assert torch.equal(t["counts"], r["counts"])
    for k in r["grads"]:
        assert rel_diff(t["grads"][k], r["grads"][k]) < grad_tol, (k, rel_diff(t["grads"][k], r["grads"][k]))
