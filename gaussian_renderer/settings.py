"""Per-call rasterization settings shared by both backends (see docs/RASTERIZER.md)."""
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import torch


@dataclass
class RasterSettings:
    image_height: int
    image_width: int
    tanfovx: float
    tanfovy: float
    bg: torch.Tensor            # (3,)
    scale_modifier: float
    viewmatrix: torch.Tensor    # (4,4) world->view, transposed (row-vector convention)
    projmatrix: torch.Tensor    # (4,4) world->clip, transposed
    sh_degree: int
    campos: torch.Tensor        # (3,)
    prefiltered: bool = False
    mult: float = 1.0           # FastGS compact footprint factor
    debug: bool = False
    antialiasing: bool = False  # 2D mip filter: opacity x sqrt(det(cov2D) / det(cov2D + 0.3 I))


FRUSTUM_SLACK = 0.3  # EWA clamp margin beyond each image edge, in units of tan(fov/2)


def frustum_limits(s: RasterSettings) -> Tuple[float, float, float, float]:
    """Limits of x/z and y/z (left, right, top, bottom) for the EWA Jacobian clamp: the image
    edges, read from the projection (so an off-centre principal point moves them), widened by
    FRUSTUM_SLACK tan(fov/2) on each side. A centred camera gets the reference's
    +-1.3 tan(fov/2). Computed in float64 on the host from the two matrices."""
    view = s.viewmatrix.detach().to("cpu", torch.float64)
    full = s.projmatrix.detach().to("cpu", torch.float64)
    proj_t = torch.linalg.solve(view, full)  # [p,1] @ view @ proj_t = [p,1] @ full
    # ndc_x = x/z * P[0][0] + P[0][2] with P = proj_t^T (w = z); edges at ndc = -1, +1.
    (px, ox), (py, oy) = (float(proj_t[0, 0]), float(proj_t[2, 0])), (float(proj_t[1, 1]),
                                                                         float(proj_t[2, 1]))
    mx, my = FRUSTUM_SLACK * s.tanfovx, FRUSTUM_SLACK * s.tanfovy
    return ((-1.0 - ox) / px - mx, (1.0 - ox) / px + mx, (-1.0 - oy) / py - my,
            (1.0 - oy) / py + my)


class RasterOutput(NamedTuple):
    color: torch.Tensor                 # (3,H,W)
    depth: torch.Tensor                 # (1,H,W)
    alpha: torch.Tensor                 # (1,H,W)
    radii: torch.Tensor                 # (N,) int32
    accum_metric_counts: torch.Tensor   # (N,) int32
    invdepth: Optional[torch.Tensor] = None  # (1,H,W) alpha-blended 1/z
