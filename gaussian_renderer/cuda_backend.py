"""CUDA backend: adapts our `diff_gaussian_rasterization` extension to the RasterOutput contract.

The extension is optional (built by scripts/install.sh where CUDA and nvcc exist); without it
`is_available()` is False and `select_backend("auto")` keeps the PyTorch backend.
"""
import functools

from gaussian_renderer.settings import RasterOutput, RasterSettings, frustum_limits


@functools.lru_cache(maxsize=1)  # a real cache: the imported extension module, once per process
def _extension():
    """The extension module, or None when it is not installed or fails to load."""
    try:
        import diff_gaussian_rasterization as ext
    except Exception:  # ImportError, or a build against another torch/CUDA (OSError, ...)
        return None
    return ext


def is_available() -> bool:
    return _extension() is not None


def rasterize(settings: RasterSettings, means3D, means2D, opacities, shs=None,
              colors_precomp=None, scales=None, rotations=None, cov3D_precomp=None,
              metric_map=None) -> RasterOutput:
    ext = _extension()
    if ext is None:
        raise RuntimeError("diff_gaussian_rasterization is not installed")
    ext_settings = ext.GaussianRasterizationSettings(
        image_height=settings.image_height, image_width=settings.image_width,
        tanfovx=settings.tanfovx, tanfovy=settings.tanfovy, bg=settings.bg,
        scale_modifier=settings.scale_modifier, viewmatrix=settings.viewmatrix,
        projmatrix=settings.projmatrix, sh_degree=settings.sh_degree, campos=settings.campos,
        prefiltered=settings.prefiltered, mult=settings.mult, debug=settings.debug,
        frustum=frustum_limits(settings),
        antialiasing=bool(getattr(settings, "antialiasing", False)))
    color, radii, depth, alpha, counts, invdepth = ext.GaussianRasterizer(ext_settings)(
        means3D, means2D, opacities, shs=shs, colors_precomp=colors_precomp, scales=scales,
        rotations=rotations, cov3D_precomp=cov3D_precomp, metric_map=metric_map)
    return RasterOutput(color=color, depth=depth, alpha=alpha, radii=radii,
                        accum_metric_counts=counts, invdepth=invdepth)
