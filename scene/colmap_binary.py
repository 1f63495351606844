"""COLMAP binary models (cameras.bin, images.bin, points3D.bin): reading and writing.

Readers never trust a count in a file: every count is checked against the bytes that
remain, so a truncated or garbled file ends in a UserError naming it (no struct.error, no
hang, no huge allocation); every record is checked (scene/colmap_model.py) before use.
"""
import struct
from typing import Dict

import numpy as np

from scene.colmap_model import (MODEL_BY_ID, MODEL_BY_NAME, Camera, Image, Points3D,
                                check_camera, check_image, check_points)
from utils.errors import UserError, elide
from utils.io_utils import atomic_path


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
            self.fail(f"{what} {elide(raw)} is not valid UTF-8")

    def finish(self):
        if self.remaining() != 0:
            self.fail(f"{self.remaining()} unexpected trailing bytes")


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
        check_camera(cam, path)
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
        check_image(img, path)
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
    points = Points3D(ids, xyz, rgb, err, offsets, tracks)
    check_points(points, path)
    return points


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
