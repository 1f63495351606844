"""Per-image inverse-depth maps for depth regularisation (`-d/--depths`), as the reference.

Format (the reference's): one 16-bit single-channel PNG per image, named as the image with a
`.png` extension, holding inverse depth times 2^16 up to an unknown per-image affine map (what a
monocular network predicts). For COLMAP scenes `sparse/0/depth_params.json` maps each image name
(without extension) to `{"scale": s, "offset": t}` such that `s * map + t` is COLMAP's inverse
depth (written by utils/make_depth_scale.py). A map whose scale lies outside
[0.2, 5] x the median of the positive scales is unreliable: it is loaded but never supervises.
"""
import json
import math
import os
from typing import Dict, Optional

import numpy as np
import torch
from PIL import Image

from utils.errors import UserError

DEPTH_PARAMS = "depth_params.json"
PNG_SCALE = float(2 ** 16)
# The reference's reliability band around the median scale.
RELIABLE_LOW, RELIABLE_HIGH = 0.2, 5.0
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


def depth_map_path(depths_dir: str, image_name: str) -> str:
    """Where the map of image `image_name` (file name without extension) lives."""
    return os.path.join(depths_dir, image_name + ".png")


def check_depth_map(path: str, image_path: str, image_size) -> None:
    """Header check at scene-read time: the file exists, is a 16-bit single-channel PNG and has
    its image's aspect ratio (it may be smaller or larger; it is resampled at load)."""
    if not os.path.isfile(path):
        raise UserError(f"depth map {path} for image {image_path} does not exist (-d/--depths)")
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
    except Exception as e:  # PIL raises many types for bad files
        raise UserError(f"cannot read depth map {path}: {e}") from e
    if mode not in _SIXTEEN_BIT:
        raise UserError(f"depth map {path} is a {mode} image; inverse-depth maps must be 16-bit "
                        "single-channel PNGs")
    iw, ih = image_size
    if abs(w / iw - h / ih) > 2.0 / min(w, h, iw, ih) + 1e-3:
        raise UserError(f"depth map {path} is {w}x{h} but its image {image_path} is {iw}x{ih} "
                        "(aspect ratio differs)")


def load_invdepth(path: str, size) -> torch.Tensor:
    """(1,H,W) float32 map / 2^16 at `size` = (W,H), bilinear."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im, dtype=np.float32)
    except Exception as e:
        raise UserError(f"cannot read depth map {path}: {e}") from e
    if arr.ndim != 2:
        raise UserError(f"depth map {path} must have one channel")
    img = Image.fromarray((arr / PNG_SCALE).astype(np.float32))  # mode F
    if img.size != tuple(size):
        img = img.resize(tuple(size), Image.Resampling.BILINEAR)
    out = np.maximum(np.asarray(img, dtype=np.float32), 0.0)
    return torch.from_numpy(out.copy())[None]


def save_invdepth_png(path: str, inv: np.ndarray):
    """(H,W) inverse depth -> the 16-bit PNG load_invdepth reads (x PNG_SCALE, rounded, clipped
    to the 16-bit range): how synthetic captures and benchmarks write exact depth maps."""
    arr = np.clip(np.round(inv * PNG_SCALE), 0, 2 ** 16 - 1).astype(np.uint16)
    Image.fromarray(arr).save(path)


def read_depth_params(model_dir: str) -> Dict[str, dict]:
    """`<model_dir>/depth_params.json` -> {image name: {scale, offset, med_scale}}."""
    path = os.path.join(model_dir, DEPTH_PARAMS)
    if not os.path.isfile(path):
        raise UserError(f"-d/--depths needs {path} (per-image scale and offset): run "
                        "python utils/make_depth_scale.py --base_dir <scene> --depths_dir <maps>")
    try:
        with open(path) as f:
            raw = json.load(f)
        params = {str(k): {"scale": float(v["scale"]), "offset": float(v["offset"])}
                  for k, v in raw.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path} is not a valid depth_params file: each image name needs "
                        f"{{\"scale\": s, \"offset\": t}} ({type(e).__name__}: {e})") from e
    for k, v in params.items():
        if not (math.isfinite(v["scale"]) and math.isfinite(v["offset"])):
            raise UserError(f"{path}: scale and offset of {k!r} must be finite numbers")
    scales = np.array([v["scale"] for v in params.values()], np.float64)
    med = float(np.median(scales[scales > 0])) if (scales > 0).any() else 0.0
    for v in params.values():
        v["med_scale"] = med
    return params


def params_for(params: Dict[str, dict], image_name: str, model_dir: str) -> dict:
    try:
        return params[image_name]
    except KeyError:
        raise UserError(f"{os.path.join(model_dir, DEPTH_PARAMS)} has no entry for image "
                        f"{image_name!r} (rerun utils/make_depth_scale.py)") from None


def is_reliable(p: Optional[dict]) -> bool:
    """The reference's rule: unreliable when the scale is outside [0.2, 5] x the median."""
    if p is None:
        return True
    return RELIABLE_LOW * p["med_scale"] <= p["scale"] <= RELIABLE_HIGH * p["med_scale"]


def apply_params(invdepth: torch.Tensor, p: Optional[dict]) -> torch.Tensor:
    """Map to COLMAP's inverse depth (left as is without params or with a failed fit)."""
    if p is None or p["scale"] <= 0:
        return invdepth
    return invdepth * p["scale"] + p["offset"]
