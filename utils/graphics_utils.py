"""Camera geometry helpers, with the reference codebase's names and conventions.

Conventions: `R` is the transpose of the world-to-camera rotation and `T` the world-to-camera
translation (COLMAP's tvec). Camera space is COLMAP's: x right, y down, z forward. Matrices
returned here are *untransposed*; `Camera` stores them transposed (row-vector convention).
"""
import math

import numpy as np
import torch


def geom_transform_points(points: torch.Tensor, transf_matrix: torch.Tensor) -> torch.Tensor:
    """(P,3) points through a transposed 4x4 matrix (row vectors), with perspective divide."""
    ones = torch.ones(points.shape[0], 1, dtype=points.dtype, device=points.device)
    points_out = torch.cat([points, ones], dim=1) @ transf_matrix
    return points_out[:, :3] / (points_out[:, 3:] + 1e-7)


def getWorld2View(R, t) -> np.ndarray:
    Rt = np.eye(4, dtype=np.float32)
    Rt[:3, :3] = np.asarray(R).transpose()
    Rt[:3, 3] = t
    return Rt


def getWorld2View2(R, t, translate=np.array([0.0, 0.0, 0.0]), scale=1.0) -> np.ndarray:
    """World-to-view 4x4 (float32); `translate`/`scale` move the camera centre as the
    reference codebase does (centre' = (centre + translate) * scale)."""
    Rt = np.eye(4)
    Rt[:3, :3] = np.asarray(R, np.float64).transpose()
    Rt[:3, 3] = np.asarray(t, np.float64)
    C2W = np.linalg.inv(Rt)
    C2W[:3, 3] = (C2W[:3, 3] + np.asarray(translate, np.float64)) * scale
    return np.linalg.inv(C2W).astype(np.float32)


def getProjectionMatrix(znear, zfar, fovX, fovY) -> torch.Tensor:
    """The reference codebase's symmetric projection (principal point at the image centre)."""
    tanHalfFovY = math.tan(fovY / 2)
    tanHalfFovX = math.tan(fovX / 2)
    top, right = tanHalfFovY * znear, tanHalfFovX * znear
    bottom, left = -top, -right
    P = torch.zeros(4, 4)
    z_sign = 1.0
    P[0, 0] = 2.0 * znear / (right - left)
    P[1, 1] = 2.0 * znear / (top - bottom)
    P[0, 2] = (right + left) / (right - left)
    P[1, 2] = (top + bottom) / (top - bottom)
    P[3, 2] = z_sign
    P[2, 2] = z_sign * zfar / (zfar - znear)
    P[2, 3] = -(zfar * znear) / (zfar - znear)
    return P


def getProjectionMatrixShift(znear, zfar, fx, fy, cx, cy, W, H) -> torch.Tensor:
    """Projection with a principal point (cx, cy) in COLMAP pixels (top-left pixel centre at
    (0.5, 0.5)), for an image of W x H pixels.

    Derived from the rasterizer's pixel rule u = ((ndc + 1) W - 1) / 2 (integer pixel centres)
    so that a camera-space point (x, y, z) lands at u = fx x/z + cx - 0.5, i.e. exactly on its
    COLMAP pixel coordinate minus 0.5: ndc_x = 2 fx x / (W z) + (2 cx / W - 1), with w = z.
    For cx = W/2, cy = H/2 this equals getProjectionMatrix(znear, zfar, focal2fov(fx, W),
    focal2fov(fy, H)).
    """
    P = torch.zeros(4, 4)
    P[0, 0] = 2.0 * fx / W
    P[1, 1] = 2.0 * fy / H
    P[0, 2] = 2.0 * cx / W - 1.0
    P[1, 2] = 2.0 * cy / H - 1.0
    P[3, 2] = 1.0
    P[2, 2] = zfar / (zfar - znear)
    P[2, 3] = -(zfar * znear) / (zfar - znear)
    return P


def fov2focal(fov, pixels):
    return pixels / (2 * math.tan(fov / 2))


def focal2fov(focal, pixels):
    return 2 * math.atan(pixels / (2 * focal))


# Below this accumulated alpha a pixel shows no surface (spawning uses a far depth there,
# coverage counts it as a hole).
ALPHA_SOLID = 0.5


def project_points(camera, xyz: torch.Tensor):
    """World points (M,3) -> pixel coordinates (M,2) in the renderer's convention (pixel (x, y)
    has its centre at integer (x, y)) and view-space depth (M,), in float64."""
    xyz = xyz.double()
    ones = torch.ones_like(xyz[:, :1])
    hom = torch.cat([xyz, ones], 1) @ camera.full_proj_transform.double().to(xyz.device)
    ndc = hom[:, :3] / (hom[:, 3:] + 1e-7)
    W, H = camera.image_width, camera.image_height
    uv = torch.stack([((ndc[:, 0] + 1) * W - 1) / 2, ((ndc[:, 1] + 1) * H - 1) / 2], 1)
    z = (torch.cat([xyz, ones], 1) @ camera.world_view_transform.double().to(xyz.device))[:, 2]
    return uv, z


def unproject_pixels(camera, xs: torch.Tensor, ys: torch.Tensor, depth: torch.Tensor):
    """Pixel centres (x, y) at view-space depth -> world points (M,3) on those pixels' rays.
    Works from full_proj_transform alone, so shifted principal points and MiniCams are fine."""
    W, H = camera.image_width, camera.image_height
    dev = depth.device
    inv = torch.linalg.inv(camera.full_proj_transform.double().to(dev))
    view = camera.world_view_transform.double().to(dev)
    ndc_x = (2 * xs.double().to(dev) + 1) / W - 1
    ndc_y = (2 * ys.double().to(dev) + 1) / H - 1
    ends = []
    for ndc_z in (0.0, 0.5):  # two points on each pixel's ray
        h = torch.stack([ndc_x, ndc_y, torch.full_like(ndc_x, ndc_z), torch.ones_like(ndc_x)],
                        1) @ inv
        ends.append(h[:, :3] / h[:, 3:])
    z0 = ends[0] @ view[:3, 2] + view[3, 2]
    z1 = ends[1] @ view[:3, 2] + view[3, 2]
    t = (depth.double() - z0) / (z1 - z0)  # view z is affine along the ray
    return (ends[0] + t[:, None] * (ends[1] - ends[0])).float()
