"""Differentiable tile-based Gaussian rasterizer (CUDA). The math is docs/RASTERIZER.md.

    settings = GaussianRasterizationSettings(...)
    color, radii, depth, alpha, accum_metric_counts, invdepth = GaussianRasterizer(settings)(
        means3D, means2D, opacities, shs=..., scales=..., rotations=...)

`means2D` is a zeros (N,4) tensor with requires_grad; its .grad receives the NDC-space mean
gradient (columns 0-1) and the AbsGS/FastGS absolute gradient (columns 2-3).
"""
from typing import NamedTuple, Optional, Tuple

import torch
from torch import nn

from . import _C


class GaussianRasterizationSettings(NamedTuple):
    image_height: int
    image_width: int
    tanfovx: float
    tanfovy: float
    bg: torch.Tensor
    scale_modifier: float
    viewmatrix: torch.Tensor
    projmatrix: torch.Tensor
    sh_degree: int
    campos: torch.Tensor
    prefiltered: bool
    mult: float = 1.0
    debug: bool = False
    # EWA clamp limits of x/z, y/z (left, right, top, bottom); None: a centred camera's
    # +-1.3 tan(fov/2). Off-centre principal points need the real frustum (docs/RASTERIZER.md).
    frustum: Optional[Tuple[float, float, float, float]] = None
    antialiasing: bool = False  # 2D mip filter: opacity x sqrt(det(cov2D) / det(cov2D + 0.3 I))


def _f32(t, device):
    return t.to(device=device, dtype=torch.float32).contiguous()


def _frustum(s):
    if s.frustum is not None:
        return [float(x) for x in s.frustum]
    tx, ty = 1.3 * float(s.tanfovx), 1.3 * float(s.tanfovy)
    return [-tx, tx, -ty, ty]


def _optional(t, device):
    return torch.empty(0, device=device) if t is None else _f32(t, device)


class _RasterizeGaussians(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means3D, means2D, shs, colors_precomp, opacities, scales, rotations,
                cov3D_precomp, metric_map, s):
        dev = means3D.device
        bg, view, proj, campos = (_f32(t, dev) for t in (s.bg, s.viewmatrix, s.projmatrix,
                                                         s.campos))
        if metric_map is None:
            metric = torch.empty(0, dtype=torch.uint8, device=dev)
        else:
            metric = (metric_map.to(device=dev) != 0).to(torch.uint8).contiguous()
        args = (bg, means3D, colors_precomp, opacities, scales, rotations,
                float(s.scale_modifier), cov3D_precomp, view, proj, float(s.tanfovx),
                float(s.tanfovy), int(s.image_height), int(s.image_width), shs,
                int(s.sh_degree), campos, float(s.mult), _frustum(s), metric,
                bool(s.antialiasing), bool(s.debug))
        num_rendered, color, radii, depth, alpha, counts, invdepth, geom, binning, image = \
            _C.rasterize_gaussians(*args)
        ctx.settings = (bg, view, proj, campos)
        ctx.s = s
        ctx.num_rendered = num_rendered
        ctx.means2D_cols = means2D.shape[1] if means2D.dim() == 2 else 4
        ctx.save_for_backward(means3D, shs, colors_precomp, opacities, scales, rotations,
                              cov3D_precomp, radii, geom, binning, image)
        ctx.mark_non_differentiable(radii, counts)
        return color, radii, depth, alpha, counts, invdepth

    @staticmethod
    def backward(ctx, g_color, _g_radii, g_depth, g_alpha, _g_counts, g_invdepth):
        (means3D, shs, colors_precomp, opacities, scales, rotations, cov3D_precomp, radii, geom,
         binning, image) = ctx.saved_tensors
        bg, view, proj, campos = ctx.settings
        s = ctx.s
        H, W = int(s.image_height), int(s.image_width)
        dev = means3D.device

        def grad_or_zeros(g, shape):
            if g is None:
                return torch.zeros(shape, device=dev)
            return _f32(g, dev)

        (d_means2D, d_colors, d_opacities, d_means3D, d_cov3D, d_shs, d_scales,
         d_rotations) = _C.rasterize_gaussians_backward(
            bg, means3D, radii, colors_precomp, opacities, scales, rotations,
            float(s.scale_modifier), cov3D_precomp, view, proj, float(s.tanfovx),
            float(s.tanfovy), grad_or_zeros(g_color, (3, H, W)),
            grad_or_zeros(g_depth, (1, H, W)), grad_or_zeros(g_alpha, (1, H, W)),
            grad_or_zeros(g_invdepth, (1, H, W)), shs,
            int(s.sh_degree), campos, float(s.mult), _frustum(s), geom, ctx.num_rendered,
            binning, image, bool(s.antialiasing), bool(s.debug))
        d_means2D = d_means2D[:, :ctx.means2D_cols]
        has = lambda t: t.numel() > 0  # noqa: E731  (empty tensor = argument not given)
        return (d_means3D, d_means2D,
                d_shs if has(shs) else None,
                d_colors if has(colors_precomp) else None,
                d_opacities,
                d_scales if has(scales) else None,
                d_rotations if has(rotations) else None,
                d_cov3D if has(cov3D_precomp) else None,
                None, None)


def rasterize_gaussians(means3D, means2D, shs, colors_precomp, opacities, scales, rotations,
                        cov3D_precomp, raster_settings, metric_map=None):
    dev = means3D.device
    return _RasterizeGaussians.apply(
        _f32(means3D, dev), means2D, _optional(shs, dev), _optional(colors_precomp, dev),
        _f32(opacities, dev), _optional(scales, dev), _optional(rotations, dev),
        _optional(cov3D_precomp, dev), metric_map, raster_settings)


class GaussianRasterizer(nn.Module):
    def __init__(self, raster_settings: GaussianRasterizationSettings):
        super().__init__()
        self.raster_settings = raster_settings

    def markVisible(self, positions: torch.Tensor) -> torch.Tensor:
        """Bool mask of points in front of the near plane (view-space z > 0.2)."""
        with torch.no_grad():
            view = self.raster_settings.viewmatrix.to(positions)
            z = positions @ view[:3, 2] + view[3, 2]
            return z > 0.2

    def forward(self, means3D, means2D, opacities, shs=None, colors_precomp=None, scales=None,
                rotations=None, cov3D_precomp=None, metric_map=None):
        if (shs is None) == (colors_precomp is None):
            raise ValueError("pass exactly one of shs / colors_precomp")
        if (scales is None or rotations is None) == (cov3D_precomp is None):
            raise ValueError("pass scales and rotations, or cov3D_precomp")
        return rasterize_gaussians(means3D, means2D, shs, colors_precomp, opacities, scales,
                                   rotations, cov3D_precomp, self.raster_settings, metric_map)
