"""Gaussians -> what viser's splat node takes (centres, 3x3 covariances, RGB, opacity).

viser draws each splat with one colour: we send the SH degree-0 colour (view-dependent
colour is left out; the click-to-render panel shows our full render). Above `max_splats`
only a subset is sent: the Gaussians with the largest opacity x projected-area proxy
(opacity * (s1 s2 s3)^(2/3)), i.e. those that cover the most of the image. Faint, tiny
Gaussians are the first to go; they are also the ones a browser view misses least.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from utils.general_utils import build_scaling_rotation

SH_C0 = 0.28209479177387814
DEFAULT_MAX_SPLATS = 500_000


@dataclass
class SplatArrays:
    centers: np.ndarray      # (M,3) float32
    covariances: np.ndarray  # (M,3,3) float32
    rgbs: np.ndarray         # (M,3) float32 in [0,1]
    opacities: np.ndarray    # (M,1) float32 in [0,1]
    rows: np.ndarray         # (M,) int64: the model rows these splats are
    total: int               # Gaussians in the model

    @property
    def subset(self) -> bool:
        return len(self.rows) < self.total

    def note(self) -> str:
        if not self.subset:
            return f"{self.total:,} Gaussians"
        return (f"{len(self.rows):,} of {self.total:,} Gaussians shown (the most opaque and "
                f"largest; --max_splats to change)")


def select_rows(opacity: torch.Tensor, log_scales: torch.Tensor, max_splats: int) -> torch.Tensor:
    """Rows of the `max_splats` Gaussians with the largest opacity * area proxy, in model
    order; all rows when there are no more than that."""
    n = opacity.shape[0]
    if max_splats <= 0 or n <= max_splats:
        return torch.arange(n)
    # log(opacity) + 2/3 * sum(log s): the log of the score, with no overflow.
    score = torch.log(opacity.reshape(-1).clamp_min(1e-12)) + log_scales.sum(1) * (2.0 / 3.0)
    keep = torch.topk(score, max_splats, sorted=False).indices
    return torch.sort(keep).values


@torch.no_grad()
def splat_arrays(xyz: torch.Tensor, f_dc: torch.Tensor, opacity_logit: torch.Tensor,
                 log_scales: torch.Tensor, rotation: torch.Tensor,
                 max_splats: int = DEFAULT_MAX_SPLATS) -> SplatArrays:
    """From the raw parameters (as stored in GaussianModel / the PLY): xyz (N,3), f_dc
    (N,1,3), opacity logits (N,1), log scales (N,3), quaternions (N,4) w,x,y,z."""
    n = xyz.shape[0]
    opacity = torch.sigmoid(opacity_logit.float().cpu())
    log_scales = log_scales.float().cpu()
    rows = select_rows(opacity, log_scales, max_splats)
    take = (lambda t: t.float().cpu()[rows]) if len(rows) < n else (lambda t: t.float().cpu())
    L = build_scaling_rotation(torch.exp(take(log_scales)), take(rotation))
    cov = L @ L.transpose(1, 2)
    rgb = (0.5 + SH_C0 * take(f_dc).reshape(-1, 3)).clamp(0.0, 1.0)
    return SplatArrays(centers=take(xyz).numpy(), covariances=cov.numpy(), rgbs=rgb.numpy(),
                       opacities=take(opacity).reshape(-1, 1).numpy(), rows=rows.numpy(),
                       total=n)


def model_splats(gaussians, max_splats: int = DEFAULT_MAX_SPLATS) -> SplatArrays:
    """SplatArrays of a GaussianModel."""
    g = gaussians
    return splat_arrays(g._xyz.detach(), g._features_dc.detach(), g._opacity.detach(),
                        g._scaling.detach(), g._rotation.detach(), max_splats)


def scene_bounds(centers: np.ndarray, opacities: Optional[np.ndarray] = None):
    """Robust centre and radius of the splats (5-95 % quantiles of the opaque ones)."""
    pts = centers
    if opacities is not None and len(pts) > 0:
        solid = opacities.reshape(-1) > 0.2
        if solid.sum() > 16:
            pts = pts[solid]
    if len(pts) == 0:
        return np.zeros(3), 1.0
    if len(pts) > 200_000:
        pts = pts[:: len(pts) // 200_000]
    lo, hi = np.quantile(pts, 0.05, axis=0), np.quantile(pts, 0.95, axis=0)
    return (lo + hi) / 2.0, float(max(np.linalg.norm(hi - lo) / 2.0, 1e-3))
