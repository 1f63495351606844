"""COLMAP sparse models: read binary and text (cameras, images, points3D), write binary/text.

Layout follows COLMAP's `src/colmap/scene/reconstruction_io` formats. Readers never trust a
count in a file: every count is checked against the bytes that remain, so a truncated or
garbled file ends in a UserError naming it (no struct.error, no hang, no huge allocation).
"""
import os
import struct
from typing import Dict, NamedTuple, Tuple

import numpy as np

from utils.errors import UserError
from utils.io_utils import atomic_path


class CameraModel(NamedTuple):
    model_id: int
    model_name: str
    num_params: int


CAMERA_MODELS = [
    CameraModel(0, "SIMPLE_PINHOLE", 3),
    CameraModel(1, "PINHOLE", 4),
    CameraModel(2, "SIMPLE_RADIAL", 4),
    CameraModel(3, "RADIAL", 5),
    CameraModel(4, "OPENCV", 8),
    CameraModel(5, "OPENCV_FISHEYE", 8),
    CameraModel(6, "FULL_OPENCV", 12),
    CameraModel(7, "FOV", 5),
    CameraModel(8, "SIMPLE_RADIAL_FISHEYE", 4),
    CameraModel(9, "RADIAL_FISHEYE", 5),
    CameraModel(10, "THIN_PRISM_FISHEYE", 12),
    CameraModel(11, "RAD_TAN_THIN_PRISM_FISHEYE", 16),
]
MODEL_BY_ID = {m.model_id: m for m in CAMERA_MODELS}
MODEL_BY_NAME = {m.model_name: m for m in CAMERA_MODELS}
# The rasterizer is a pure pinhole: anything with distortion must be undistorted first.
SUPPORTED_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")
MAX_IMAGE_SIDE = 1 << 20  # sanity bound for width/height read from a file


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


# ---------------------------------------------------------------- binary reading

class _Reader:
    """Bounds-checked cursor over a whole file held in memory."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.buf = f.read()
        except OSError as e:
            raise UserError(f"cannot read COLMAP file {path}: {e.strerror}") from e
        self.pos = 0

    def fail(self, what: str):
        raise UserError(f"corrupt or truncated COLMAP file {self.path}: {what} "
                        f"(at byte {self.pos} of {len(self.buf)})")

    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize("<" + fmt)
        if self.remaining() < size:
            self.fail(f"file ends inside {what}")
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return vals

    def count(self, what: str, min_record_bytes: int) -> int:
        (n,) = self.unpack("Q", what)
        if min_record_bytes > 0 and n > self.remaining() // min_record_bytes:
            self.fail(f"{what} = {n} does not fit in the remaining {self.remaining()} bytes")
        return n

    def array(self, dtype, n: int, what: str) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = dtype.itemsize * n
        if self.remaining() < nbytes:
            self.fail(f"file ends inside {what}")
        a = np.frombuffer(self.buf, dtype=dtype, count=n, offset=self.pos).copy()
        self.pos += nbytes
        return a

    def cstring(self, what: str) -> str:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            self.fail(f"unterminated {what}")
        raw = self.buf[self.pos:end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8")

    def finish(self):
        if self.remaining() != 0:
            self.fail(f"{self.remaining()} unexpected trailing bytes")


def _check_camera(cam: Camera, path: str, where: str):
    if not (0 < cam.width <= MAX_IMAGE_SIDE and 0 < cam.height <= MAX_IMAGE_SIDE):
        raise UserError(f"corrupt COLMAP file {path}: camera {cam.id} has size "
                        f"{cam.width}x{cam.height}{where}")
    if not np.all(np.isfinite(cam.params)):
        raise UserError(f"corrupt COLMAP file {path}: camera {cam.id} has non-finite "
                        f"parameters{where}")


def _check_pose(img: Image, path: str, where: str):
    with np.errstate(over="ignore"):
        qn = float(np.dot(img.qvec, img.qvec))
    if not (np.isfinite(qn) and qn > 1e-12 and np.all(np.isfinite(img.tvec))):
        raise UserError(f"corrupt COLMAP file {path}: image {img.id} ({img.name!r}) has an "
                        f"invalid pose{where}")


def read_cameras_binary(path: str) -> Dict[int, Camera]:
    r = _Reader(path)
    n = r.count("number of cameras", 24)
    cameras = {}
    for _ in range(n):
        cam_id, model_id, width, height = r.unpack("iiQQ", "camera header")
        model = MODEL_BY_ID.get(model_id)
        if model is None:
            r.fail(f"unknown camera model id {model_id}")
        params = r.array("<f8", model.num_params, "camera parameters")
        cam = Camera(cam_id, model.model_name, width, height, params)
        _check_camera(cam, path, "")
        cameras[cam_id] = cam
    r.finish()
    return cameras


_POINT2D = np.dtype([("xy", "<f8", (2,)), ("id", "<i8")])


def read_images_binary(path: str) -> Dict[int, Image]:
    r = _Reader(path)
    # smallest record: id, qvec, tvec, camera id, 1-char name + NUL, point count
    n = r.count("number of images", 4 + 56 + 4 + 2 + 8)
    images = {}
    for _ in range(n):
        vals = r.unpack("I7dI", "image header")
        name = r.cstring("image name")
        k = r.count("number of 2D points", _POINT2D.itemsize)
        pts = r.array(_POINT2D, k, "2D points")
        img = Image(vals[0], np.array(vals[1:5]), np.array(vals[5:8]), vals[8], name,
                    pts["xy"].copy(), pts["id"].copy())
        _check_pose(img, path, "")
        images[img.id] = img
    r.finish()
    return images


def read_points3D_binary(path: str) -> Points3D:
    r = _Reader(path)
    header = struct.Struct("<Q3d3BdQ")  # id, xyz, rgb, error, track length (43 bytes)
    n = r.count("number of points", header.size)
    ids = np.empty(n, np.int64)
    xyz = np.empty((n, 3))
    rgb = np.empty((n, 3), np.uint8)
    err = np.empty(n)
    offsets = np.zeros(n + 1, np.int64)
    track_chunks = []
    buf = r.buf
    for i in range(n):
        if r.remaining() < header.size:
            r.fail("file ends inside a point record")
        pid, x, y, z, cr, cg, cb, e, tl = header.unpack_from(buf, r.pos)
        r.pos += header.size
        if tl > r.remaining() // 8:
            r.fail(f"track length {tl} of point {pid} does not fit in the file")
        if pid >= 1 << 63:  # stored as int64
            r.fail(f"point id {pid} out of range")
        ids[i] = pid
        xyz[i] = (x, y, z)
        rgb[i] = (cr, cg, cb)
        err[i] = e
        offsets[i + 1] = offsets[i] + tl
        if tl:
            track_chunks.append((r.pos, tl))
            r.pos += 8 * tl
    r.finish()
    tracks = np.empty((int(offsets[-1]), 2), np.int32)
    at = 0
    for pos, tl in track_chunks:
        tracks[at:at + tl] = np.frombuffer(buf, "<i4", 2 * tl, pos).reshape(tl, 2)
        at += tl
    return Points3D(ids, xyz, rgb, err, offsets, tracks)


# ---------------------------------------------------------------- text reading

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


def _bad_line(path, lineno, what):
    return UserError(f"cannot parse COLMAP file {path} line {lineno}: {what}")


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
            raise _bad_line(path, lineno, f"unknown camera model {el[1]!r}")
        if len(el) != 4 + model.num_params:
            raise _bad_line(path, lineno, f"{model.model_name} needs {model.num_params} "
                                          f"parameters, got {len(el) - 4}")
        try:
            cam = Camera(int(el[0]), model.model_name, int(el[2]), int(el[3]),
                         np.array([float(v) for v in el[4:]]))
        except ValueError as e:
            raise _bad_line(path, lineno, str(e)) from e
        _check_camera(cam, path, f" (line {lineno})")
        cameras[cam.id] = cam
    return cameras


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
            img_id, cam_id = int(el[0]), int(el[8])
        except ValueError as e:
            raise _bad_line(path, lineno, str(e)) from e
        name = " ".join(el[9:])
        xys, ids = np.zeros((0, 2)), np.zeros(0, np.int64)
        if i < len(lines):
            plineno, pline = lines[i]
            pel = pline.split()
            if len(pel) % 3 == 0:
                try:
                    arr = np.array([float(v) for v in pel]).reshape(-1, 3)
                    i += 1
                    xys, ids = arr[:, :2], arr[:, 2].astype(np.int64)
                except ValueError:
                    pass  # not a points line: the next image's header
        img = Image(img_id, np.array(vals[:4]), np.array(vals[4:7]), cam_id, name, xys, ids)
        _check_pose(img, path, f" (line {lineno})")
        images[img_id] = img
    return images


def read_points3D_text(path: str) -> Points3D:
    ids, xyz, rgb, err, offsets, tracks = [], [], [], [], [0], []
    for lineno, line in _text_lines(path):
        if not line:
            continue
        el = line.split()
        if len(el) < 8 or (len(el) - 8) % 2:
            raise _bad_line(path, lineno, "expected POINT3D_ID X Y Z R G B ERROR TRACK[]")
        try:
            ids.append(int(el[0]))
            xyz.append([float(v) for v in el[1:4]])
            c = [int(v) for v in el[4:7]]
            if not all(0 <= v <= 255 for v in c):
                raise ValueError(f"colour {c} outside 0..255")
            rgb.append(c)
            err.append(float(el[7]))
            t = [int(v) for v in el[8:]]
        except ValueError as e:
            raise _bad_line(path, lineno, str(e)) from e
        tracks.extend(t)
        offsets.append(offsets[-1] + len(t) // 2)
    if not ids:
        return Points3D.empty()
    return Points3D(np.array(ids, np.int64), np.array(xyz, np.float64).reshape(-1, 3),
                    np.array(rgb, np.uint8).reshape(-1, 3), np.array(err, np.float64),
                    np.array(offsets, np.int64), np.array(tracks, np.int32).reshape(-1, 2))


# ---------------------------------------------------------------- whole models

MODEL_FILES = ("cameras", "images", "points3D")


def detect_model_format(folder: str) -> str:
    """'.bin' if the binary cameras+images exist (preferred), else '.txt', else UserError."""
    for ext in (".bin", ".txt"):
        if all(os.path.isfile(os.path.join(folder, f + ext)) for f in ("cameras", "images")):
            return ext
    raise UserError(f"no COLMAP model (cameras.bin/images.bin or cameras.txt/images.txt) "
                    f"in {folder}")


def read_model(folder: str, ext: str = None) -> Tuple[Dict[int, Camera], Dict[int, Image],
                                                      Points3D]:
    """Reads a model folder; a missing points3D file gives an empty point set."""
    ext = ext or detect_model_format(folder)
    readers = {".bin": (read_cameras_binary, read_images_binary, read_points3D_binary),
               ".txt": (read_cameras_text, read_images_text, read_points3D_text)}[ext]
    cameras = readers[0](os.path.join(folder, "cameras" + ext))
    images = readers[1](os.path.join(folder, "images" + ext))
    pts_path = os.path.join(folder, "points3D" + ext)
    points = readers[2](pts_path) if os.path.isfile(pts_path) else Points3D.empty()
    return cameras, images, points


def pinhole_intrinsics(cam: Camera, path: str) -> Tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in COLMAP pixel convention (top-left pixel centre at (0.5, 0.5))."""
    if cam.model == "SIMPLE_PINHOLE":
        f, cx, cy = cam.params
        return float(f), float(f), float(cx), float(cy)
    if cam.model == "PINHOLE":
        fx, fy, cx, cy = cam.params
        return float(fx), float(fy), float(cx), float(cy)
    raise UserError(f"camera model {cam.model} (camera {cam.id} in {path}) is not supported: "
                    f"only PINHOLE and SIMPLE_PINHOLE; undistort the images first, e.g. with "
                    f"`colmap image_undistorter`")


# ---------------------------------------------------------------- writing

def write_cameras_binary(cameras: Dict[int, Camera], path: str):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(cameras)))
        for cam in cameras.values():
            model = MODEL_BY_NAME[cam.model]
            params = np.asarray(cam.params, "<f8")
            assert params.size == model.num_params, (cam.model, params.size)
            f.write(struct.pack("<iiQQ", cam.id, model.model_id, cam.width, cam.height))
            f.write(params.tobytes())


def write_images_binary(images: Dict[int, Image], path: str):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(images)))
        for img in images.values():
            f.write(struct.pack("<I7dI", img.id, *np.asarray(img.qvec, float),
                                *np.asarray(img.tvec, float), img.camera_id))
            f.write(img.name.encode("utf-8") + b"\0")
            pts = np.zeros(len(img.point3D_ids), _POINT2D)
            pts["xy"] = np.asarray(img.xys).reshape(-1, 2)
            pts["id"] = img.point3D_ids
            f.write(struct.pack("<Q", len(pts)))
            f.write(pts.tobytes())


def write_points3D_binary(points: Points3D, path: str):
    header = struct.Struct("<Q3d3BdQ")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(points.ids)))
        for i in range(len(points.ids)):
            a, b = int(points.track_offsets[i]), int(points.track_offsets[i + 1])
            f.write(header.pack(int(points.ids[i]), *points.xyz[i].astype(float),
                                *(int(c) for c in points.rgb[i]), float(points.errors[i]),
                                b - a))
            f.write(np.asarray(points.tracks[a:b], "<i4").tobytes())


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


def write_model(folder: str, cameras, images, points: Points3D, ext: str = ".bin"):
    os.makedirs(folder, exist_ok=True)
    writers = {".bin": (write_cameras_binary, write_images_binary, write_points3D_binary),
               ".txt": (write_cameras_text, write_images_text, write_points3D_text)}[ext]
    writers[0](cameras, os.path.join(folder, "cameras" + ext))
    writers[1](images, os.path.join(folder, "images" + ext))
    writers[2](points, os.path.join(folder, "points3D" + ext))
