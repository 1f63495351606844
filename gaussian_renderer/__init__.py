"""render(): one contract (docs/RASTERIZER.md), three backends: the CUDA extension, the C++
CPU rasterizer (`cpp`, which shares the CUDA extension's per-Gaussian code) and pure PyTorch
(`torch`, the oracle both are tested against)."""
import math
from typing import Optional

import torch

from gaussian_renderer import cpp_backend, cuda_backend, torch_backend
from gaussian_renderer.settings import RasterSettings
from utils.errors import UserError
from utils.sh_utils import eval_sh


def select_backend(name: str, device: torch.device):
    """`auto`: the CUDA extension on CUDA, the C++ rasterizer on CPU, when they are built;
    otherwise the PyTorch backend."""
    if name == "torch":
        return torch_backend.rasterize
    if name == "cuda":
        if device.type != "cuda":
            raise UserError("--backend cuda needs the model on a CUDA device (--device cuda)")
        if not cuda_backend.is_available():
            raise UserError("--backend cuda: diff_gaussian_rasterization is not installed "
                            "(pip install ./submodules/diff-gaussian-rasterization --no-build-isolation)")
        return cuda_backend.rasterize
    if name == "cpp":
        if device.type != "cpu":
            raise UserError("--backend cpp renders on the CPU (--device cpu)")
        if not cpp_backend.is_available():
            raise UserError("--backend cpp: the C++ rasterizer could not be built here "
                            "(needs a C++ compiler and ninja; see the warning above)")
        return cpp_backend.rasterize
    if device.type == "cuda" and cuda_backend.is_available():
        return cuda_backend.rasterize
    if device.type == "cpu" and cpp_backend.is_available():
        return cpp_backend.rasterize
    return torch_backend.rasterize


def backend_name(name: str, device: torch.device) -> str:
    fn = select_backend(name, device)
    return {torch_backend.rasterize: "torch", cpp_backend.rasterize: "cpp",
            cuda_backend.rasterize: "cuda"}[fn]


def render(viewpoint_camera, pc, pipe, bg_color: torch.Tensor, scaling_modifier: float = 1.0,
           override_color: Optional[torch.Tensor] = None,
           metric_map: Optional[torch.Tensor] = None) -> dict:
    """Render `pc` (GaussianModel) from `viewpoint_camera`; returns the reference's render_pkg
    plus `depth` (alpha-blended z), `invdepth` (alpha-blended 1/z: the reference's "depth"),
    `alpha` and `accum_metric_counts`. `pipe.antialiasing` turns on the 2D mip filter."""
    means3D = pc.get_xyz
    dev, dt = means3D.device, means3D.dtype
    # Viewspace statistics tensor: receives dL/dNDC (cols 0-1) and the absolute gradient (2-3).
    screenspace_points = torch.zeros((means3D.shape[0], 4), dtype=dt, device=dev,
                                     requires_grad=True)
    settings = RasterSettings(
        image_height=int(viewpoint_camera.image_height),
        image_width=int(viewpoint_camera.image_width),
        tanfovx=math.tan(viewpoint_camera.FoVx * 0.5),
        tanfovy=math.tan(viewpoint_camera.FoVy * 0.5),
        bg=bg_color.to(device=dev, dtype=dt),
        scale_modifier=scaling_modifier,
        viewmatrix=viewpoint_camera.world_view_transform.to(device=dev, dtype=dt),
        projmatrix=viewpoint_camera.full_proj_transform.to(device=dev, dtype=dt),
        sh_degree=pc.active_sh_degree,
        campos=viewpoint_camera.camera_center.to(device=dev, dtype=dt),
        prefiltered=False,
        mult=float(getattr(pipe, "mult", 1.0)),
        debug=bool(getattr(pipe, "debug", False)),
        antialiasing=bool(getattr(pipe, "antialiasing", False)),
    )
    scales = rotations = cov3D_precomp = None
    if getattr(pipe, "compute_cov3D_python", False):
        cov3D_precomp = pc.get_covariance(scaling_modifier)
    else:
        scales, rotations = pc.get_scaling, pc.get_rotation
    shs = colors_precomp = None
    if override_color is not None:
        colors_precomp = override_color
    elif getattr(pipe, "convert_SHs_python", False):
        feats = pc.get_features.transpose(1, 2)
        dirs = means3D - settings.campos
        dirs = dirs / dirs.norm(dim=1, keepdim=True)
        colors_precomp = torch.clamp_min(eval_sh(pc.active_sh_degree, feats, dirs) + 0.5, 0.0)
    else:
        shs = pc.get_features
    if metric_map is not None:
        metric_map = metric_map.to(dev)

    rasterize = select_backend(getattr(pipe, "backend", "auto"), dev)
    out = rasterize(settings, means3D=means3D, means2D=screenspace_points,
                    opacities=pc.get_opacity, shs=shs, colors_precomp=colors_precomp,
                    scales=scales, rotations=rotations, cov3D_precomp=cov3D_precomp,
                    metric_map=metric_map)
    return {
        "render": out.color,
        "depth": out.depth,
        "invdepth": out.invdepth,
        "alpha": out.alpha,
        "viewspace_points": screenspace_points,
        "visibility_filter": out.radii > 0,
        "radii": out.radii,
        "accum_metric_counts": out.accum_metric_counts,
    }
