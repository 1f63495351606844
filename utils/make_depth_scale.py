"""Fit each image's inverse-depth map to COLMAP's scale (the reference's make_depth_scale.py):

    python utils/make_depth_scale.py --base_dir <scene> --depths_dir <scene>/depths

Writes `<scene>/sparse/0/depth_params.json` = {image name: {"scale": s, "offset": t}} with
`s * map + t` ~ 1 / COLMAP depth. Per image, the sparse points it observes (its 2D observations
in images.bin) give COLMAP's inverse depth at their pixels; where images.bin lists no
observations, every point that projects into the image in front of the camera is used. The fit
matches medians and mean absolute deviations (robust to outliers), as the reference; with 10
points or fewer, or a flat inverse-depth range, the fit fails and scale = offset = 0 (such
maps then count as unreliable in training). Producing the maps (a monocular depth network)
is the user's step, as in the reference.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scene.colmap_loader import pinhole_intrinsics, qvec2rotmat, read_model  # noqa: E402
from scene.dataset_readers import find_colmap_model  # noqa: E402
from scene.depth_maps import (DEPTH_PARAMS, check_depth_map, depth_map_path,  # noqa: E402
                              load_invdepth)
from utils.errors import UserError, user_errors_exit  # noqa: E402
from utils.io_utils import atomic_write_json  # noqa: E402

MIN_POINTS = 10


def bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample (H,W) `img` at pixel-centre coordinates (x, y), edges replicated."""
    H, W = img.shape
    x = np.clip(x, 0.0, W - 1.0)
    y = np.clip(y, 0.0, H - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), W - 2) if W > 1 else np.zeros(len(x), np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), H - 2) if H > 1 else np.zeros(len(y), np.int64)
    fx, fy = x - x0, y - y0
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def fit_scale_offset(colmap_inv: np.ndarray, mono_inv: np.ndarray):
    """(scale, offset) matching median and mean absolute deviation; (0, 0) when it cannot."""
    if len(colmap_inv) <= MIN_POINTS or colmap_inv.max() - colmap_inv.min() <= 1e-3:
        return 0.0, 0.0
    t_colmap = np.median(colmap_inv)
    s_colmap = np.mean(np.abs(colmap_inv - t_colmap))
    t_mono = np.median(mono_inv)
    s_mono = np.mean(np.abs(mono_inv - t_mono))
    if not s_mono > 0:
        return 0.0, 0.0
    scale = s_colmap / s_mono
    return float(scale), float(t_colmap - t_mono * scale)


def image_points(img, cam, points, index_of):
    """(xy in COLMAP pixels of the camera's size, camera-space z) of the points image `img`
    observes, or of all points projecting into it in front of the camera."""
    R, t = qvec2rotmat(img.qvec), np.asarray(img.tvec, np.float64)
    ids = np.asarray(img.point3D_ids, np.int64)
    if len(ids):
        keep = ids >= 0
        idx = np.array([index_of.get(int(i), -1) for i in ids[keep]], np.int64)
        ok = idx >= 0
        xyz = points.xyz[idx[ok]] @ R.T + t
        return np.asarray(img.xys, np.float64)[keep][ok], xyz[:, 2]
    fx, fy, cx, cy = pinhole_intrinsics(cam, "")
    xyz = points.xyz @ R.T + t
    z = xyz[:, 2]
    front = z > 1e-6
    xyz, z = xyz[front], z[front]
    xy = np.stack([fx * xyz[:, 0] / z + cx, fy * xyz[:, 1] / z + cy], 1)
    inside = ((xy[:, 0] >= 0) & (xy[:, 0] < cam.width) & (xy[:, 1] >= 0)
              & (xy[:, 1] < cam.height))
    return xy[inside], z[inside]


def depth_scales(base_dir: str, depths_dir: str, images_dir: str = "images", progress=True):
    """{image name: {"scale", "offset"}} for every registered image."""
    from tqdm import tqdm
    model_dir = find_colmap_model(base_dir)
    cameras, images, points = read_model(model_dir)
    index_of = {int(i): k for k, i in enumerate(points.ids)}
    out = {}
    for img in tqdm(sorted(images.values(), key=lambda im: im.name), desc="Depth scales",
                    disable=not progress):
        cam = cameras[img.camera_id]
        name = os.path.splitext(os.path.basename(img.name))[0]
        path = depth_map_path(depths_dir, name)
        check_depth_map(path, os.path.join(base_dir, images_dir, img.name),
                        (cam.width, cam.height))
        mono = load_invdepth(path, _file_size(path))[0].numpy().astype(np.float64)
        xy, z = image_points(img, cam, points, index_of)
        s = mono.shape[0] / cam.height
        # COLMAP pixel coordinates put the top-left pixel's centre at (0.5, 0.5).
        px, py = xy[:, 0] * s - 0.5, xy[:, 1] * s - 0.5
        valid = ((px >= -0.5) & (py >= -0.5) & (px < mono.shape[1] - 0.5)
                 & (py < mono.shape[0] - 0.5) & (z > 0))
        colmap_inv = 1.0 / z[valid]
        scale, offset = fit_scale_offset(colmap_inv, bilinear(mono, px[valid], py[valid])
                                         if valid.any() else np.zeros(0))
        out[name] = {"scale": scale, "offset": offset}
    return out, model_dir


def _file_size(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.size


def main(argv=None):
    ap = argparse.ArgumentParser(description="Per-image scale/offset of inverse-depth maps "
                                             "to COLMAP's scale (writes sparse/0/depth_params.json)")
    ap.add_argument("--base_dir", required=True, help="the COLMAP scene folder (with sparse/)")
    ap.add_argument("--depths_dir", required=True,
                    help="folder of 16-bit inverse-depth PNGs named as the images")
    ap.add_argument("--model_type", default="bin", choices=("bin", "txt"),
                    help="accepted for the reference's command line; the format is detected")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    with user_errors_exit("make_depth_scale.py"):
        if not os.path.isdir(args.depths_dir):
            raise UserError(f"--depths_dir {args.depths_dir} is not a folder")
        params, model_dir = depth_scales(args.base_dir, args.depths_dir, progress=not args.quiet)
        path = os.path.join(model_dir, DEPTH_PARAMS)
        atomic_write_json(path, params)
        failed = sum(1 for p in params.values() if p["scale"] <= 0)
        if not args.quiet:
            print(f"Wrote {path}: {len(params)} images"
                  + (f", {failed} without a fit (too few points)" if failed else ""))


if __name__ == "__main__":
    main()
