"""One backend's outputs and gradients for a fixed random linear loss: shared by the CUDA parity
tests in this process and the emulated-CUDA worker (tests/cuda_emu/emulated.py)."""
import torch

from tests.raster_cases import look_at_settings


def run(rasterize, device, settings_kw, inputs, metric_map):
    """Outputs and gradients of `rasterize` on `device`, as CPU float64/int64 tensors."""
    s = look_at_settings(device=device, **settings_kw)
    H, W = s.image_height, s.image_width
    gen = torch.Generator().manual_seed(11)
    wc, wd, wa = (torch.randn(3, H, W, generator=gen), torch.randn(1, H, W, generator=gen),
                  torch.randn(1, H, W, generator=gen))
    leaves = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in inputs.items()}
    n = inputs["means3D"].shape[0]
    vs = torch.zeros(n, 4, device=device, requires_grad=True)
    mm = None if metric_map is None else metric_map.to(device=device, dtype=torch.int32)
    out = rasterize(s, means2D=vs, metric_map=mm, **leaves)
    loss = ((out.color * wc.to(device)).sum() + (out.depth * wd.to(device)).sum()
            + (out.alpha * wa.to(device)).sum())
    if loss.requires_grad:
        loss.backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).detach().cpu().double()
             for k, v in leaves.items()}
    grads["viewspace"] = (vs.grad if vs.grad is not None else torch.zeros_like(vs)).cpu().double()
    return dict(color=out.color.detach().cpu().double(), depth=out.depth.detach().cpu().double(),
                alpha=out.alpha.detach().cpu().double(), radii=out.radii.cpu().long(),
                counts=out.accum_metric_counts.cpu().long(), grads=grads)
