"""Plausibility limits for cameras and points read from a user's files.

The readers (COLMAP, Blender, PLY) check every value against these before any maths, so a
garbled or hostile file ends in one line naming the file and the entry, not in a
ZeroDivisionError, a singular matrix or a run that "diverges at iteration 1". Each check
returns None when the value is fine, else a short description of the problem; the caller
adds which file and which entry it came from.
"""
import math
from typing import Optional, Tuple

import numpy as np

from utils.errors import elide

MAX_IMAGE_SIDE = 1 << 16  # pixels; also above JPEG's limit
# Positions (points, camera centres, translations): squares and sums of squares of these
# stay finite in float32 (max 3.4e38), which the rasterizer and k-NN compute in.
MAX_COORD = 1e15
# Focal length over image side: a field of view between ~0.0006 degrees and ~179.8 degrees.
FOCAL_RATIO = (1e-3, 1e5)
MIN_FOV, MAX_FOV = (2 * math.atan(0.5 / FOCAL_RATIO[1]), 2 * math.atan(0.5 / FOCAL_RATIO[0]))
# The principal point may be off-centre (crops), but not further than this many image sides.
MAX_PP_OFFSET = 10.0
QUAT_NORM = (0.5, 2.0)  # files store unit quaternions; anything far off is corruption


def size_problem(width, height) -> Optional[str]:
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        return f"image size {elide(width, 24)}x{elide(height, 24)} is outside 1..{MAX_IMAGE_SIDE}"
    return None


def _finite(*vals) -> bool:
    """Every value a real finite number (bools, strings, None and ints beyond 1.8e308 are not)."""
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            return False
        try:
            if not math.isfinite(v):
                return False
        except OverflowError:
            return False
    return True


def intrinsics_problem(fx, fy, cx, cy, width, height) -> Optional[str]:
    """Pinhole intrinsics in pixels of a width x height image."""
    problem = size_problem(width, height)
    if problem:
        return problem
    lo, hi = FOCAL_RATIO
    for name, f, side in (("fx", fx, width), ("fy", fy, height)):
        if not (_finite(f) and lo * side <= f <= hi * side):
            return (f"focal length {name}={elide(f, 24)} px is not in {lo:g}..{hi:g} times the "
                    f"image side ({side} px)")
    for name, c, side in (("cx", cx, width), ("cy", cy, height)):
        if not (_finite(c) and -MAX_PP_OFFSET * side <= c <= (1 + MAX_PP_OFFSET) * side):
            return (f"principal point {name}={elide(c, 24)} px is more than {MAX_PP_OFFSET:g} "
                    f"image sides ({side} px) away from the image")
    return None


def fov_problem(fov, what: str = "field of view") -> Optional[str]:
    if not (_finite(fov) and MIN_FOV <= fov <= MAX_FOV):
        return (f"{what} {elide(fov, 24)} is not an angle in radians between {MIN_FOV:.2g} and "
                f"{MAX_FOV:.4f} (0 < fov < pi)")
    return None


def quaternion_problem(q) -> Optional[str]:
    q = np.asarray(q, np.float64)
    if not np.all(np.isfinite(q)):
        return f"quaternion {elide(q.tolist(), 80)} is not finite"
    m = float(np.abs(q).max())
    norm = m * float(np.linalg.norm(q / m)) if m > 0 else 0.0  # scaled: no overflow
    if not QUAT_NORM[0] <= norm <= QUAT_NORM[1]:
        return f"quaternion {elide(q.tolist(), 80)} has norm {norm:.3g}, not a unit quaternion"
    return None


def position_problem(t, what: str) -> Optional[str]:
    t = np.asarray(t, np.float64)
    if not (np.all(np.isfinite(t)) and np.all(np.abs(t) <= MAX_COORD)):
        return f"{what} {elide(t.tolist(), 80)} is not finite or beyond +-{MAX_COORD:g}"
    return None


def rotation_problem(R, tol: float = 1e-2) -> Optional[str]:
    """A proper rotation (orthonormal, det +1) up to `tol`; R is (3,3) finite."""
    R = np.asarray(R, np.float64)
    if not np.all(np.isfinite(R)):
        return "rotation part is not finite"
    err = float(np.abs(R.T @ R - np.eye(3)).max()) if np.all(np.abs(R) < 1e100) else math.inf
    if not err <= tol or not abs(np.linalg.det(R) - 1.0) <= 3 * tol:
        return (f"rotation part {elide(np.round(R, 4).tolist(), 80)} is not a rotation "
                f"(scaled, skewed, mirrored or singular)")
    return None


def first_bad_row(mask: np.ndarray) -> Tuple[int, int]:
    """(index of the first True, number of True) of a (N,) bool array; (-1, 0) if none."""
    bad = np.flatnonzero(mask)
    return (int(bad[0]), len(bad)) if len(bad) else (-1, 0)
