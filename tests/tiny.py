"""Tiny synthetic building blocks shared by the unit tests: a pinhole camera looking along +z,
a Gaussian model built from points, the optimiser and pipeline options they train and render
with, and the loader options of the camera readers. tests/conftest.py exposes the option
namespaces as fixtures; import the builders where a test module needs them at import time."""
import math
import types
from argparse import ArgumentParser

import numpy as np
import pytest
import torch

W, H, F = 64, 48, 60.0  # image size and focal length (pixels) of camera()

# The reference codebase's learning rates (opacity 0.05, its original value): what
# GaussianModel.training_setup reads.
OPT = types.SimpleNamespace(
    position_lr_init=1.6e-4, position_lr_final=1.6e-6, position_lr_delay_mult=0.01,
    position_lr_max_steps=30000, feature_lr=0.0025, opacity_lr=0.05, scaling_lr=0.005,
    rotation_lr=0.001)
# The PyTorch oracle backend with FastGS's footprint (mult 0.5): the same result everywhere.
PIPE = types.SimpleNamespace(backend="torch", mult=0.5, compute_cov3D_python=False,
                             convert_SHs_python=False, debug=False)
BG = torch.zeros(3)


def camera(image=None, T=(0.0, 0.0, 4.0), uid=0):
    """A W x H camera with focal F at the origin's rotation (R = I): with the default T it looks
    along +z from (0, 0, -4), so the plane z = 0 is at view depth 4, F px per unit / 4."""
    from scene.cameras import Camera
    fov_x, fov_y = 2 * math.atan(W / (2 * F)), 2 * math.atan(H / (2 * F))
    img = torch.zeros(3, H, W) if image is None else image
    return Camera(colmap_id=uid, R=np.eye(3), T=np.asarray(T), FoVx=fov_x, FoVy=fov_y,
                  image=img, image_name=f"v{uid}", uid=uid)


def model(xyz, scale=0.25, opacity=0.9, rgb=0.5):
    """A degree-0 GaussianModel with one isotropic Gaussian per point (scale and opacity: a
    scalar or one per point), set up for training with OPT."""
    from scene.gaussian_model import GaussianModel
    from utils.general_utils import inverse_sigmoid
    xyz = torch.as_tensor(xyz, dtype=torch.float32).reshape(-1, 3)
    n = xyz.shape[0]
    g = GaussianModel(0)
    pcd = types.SimpleNamespace(points=xyz.numpy(), colors=np.full((n, 3), rgb))
    g.create_from_pcd(pcd, 1.0)
    with torch.no_grad():
        g._scaling[:] = math.log(scale) if np.isscalar(scale) else \
            torch.log(torch.as_tensor(scale, dtype=torch.float32))[:, None]
        op = torch.as_tensor(opacity, dtype=torch.float32)
        g._opacity[:] = inverse_sigmoid(op).reshape(-1, 1)
    g.training_setup(OPT)
    return g


def loader_args(resolution=1, white=False):
    """The options scene.camera_loading.loadCam reads (images kept on the CPU)."""
    return types.SimpleNamespace(resolution=resolution, white_background=white,
                                 data_device="cpu")


def param_defaults(group, **overrides):
    """A parameter group's defaults (ModelParams, PipelineParams, ...) as the CLI parses them
    from an empty command line, with `overrides` set on top."""
    parser = ArgumentParser()
    params = group(parser)
    values = params.extract(parser.parse_args([]))
    for key, value in overrides.items():
        if not hasattr(values, key):
            raise KeyError(f"{group.__name__} has no --{key}")
        setattr(values, key, value)
    return values


def require_cpp():
    """Skips, saying why, where the C++ rasterizer cannot be built."""
    from gaussian_renderer import cpp_backend
    if not cpp_backend.is_available():
        pytest.skip("the C++ rasterizer could not be built here (C++ compiler and ninja needed)")
