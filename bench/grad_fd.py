"""Float64 central finite differences of a fixed linear image loss, the yardstick for every
backend's analytic gradients on the hard cases of bench/raster_cases.py (used by
tests/test_raster_gradients.py and bench/bench_grad_accuracy.py)."""
import torch

from gaussian_renderer import torch_backend
from bench.raster_cases import look_at_settings

PARAMS = ("means3D", "scales", "rotations", "opacities", "colors_precomp")


def loss_weights(H, W, seed=7):
    """Random weights of colour, depth and alpha: the loss is their dot product with the image."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(3, H, W, generator=gen, dtype=torch.float64),
            torch.randn(1, H, W, generator=gen, dtype=torch.float64),
            torch.randn(1, H, W, generator=gen, dtype=torch.float64))


def render_loss(rasterize, settings, g, weights, w_invdepth=None):
    """Dot product of the images with `weights`, plus the inverse-depth image's with
    `w_invdepth` when given."""
    n = g["means3D"].shape[0]
    vs = torch.zeros(n, 4, dtype=g["means3D"].dtype, requires_grad=True)
    out = rasterize(settings, means2D=vs, **g)
    wc, wd, wa = (w.to(out.color.dtype) for w in weights)
    loss = (out.color * wc).sum() + (out.depth * wd).sum() + (out.alpha * wa).sum()
    if w_invdepth is not None:
        loss = loss + (out.invdepth * w_invdepth.to(out.color.dtype)).sum()
    return loss


def _settings(cam, dtype, antialiasing):
    return look_at_settings(dtype=dtype, antialiasing=antialiasing, **cam)


def _invdepth_weight(s, with_invdepth, seed):
    if not with_invdepth:
        return None
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randn(1, s.image_height, s.image_width, generator=gen, dtype=torch.float64)


def analytic_grads(rasterize, case, dtype=torch.float32, seed=7, antialiasing=False,
                   invdepth=False):
    """Gradients (float64 copies) of the loss from `rasterize` run in `dtype`; `antialiasing`
    renders with the 2D mip filter, `invdepth` adds the inverse-depth image to the loss."""
    _, cam, g64 = case
    s = _settings(cam, dtype, antialiasing)
    leaves = {k: v.to(dtype).clone().requires_grad_(True) for k, v in g64.items()}
    loss = render_loss(rasterize, s, leaves, loss_weights(s.image_height, s.image_width, seed),
                       _invdepth_weight(s, invdepth, seed))
    loss.backward()
    return {k: (v.grad if v.grad is not None else torch.zeros_like(v)).double()
            for k, v in leaves.items()}


def _central(f, flat, i, h):
    x = float(flat[i])
    flat[i] = x + h
    lp = f()
    flat[i] = x - h
    lm = f()
    flat[i] = x
    return (lp - lm) / (2 * h)


@torch.no_grad()
def fd_grads(case, rel_step=1e-6, seed=7, antialiasing=False, invdepth=False):
    """Central differences of the float64 torch backend, step rel_step * max(|x|, 0.01).

    The loss is piecewise smooth: a pixel whose alpha crosses 1/255 (or leaves the support)
    jumps, and a difference quotient straddling a jump is off by jump/h. Smooth estimates at
    steps 4h, h and h/4 agree to O(h^2); a straddling one is an outlier, so the median of the
    three is kept. (Shrinking the step further would trade jumps for float64 roundoff.)"""
    _, cam, g64 = case
    s = _settings(cam, torch.float64, antialiasing)
    w = loss_weights(s.image_height, s.image_width, seed)
    wi = _invdepth_weight(s, invdepth, seed)
    base = {k: v.clone() for k, v in g64.items()}

    def f():
        return float(render_loss(torch_backend.rasterize, s, base, w, wi))

    out = {}
    for k in PARAMS:
        grad = torch.zeros_like(base[k])
        flat, gflat = base[k].view(-1), grad.view(-1)
        for i in range(flat.numel()):
            h = rel_step * max(abs(float(flat[i])), 0.01)
            est = sorted(_central(f, flat, i, h * m) for m in (4.0, 1.0, 0.25))
            gflat[i] = est[1]
        out[k] = grad
    return out


def rel_error(g, ref):
    """Norm-relative error of one parameter's gradient (all Gaussians of a case together)."""
    return float((g - ref).norm() / max(float(ref.norm()), 1e-12))
