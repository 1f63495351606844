"""COLMAP sparse models: whole-model reading/writing (binary or text) and pinhole intrinsics.

The records and checks live in scene/colmap_model.py, the file formats in
scene/colmap_binary.py and scene/colmap_text.py; this module is the entry point the scene
readers and scripts import (it re-exports those names).
"""
import os
from typing import Dict, Tuple

from scene.colmap_binary import (read_cameras_binary, read_images_binary,  # noqa: F401
                                 read_points3D_binary, write_cameras_binary,
                                 write_images_binary, write_points3D_binary)
from scene.colmap_model import (CAMERA_MODELS, MODEL_BY_ID, MODEL_BY_NAME,  # noqa: F401
                                SUPPORTED_MODELS, Camera, CameraModel, Image, Points3D,
                                qvec2rotmat, rotmat2qvec)
from scene.colmap_text import (read_cameras_text, read_images_text,  # noqa: F401
                               read_points3D_text, write_cameras_text, write_images_text,
                               write_points3D_text)
from scene.input_checks import MAX_IMAGE_SIDE  # noqa: F401
from utils.errors import UserError

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


def write_model(folder: str, cameras, images, points: Points3D, ext: str = ".bin"):
    os.makedirs(folder, exist_ok=True)
    writers = {".bin": (write_cameras_binary, write_images_binary, write_points3D_binary),
               ".txt": (write_cameras_text, write_images_text, write_points3D_text)}[ext]
    writers[0](cameras, os.path.join(folder, "cameras" + ext))
    writers[1](images, os.path.join(folder, "images" + ext))
    writers[2](points, os.path.join(folder, "points3D" + ext))
