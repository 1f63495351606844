"""COLMAP sparse-model records (cameras, images, points3D), camera models, rotations, and the
plausibility checks every reader applies to them (scene/input_checks.py holds the limits).

Layout follows COLMAP's `src/colmap/scene/reconstruction_io` formats.
"""
from typing import NamedTuple, Optional

import numpy as np

from scene.input_checks import (MAX_COORD, intrinsics_problem, position_problem,
                                quaternion_problem, size_problem)
from utils.errors import UserError, elide


class CameraModel(NamedTuple):
    model_id: int
    model_name: str
    num_params: int
    num_focals: int  # params start with f (1) or fx, fy (2), then cx, cy


CAMERA_MODELS = [
    CameraModel(0, "SIMPLE_PINHOLE", 3, 1),
    CameraModel(1, "PINHOLE", 4, 2),
    CameraModel(2, "SIMPLE_RADIAL", 4, 1),
    CameraModel(3, "RADIAL", 5, 1),
    CameraModel(4, "OPENCV", 8, 2),
    CameraModel(5, "OPENCV_FISHEYE", 8, 2),
    CameraModel(6, "FULL_OPENCV", 12, 2),
    CameraModel(7, "FOV", 5, 2),
    CameraModel(8, "SIMPLE_RADIAL_FISHEYE", 4, 1),
    CameraModel(9, "RADIAL_FISHEYE", 5, 1),
    CameraModel(10, "THIN_PRISM_FISHEYE", 12, 2),
    CameraModel(11, "RAD_TAN_THIN_PRISM_FISHEYE", 16, 2),
]
MODEL_BY_ID = {m.model_id: m for m in CAMERA_MODELS}
MODEL_BY_NAME = {m.model_name: m for m in CAMERA_MODELS}
# The rasterizer is a pure pinhole: anything with distortion must be undistorted first.
SUPPORTED_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")
# Integer ranges of COLMAP's binary format, also enforced on text files.
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)  # camera ids, track entries
UINT32_RANGE = (0, (1 << 32) - 1)  # image ids, an image's camera id
INT64_RANGE = (-(1 << 63), (1 << 63) - 1)  # point ids (COLMAP writes uint64; we hold int64)


class Camera(NamedTuple):
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # float64, layout of `model`


class Image(NamedTuple):
    id: int
    qvec: np.ndarray  # (4,) w, x, y, z of the world-to-camera rotation
    tvec: np.ndarray  # (3,) world-to-camera translation
    camera_id: int
    name: str
    xys: np.ndarray  # (K, 2) float64 2D observations
    point3D_ids: np.ndarray  # (K,) int64, -1 when not triangulated


class Points3D(NamedTuple):
    """All points of a model as arrays (faster and smaller than one object per point)."""
    ids: np.ndarray  # (N,) int64
    xyz: np.ndarray  # (N, 3) float64
    rgb: np.ndarray  # (N, 3) uint8
    errors: np.ndarray  # (N,) float64
    track_offsets: np.ndarray  # (N+1,) int64: track of point i is tracks[off[i]:off[i+1]]
    tracks: np.ndarray  # (M, 2) int32 (image_id, point2D_idx)

    @staticmethod
    def empty():
        return Points3D(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8),
                        np.zeros(0), np.zeros(1, np.int64), np.zeros((0, 2), np.int32))


# ---------------------------------------------------------------- rotations

def qvec2rotmat(qvec) -> np.ndarray:
    w, x, y, z = (float(v) for v in qvec)
    n = w * w + x * x + y * y + z * z
    if not np.isfinite(n) or n == 0.0:
        raise ValueError("quaternion is zero or not finite")
    s = 2.0 / n  # tolerate a slightly unnormalised quaternion
    return np.array([
        [1 - s * (y * y + z * z), s * (x * y - w * z), s * (x * z + w * y)],
        [s * (x * y + w * z), 1 - s * (x * x + z * z), s * (y * z - w * x)],
        [s * (x * z - w * y), s * (y * z + w * x), 1 - s * (x * x + y * y)],
    ])


def rotmat2qvec(R) -> np.ndarray:
    """Rotation matrix -> unit quaternion (w, x, y, z) with w >= 0 (eigenvector method)."""
    Rxx, Ryx, Rzx, Rxy, Ryy, Rzy, Rxz, Ryz, Rzz = np.asarray(R, np.float64).flat
    K = np.array([
        [Rxx - Ryy - Rzz, 0, 0, 0],
        [Ryx + Rxy, Ryy - Rxx - Rzz, 0, 0],
        [Rzx + Rxz, Rzy + Ryz, Rzz - Rxx - Ryy, 0],
        [Ryz - Rzy, Rzx - Rxz, Rxy - Ryx, Rxx + Ryy + Rzz]]) / 3.0
    vals, vecs = np.linalg.eigh(K)
    q = vecs[[3, 0, 1, 2], np.argmax(vals)]
    return -q if q[0] < 0 else q


# ---------------------------------------------------------------- checks

def _fail(path: str, entry: str, problem: str):
    raise UserError(f"invalid COLMAP file {path}: {entry}: {problem}")


def check_camera(cam: Camera, path: str, where: str = ""):
    """Size, finiteness and (for the pinhole part every model starts with) plausible focal
    lengths and principal point; `where` is e.g. " (line 3)"."""
    entry = f"camera {elide(cam.id, 24)}{where}"
    problem = size_problem(cam.width, cam.height)
    if problem is None and not np.all(np.isfinite(cam.params)):
        problem = "parameters are not finite"
    if problem is None:
        model = MODEL_BY_NAME[cam.model]
        p = [float(v) for v in cam.params]
        fx, fy = (p[0], p[0]) if model.num_focals == 1 else (p[0], p[1])
        cx, cy = p[model.num_focals], p[model.num_focals + 1]
        problem = intrinsics_problem(fx, fy, cx, cy, cam.width, cam.height)
    if problem:
        _fail(path, entry, problem)


def check_image(img: Image, path: str, where: str = ""):
    """A usable pose: a unit quaternion and a finite translation within MAX_COORD."""
    entry = f"image {elide(img.id, 24)} ({elide(img.name)}){where}"
    problem = (quaternion_problem(img.qvec)
               or position_problem(img.tvec, "translation"))
    if problem:
        _fail(path, entry, problem)


def check_points(points: Points3D, path: str, lines: Optional[np.ndarray] = None):
    """Finite coordinates within MAX_COORD (they reach the k-NN and the rasterizer).
    `lines`: the text line of each point, for the message."""
    bad = ~np.all(np.isfinite(points.xyz) & (np.abs(points.xyz) <= MAX_COORD), axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f" (line {int(lines[i])})" if lines is not None else ""
        _fail(path, f"point {int(points.ids[i])}{where}",
              f"coordinates {elide(points.xyz[i].tolist(), 80)} are not finite or beyond "
              f"+-{MAX_COORD:g} ({int(bad.sum())} such points)")
