"""Procedural multi-view demo scene in COLMAP layout (PINHOLE cameras, binary model).

    python scripts/make_demo_scene.py --out demo_data/scene [--views 48] [--width 160
        --height 120] [--seed 0]

Writes `<out>/images/view_NNN.png` and `<out>/sparse/0/{cameras,images,points3D}.bin`.
The scene is ray-cast analytically in numpy: a stripe-textured box and a colourful sphere on
a checker-tiled ground disc, inside a far "sky" sphere with a gradient and soft bands, so
every pixel has a colour. Shading is Lambertian (view independent), so the views are
consistent. Cameras sit on a ring at two heights looking at the centre; their principal
point is slightly off-centre on purpose (it exercises the projection's shift). The sparse
points are sampled on the surfaces and on the sky's textured band (as SfM would find them; with
48 views this makes a fair capture: held-out views score about as well as training views) with
their shaded colours and a little noise, and carry
COLMAP tracks (the views where they are unoccluded). Deterministic given the seed.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image as PILImage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scene.colmap_loader import Camera, Image, Points3D, rotmat2qvec, write_model  # noqa: E402
from utils.errors import UserError, user_errors_exit  # noqa: E402
from utils.image_utils import to_uint8  # noqa: E402
from utils.io_utils import atomic_path, ensure_writable_dir  # noqa: E402

LIGHT = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])
DISC_R = 2.5
BOX_C, BOX_H, BOX_ANGLE = np.array([0.55, 0.3, 0.35]), np.array([0.35, 0.3, 0.35]), 0.5
SPH_C, SPH_R = np.array([-0.55, -0.35, 0.45]), 0.45
SKY_R = 15.0
PALETTE = np.array([[0.85, 0.33, 0.25], [0.95, 0.78, 0.3], [0.3, 0.62, 0.4],
                    [0.25, 0.45, 0.8], [0.6, 0.35, 0.7], [0.9, 0.9, 0.85]])
_BOX_ROT = np.array([[np.cos(BOX_ANGLE), -np.sin(BOX_ANGLE), 0],
                     [np.sin(BOX_ANGLE), np.cos(BOX_ANGLE), 0], [0, 0, 1]])  # local -> world


def _hsv(h, s, v):
    """Vectorised HSV -> RGB, h in [0,1)."""
    k = (np.stack([5.0, 3.0, 1.0], -1) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0, 1)


# ---------------------------------------------------------------- textures (world points)

def ground_albedo(p):
    i, j = np.floor(p[:, 0] / 0.25).astype(int), np.floor(p[:, 1] / 0.25).astype(int)
    base = PALETTE[(i * 7 + j * 13) % len(PALETTE)]
    ring = 0.85 + 0.15 * np.cos(np.hypot(p[:, 0], p[:, 1]) * 9.0)
    return base * ring[:, None] * np.where((i + j) % 2 == 0, 1.0, 0.75)[:, None]


def box_albedo(p):
    q = (p - BOX_C) @ _BOX_ROT  # world -> local
    face = np.argmax(np.abs(q) / BOX_H, axis=1)
    along = np.where(face == 2, q[:, 0] + q[:, 1], q[:, 2])
    stripe = (np.floor(along * 8.0) % 2).astype(bool)
    c0 = PALETTE[(face * 2) % len(PALETTE)]
    c1 = PALETTE[(face * 2 + 3) % len(PALETTE)]
    return np.where(stripe[:, None], c0, c1)


def sphere_albedo(p):
    q = (p - SPH_C) / SPH_R
    lon = (np.arctan2(q[:, 1], q[:, 0]) / (2 * np.pi)) % 1.0
    lat = np.arcsin(np.clip(q[:, 2], -1, 1))
    band = (np.floor(lat * 6 / np.pi + 3) % 2)
    checker = (np.floor(lon * 12) + band) % 2
    return _hsv((lon + 0.15 * band) % 1.0, 0.55 + 0.3 * checker, 0.6 + 0.35 * (1 - checker))


def sky_color(d):
    elev = np.clip(d[:, 2], -1, 1)
    t = (elev + 1) / 2
    base = (1 - t)[:, None] * np.array([0.55, 0.5, 0.45]) + t[:, None] * np.array(
        [0.35, 0.55, 0.9])
    az = np.arctan2(d[:, 1], d[:, 0])
    bands = 0.5 + 0.5 * np.sin(az * 5 + 3 * np.sin(elev * 4)) * np.cos(elev * 7)
    return base * (0.8 + 0.25 * bands[:, None])


def shade(albedo, normal):
    return albedo * (0.4 + 0.6 * np.clip(normal @ LIGHT, 0, None))[:, None]


# ---------------------------------------------------------------- ray casting

def _hit_ground(o, d):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[:, 2] < -1e-9, -o[:, 2] / d[:, 2], np.inf)
    p = o + d * np.where(np.isfinite(t), t, 0)[:, None]
    return np.where(np.hypot(p[:, 0], p[:, 1]) < DISC_R, t, np.inf)


def _hit_sphere(o, d, c, r, far=False):
    oc = o - c
    b = np.einsum("ij,ij->i", oc, d)
    disc = b * b - (np.einsum("ij,ij->i", oc, oc) - r * r)
    s = np.sqrt(np.clip(disc, 0, None))
    t = -b + s if far else np.where(-b - s > 1e-6, -b - s, -b + s)
    return np.where((disc >= 0) & (t > 1e-6), t, np.inf)


def _hit_box(o, d):
    ol, dl = (o - BOX_C) @ _BOX_ROT, d @ _BOX_ROT
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-BOX_H - ol) / dl, (BOX_H - ol) / dl
    tmin = np.nanmax(np.minimum(t1, t2), axis=1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=1)
    return np.where((tmax >= tmin) & (tmin > 1e-6), tmin, np.inf)


def cast(o, d):
    """Colour (N,3) and hit distance (N,) along unit rays."""
    ts = np.stack([_hit_ground(o, d), _hit_box(o, d), _hit_sphere(o, d, SPH_C, SPH_R),
                   _hit_sphere(o, d, np.zeros(3), SKY_R, far=True)], 1)
    which = np.argmin(ts, axis=1)
    t = ts[np.arange(len(o)), which]
    p = o + d * t[:, None]
    col = np.empty((len(o), 3))
    for k, fn in enumerate((_color_ground, _color_box, _color_sphere)):
        m = which == k
        col[m] = fn(p[m])
    col[which == 3] = sky_color(d[which == 3])
    return col, t


def _color_ground(p):
    return shade(ground_albedo(p), np.tile([0.0, 0.0, 1.0], (len(p), 1)))


def _box_normal(p):
    q = (p - BOX_C) @ _BOX_ROT
    face = np.argmax(np.abs(q) / BOX_H, axis=1)
    n = np.zeros_like(q)
    n[np.arange(len(q)), face] = np.sign(q[np.arange(len(q)), face])
    return n @ _BOX_ROT.T


def _color_box(p):
    return shade(box_albedo(p), _box_normal(p))


def _color_sphere(p):
    return shade(sphere_albedo(p), (p - SPH_C) / SPH_R)


# ---------------------------------------------------------------- cameras and points

def ring_cameras(views, rng):
    """World-to-camera (R, t) on a ring at two heights, looking at the scene centre."""
    target = np.array([0.0, 0.0, 0.35])
    poses = []
    for k in range(views):
        az = 2 * np.pi * k / views + rng.uniform(-0.05, 0.05)
        elev = np.radians(22.0 if k % 2 == 0 else 36.0) + rng.uniform(-0.03, 0.03)
        dist = 4.0 + rng.uniform(-0.2, 0.2)
        C = target + dist * np.array([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az),
                                      np.sin(elev)])
        f = (target - C) / np.linalg.norm(target - C)
        right = np.cross(f, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(f, right)
        R = np.stack([right, down, f])  # rows: camera axes x right, y down, z forward
        poses.append((R, -R @ C))
    return poses


def sample_surface_points(n, rng):
    """(n,3) points on the visible surfaces, area-weighted, with their shaded colours; a
    fifth on the sky sphere's textured band that the cameras see (SfM finds points on a
    textured far background too, and without them novel views show the background wrong)."""
    n_ground, n_box, n_sky = int(n * 0.36), int(n * 0.24), int(n * 0.2)
    n_sph = n - n_ground - n_box - n_sky
    r = DISC_R * np.sqrt(rng.random(n_ground))
    a = 2 * np.pi * rng.random(n_ground)
    pg = np.stack([r * np.cos(a), r * np.sin(a), np.zeros(n_ground)], 1)
    # box: 5 faces (no bottom), chosen by area
    areas = np.array([BOX_H[1] * BOX_H[2]] * 2 + [BOX_H[0] * BOX_H[2]] * 2
                     + [BOX_H[0] * BOX_H[1]])
    face = rng.choice(5, n_box, p=areas / areas.sum())
    q = rng.uniform(-1, 1, (n_box, 3)) * BOX_H
    axis = np.array([0, 0, 1, 1, 2])[face]
    q[np.arange(n_box), axis] = np.array([-1, 1, -1, 1, 1])[face] * BOX_H[axis]
    pb = q @ _BOX_ROT.T + BOX_C
    v = rng.normal(size=(n_sph, 3))
    ps = SPH_C + SPH_R * v / np.linalg.norm(v, axis=1, keepdims=True)
    az = 2 * np.pi * rng.random(n_sky)
    elev = np.arcsin(rng.uniform(np.sin(-0.45), np.sin(0.75), n_sky))  # the band in view
    d = np.stack([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az), np.sin(elev)], 1)
    pk = SKY_R * d
    pts = np.concatenate([pg, pb, ps, pk])
    cols = np.concatenate([_color_ground(pg), _color_box(pb), _color_sphere(ps), sky_color(d)])
    return pts, cols


def make_demo_scene(out, views=48, width=160, height=120, seed=0, n_points=4000):
    if views < 2 or width < 8 or height < 8:
        raise UserError("make_demo_scene: need --views >= 2 and --width/--height >= 8")
    ensure_writable_dir(out)
    img_dir, model_dir = os.path.join(out, "images"), os.path.join(out, "sparse", "0")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(model_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    fx = fy = 0.9 * width
    cx, cy = width / 2 + 0.02 * width, height / 2 - 0.015 * height  # deliberately off-centre
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    poses = ring_cameras(views, rng)
    pts, cols = sample_surface_points(n_points, rng)
    pts_noisy = pts + rng.normal(scale=0.004, size=pts.shape)
    cols_noisy = np.clip(cols + rng.normal(scale=0.02, size=cols.shape), 0, 1)

    ss = 2  # 2x2 supersampling; COLMAP pixel (i, j) covers [i, i+1) x [j, j+1)
    us, vs = np.meshgrid((np.arange(width * ss) + 0.5) / ss, (np.arange(height * ss) + 0.5) / ss)
    pix = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)], 1)
    rays_cam = pix @ np.linalg.inv(K).T
    norm = np.linalg.norm(rays_cam, axis=1)
    tracks = [[] for _ in range(len(pts))]
    images = {}
    for k, (R, t) in enumerate(poses):
        C = -R.T @ t
        d = (rays_cam / norm[:, None]) @ R  # camera -> world: R^T x
        col, dist = cast(np.broadcast_to(C, d.shape).copy(), d)
        zbuf = (dist / norm).reshape(height * ss, width * ss)  # depth along the optical axis
        img = col.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
        name = f"view_{k:03d}.png"
        with atomic_path(os.path.join(img_dir, name)) as tmp:
            PILImage.fromarray(to_uint8(img, "half_even")).save(
                tmp, format="PNG")
        # track: the exact surface point is unoccluded at its own pixel in this view
        pc = pts @ R.T + t
        z = pc[:, 2]
        uv = (pc @ K.T)[:, :2] / np.where(z > 1e-6, z, 1.0)[:, None]
        inside = (z > 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (
            uv[:, 1] < height)
        vis = np.zeros(len(pts), bool)
        ii = np.nonzero(inside)[0]
        px = np.clip((uv[ii] * ss).astype(int), 0, [width * ss - 1, height * ss - 1])
        vis[ii] = z[ii] <= zbuf[px[:, 1], px[:, 0]] * 1.02 + 0.01
        idx = np.nonzero(vis)[0]
        for j, p in enumerate(idx):
            tracks[p].append((k + 1, j))
        images[k + 1] = Image(k + 1, rotmat2qvec(R), t, 1, name, uv[idx].copy(),
                              idx.astype(np.int64))  # point ids are index+1 (fixed below)

    keep = np.array([len(tr) >= 2 for tr in tracks])  # as SfM: seen at least twice
    new_id = np.cumsum(keep)  # 1-based ids for kept points
    for k, im in images.items():
        ids = np.where(keep[im.point3D_ids], new_id[im.point3D_ids], -1).astype(np.int64)
        images[k] = im._replace(point3D_ids=ids)
    kept = np.nonzero(keep)[0]
    offsets = np.concatenate([[0], np.cumsum([len(tracks[i]) for i in kept])]).astype(np.int64)
    flat = np.array([tr for i in kept for tr in tracks[i]], np.int32).reshape(-1, 2)
    points = Points3D(np.arange(1, len(kept) + 1, dtype=np.int64), pts_noisy[kept],
                      to_uint8(cols_noisy[kept], "half_even"),
                      np.full(len(kept), 0.5), offsets, flat)
    cameras = {1: Camera(1, "PINHOLE", width, height, np.array([fx, fy, cx, cy]))}
    write_model(model_dir, cameras, images, points, ".bin")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output scene folder")
    ap.add_argument("--views", type=int, default=48,
                    help="cameras, alternating between two orbit rings (22 and 36 degrees up)")
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with user_errors_exit("make_demo_scene"):
        make_demo_scene(args.out, args.views, args.width, args.height, args.seed)
        print(f"demo scene: {args.views} views {args.width}x{args.height} -> {args.out}")


if __name__ == "__main__":
    main()
