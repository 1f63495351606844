"""Shared synthetic rasterization cases for renderer tests (torch backend, CUDA parity)."""
import math

import torch

from gaussian_renderer.settings import RasterSettings


def look_at_settings(W=24, H=18, fovx=1.0, eye=(0.0, 0.0, -4.0), target=(0.0, 0.0, 0.0),
                     sh_degree=0, mult=1.0, bg=(0.1, 0.2, 0.3), cx_shift=0.0,
                     dtype=torch.float32, device="cpu"):
    eye_t = torch.tensor(eye, dtype=torch.float64)
    fwd = torch.tensor(target, dtype=torch.float64) - eye_t
    fwd = fwd / fwd.norm()
    up = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
    right = torch.linalg.cross(up, fwd)
    if right.norm() < 1e-6:
        right = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd])            # world -> camera rows
    V = torch.eye(4, dtype=torch.float64)
    V[:3, :3] = R
    V[:3, 3] = -R @ eye_t
    fovy = 2 * math.atan(math.tan(fovx / 2) * H / W)
    n, f = 0.01, 100.0
    tx, ty = math.tan(fovx / 2), math.tan(fovy / 2)
    P = torch.zeros(4, 4, dtype=torch.float64)
    P[0, 0] = 1 / tx
    P[1, 1] = 1 / ty
    P[0, 2] = cx_shift  # off-centre principal point, in NDC units
    P[2, 2] = f / (f - n)
    P[2, 3] = -f * n / (f - n)
    P[3, 2] = 1.0
    view = V.T.contiguous()
    proj = (V.T @ P.T).contiguous()
    return RasterSettings(
        image_height=H, image_width=W, tanfovx=tx, tanfovy=ty,
        bg=torch.tensor(bg, dtype=dtype, device=device), scale_modifier=1.0,
        viewmatrix=view.to(dtype=dtype, device=device), projmatrix=proj.to(dtype=dtype, device=device),
        sh_degree=sh_degree, campos=eye_t.to(dtype=dtype, device=device), mult=mult)


def random_gaussians(n, seed=0, sh_degree=0, spread=1.2, scale=(-2.5, -1.0), dtype=torch.float32,
                     device="cpu"):
    g = torch.Generator().manual_seed(seed)
    K = (sh_degree + 1) ** 2
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * spread
    scales = torch.exp(torch.rand(n, 3, generator=g) * (scale[1] - scale[0]) + scale[0])
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=1, keepdim=True)
    opac = torch.rand(n, 1, generator=g) * 0.9 + 0.05
    shs = torch.randn(n, K, 3, generator=g) * 0.5
    out = dict(means3D=means, scales=scales, rotations=q, opacities=opac, shs=shs)
    return {k: v.to(dtype=dtype, device=device) for k, v in out.items()}


def rasterizer_inputs(g, gen, precomp_colors=False, precomp_cov=False):
    """Keyword inputs of a rasterize call for Gaussians `g`: SH or random precomputed colours,
    scales/rotations or random precomputed covariances (drawn from `gen`)."""
    n = g["means3D"].shape[0]
    kw = {}
    if precomp_colors:
        kw["colors_precomp"] = torch.rand(n, 3, generator=gen)
    else:
        kw["shs"] = g["shs"]
    if precomp_cov:
        L = torch.randn(n, 3, 3, generator=gen) * 0.15
        cov = L @ L.transpose(1, 2) + 0.01 * torch.eye(3)
        kw["cov3D_precomp"] = cov[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    else:
        kw["scales"], kw["rotations"] = g["scales"], g["rotations"]
    return kw
