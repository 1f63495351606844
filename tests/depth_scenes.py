"""A synthetic COLMAP capture of a tilted plane with exact inverse-depth maps, for the depth
regularisation tests: cameras with identity rotation looking down +z at the plane
-0.3 x + z = 5 (world), so each pixel's inverse depth is known in closed form (and linear in
the pixel, hence exact under bilinear resampling)."""
import os

import numpy as np
from PIL import Image

from scene import colmap_loader as cl
from scene.depth_maps import save_invdepth_png

W, H, F = 40, 30, 36.0
NORMAL, OFFSET = np.array([-0.3, 0.0, 1.0]), 5.0


def true_invdepth(t, w=W, h=H):
    """(h,w) inverse depth of the plane seen by the camera with translation `t`, at pixel
    centres (COLMAP: pixel i spans [i, i+1))."""
    s = w / W
    xs = ((np.arange(w) + 0.5) / s - W / 2) / F
    ys = ((np.arange(h) + 0.5) / s - H / 2) / F
    x, y = np.meshgrid(xs, ys)
    r = np.stack([x, y, np.ones_like(x)], -1)
    return (r @ NORMAL) / (OFFSET + NORMAL @ t)




def make_plane_scene(root, n_views=5, observations=True, affine=None, depth_size=(W, H)):
    """Writes images/, sparse/0 and depths/ (maps = a * true inverse depth + b per view, with
    (a, b) from `affine` or a default per view). Returns (root, translations, affines)."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "depths"), exist_ok=True)
    model = os.path.join(root, "sparse", "0")
    os.makedirs(model, exist_ok=True)
    # Points on the plane in front of every camera.
    px = rng.uniform(-1.5, 1.5, 400)
    py = rng.uniform(-1.0, 1.0, 400)
    pts = np.stack([px, py, OFFSET + 0.3 * px], 1)
    cams, imgs, trans, affines = {}, {}, [], []
    for k in range(n_views):
        t = np.array([0.2 * (k - n_views // 2), 0.1 * (k % 2), 0.0])
        trans.append(t)
        cams[k + 1] = cl.Camera(k + 1, "PINHOLE", W, H, np.array([F, F, W / 2, H / 2]))
        xyz = pts + t
        uv = np.stack([F * xyz[:, 0] / xyz[:, 2] + W / 2, F * xyz[:, 1] / xyz[:, 2] + H / 2], 1)
        vis = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
        xys = uv[vis] if observations else np.zeros((0, 2))
        ids = (np.nonzero(vis)[0] + 1).astype(np.int64) if observations else np.zeros(0, np.int64)
        name = f"view_{k:02d}"
        imgs[k + 1] = cl.Image(k + 1, np.array([1.0, 0, 0, 0]), t, k + 1, name + ".png", xys, ids)
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(
            os.path.join(root, "images", name + ".png"))
        a, b = affine[k] if affine is not None else (0.5 + 0.3 * k, 0.05 * k)
        affines.append((a, b))
        save_invdepth_png(os.path.join(root, "depths", name + ".png"),
                          a * true_invdepth(t, *depth_size) + b)
    points = cl.Points3D(np.arange(1, len(pts) + 1, dtype=np.int64), pts,
                         np.full((len(pts), 3), 128, np.uint8), np.zeros(len(pts)),
                         np.zeros(len(pts) + 1, np.int64), np.zeros((0, 2), np.int32))
    cl.write_model(model, cams, imgs, points, ".bin")
    return root, trans, affines
