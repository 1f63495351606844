"""Per-call rasterization settings shared by both backends (see docs/RASTERIZER.md)."""
from dataclasses import dataclass
from typing import NamedTuple, Optional

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


class RasterOutput(NamedTuple):
    color: torch.Tensor                 # (3,H,W)
    depth: torch.Tensor                 # (1,H,W)
    alpha: torch.Tensor                 # (1,H,W)
    radii: torch.Tensor                 # (N,) int32
    accum_metric_counts: torch.Tensor   # (N,) int32
    invdepth: Optional[torch.Tensor] = None  # (1,H,W) alpha-blended 1/z
