"""COLMAP text models (cameras.txt, images.txt, points3D.txt): reading and writing.

Every value is parsed and range-checked per line, so a bad entry ends in a UserError naming
the file and the line (numbers and names echoed elided, never whole).
"""
from typing import Dict

import numpy as np

from scene.colmap_model import (INT32_RANGE, INT64_RANGE, MODEL_BY_NAME, UINT32_RANGE, Camera,
                                Image, Points3D, check_camera, check_image, check_points)
from utils.errors import UserError, elide, one_line
from utils.io_utils import atomic_path


def _text_lines(path: str):
    """(line number, stripped line) for every non-comment line, empty lines included."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"cannot read COLMAP file {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise UserError(f"COLMAP file {path} is not UTF-8 text") from e
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line.startswith("#"):
            yield i, line


def _bad_line(path, lineno, what: str):
    return UserError(f"cannot parse COLMAP file {path} line {lineno}: {one_line(what, 160)}")


def _int(token: str, bounds, what: str) -> int:
    """int(token) within bounds (inclusive), else ValueError naming `what`."""
    v = int(token)
    if not bounds[0] <= v <= bounds[1]:
        raise ValueError(f"{what} {elide(token, 40)} is outside {bounds[0]}..{bounds[1]}")
    return v


def read_cameras_text(path: str) -> Dict[int, Camera]:
    cameras = {}
    for lineno, line in _text_lines(path):
        if not line:
            continue
        el = line.split()
        if len(el) < 4:
            raise _bad_line(path, lineno, "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
        model = MODEL_BY_NAME.get(el[1])
        if model is None:
            raise _bad_line(path, lineno, f"unknown camera model {elide(el[1])}")
        if len(el) != 4 + model.num_params:
            raise _bad_line(path, lineno, f"{model.model_name} needs {model.num_params} "
                                          f"parameters, got {len(el) - 4}")
        try:
            cam = Camera(_int(el[0], INT32_RANGE, "camera id"), model.model_name,
                         _int(el[2], (0, 1 << 63), "width"), _int(el[3], (0, 1 << 63), "height"),
                         np.array([float(v) for v in el[4:]]))
        except ValueError as e:
            raise _bad_line(path, lineno, str(e)) from e
        check_camera(cam, path, f" (line {lineno})")
        cameras[cam.id] = cam
    return cameras


def _points2d(tokens):
    """A POINTS2D line as (xys, ids), or None if `tokens` is not one (3k numbers)."""
    if len(tokens) % 3:
        return None
    try:
        xys = np.array([float(v) for i, v in enumerate(tokens) if i % 3 != 2]).reshape(-1, 2)
        ids = [int(v) for v in tokens[2::3]]
    except ValueError:
        return None
    return xys, ids


def read_images_text(path: str) -> Dict[int, Image]:
    """Each image is a header line followed by its POINTS2D line (empty when it has no
    points). A line is taken as a points line only if it is 3k numbers, so files that omit
    empty points lines still parse."""
    images = {}
    lines = list(_text_lines(path))
    i = 0
    while i < len(lines):
        lineno, line = lines[i]
        i += 1
        if not line:
            continue
        el = line.split()
        if len(el) < 10:
            raise _bad_line(path, lineno, "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        try:
            vals = [float(v) for v in el[1:8]]
            img_id = _int(el[0], UINT32_RANGE, "image id")
            cam_id = _int(el[8], UINT32_RANGE, "camera id")
        except ValueError as e:
            raise _bad_line(path, lineno, str(e)) from e
        name = " ".join(el[9:])
        xys, ids = np.zeros((0, 2)), np.zeros(0, np.int64)
        parsed = _points2d(lines[i][1].split()) if i < len(lines) else None
        if parsed is not None:
            plineno = lines[i][0]
            i += 1
            xys, id_list = parsed
            if not np.all(np.isfinite(xys)):
                raise _bad_line(path, plineno, "a 2D point is not finite")
            if id_list and not (INT64_RANGE[0] <= min(id_list) and max(id_list) <= INT64_RANGE[1]):
                raise _bad_line(path, plineno, "a POINT3D_ID is outside int64")
            ids = np.array(id_list, np.int64)
        img = Image(img_id, np.array(vals[:4]), np.array(vals[4:7]), cam_id, name, xys, ids)
        check_image(img, path, f" (line {lineno})")
        images[img_id] = img
    return images


def read_points3D_text(path: str) -> Points3D:
    ids, xyz, rgb, err, offsets, tracks, linenos = [], [], [], [], [0], [], []
    for lineno, line in _text_lines(path):
        if not line:
            continue
        el = line.split()
        if len(el) < 8 or (len(el) - 8) % 2:
            raise _bad_line(path, lineno, "expected POINT3D_ID X Y Z R G B ERROR TRACK[]")
        try:
            ids.append(_int(el[0], INT64_RANGE, "point id"))
            xyz.append([float(v) for v in el[1:4]])
            rgb.append([_int(v, (0, 255), "colour") for v in el[4:7]])
            err.append(float(el[7]))
            t = [_int(v, INT32_RANGE, "track entry") for v in el[8:]]
        except ValueError as e:
            raise _bad_line(path, lineno, str(e)) from e
        tracks.extend(t)
        offsets.append(offsets[-1] + len(t) // 2)
        linenos.append(lineno)
    if not ids:
        return Points3D.empty()
    points = Points3D(np.array(ids, np.int64), np.array(xyz, np.float64).reshape(-1, 3),
                      np.array(rgb, np.uint8).reshape(-1, 3), np.array(err, np.float64),
                      np.array(offsets, np.int64), np.array(tracks, np.int32).reshape(-1, 2))
    check_points(points, path, np.array(linenos))
    return points


def write_cameras_text(cameras: Dict[int, Camera], path: str):
    lines = ["# Camera list with one line of data per camera:",
             "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    for cam in cameras.values():
        lines.append(" ".join([str(cam.id), cam.model, str(cam.width), str(cam.height)]
                              + [repr(float(p)) for p in cam.params]))
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_images_text(images: Dict[int, Image], path: str):
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for img in images.values():
        lines.append(" ".join([str(img.id)] + [repr(float(v)) for v in img.qvec]
                              + [repr(float(v)) for v in img.tvec]
                              + [str(img.camera_id), img.name]))
        lines.append(" ".join(f"{float(x)!r} {float(y)!r} {int(p)}"
                              for (x, y), p in zip(img.xys, img.point3D_ids)))
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_points3D_text(points: Points3D, path: str):
    lines = ["# 3D point list with one line of data per point:",
             "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
    for i in range(len(points.ids)):
        a, b = int(points.track_offsets[i]), int(points.track_offsets[i + 1])
        lines.append(" ".join([str(int(points.ids[i]))]
                              + [repr(float(v)) for v in points.xyz[i]]
                              + [str(int(c)) for c in points.rgb[i]]
                              + [repr(float(points.errors[i]))]
                              + [str(int(v)) for v in points.tracks[a:b].ravel()]))
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
