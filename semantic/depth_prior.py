"""Photo-consistent depth for new Gaussians: where along a pixel's ray the training photos agree.

Background completion (phase 2) and novel-view refinement (phase 3) add Gaussians on pixels the
model renders empty or wrong. From a sparse or random start there is no reliable depth there:
the render's own depth is that of whatever wrongly covers the pixel, and a guessed far depth
puts walls at the wrong distance, where they fit the training photo they were spawned for and
smear in every other view. Instead each pixel's ray is swept over candidate depths; at each, the
3D point is projected into the nearest training cameras and their (slightly blurred) photos are
sampled. The depth where the colours agree best is kept if the agreement is clearly better than
anywhere else along the ray (textureless pixels, with no clear minimum, get no depth unless
`--textureless_depth far`). bench/RESULTS.md has what this is worth.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from utils.general_utils import seeded_generator
from utils.graphics_utils import project_points, unproject_pixels
from semantic.views import camera_to_world

NEIGHBOURS = 6          # training cameras compared per view
MIN_VALID = 3           # a candidate depth needs this many cameras seeing it (photo included)
MAX_COST = 0.08         # mean absolute colour deviation (0-1 scale) of an accepted depth
DISTINCT = 0.6          # accepted only if the best cost is below this x the best cost found
UNIQUE_WINDOW = 3       # ... more than this many sweep steps away from the best depth
AGREE_TOL = 0.01        # costs within this of the best agree "about as well"
MAX_ANGLE_DEG = 75.0    # neighbours look at most this far away from the view's direction


def _centre_dir(cam) -> Tuple[np.ndarray, np.ndarray]:
    c2w = camera_to_world(cam)
    return c2w[:3, 3], c2w[:3, 2] / np.linalg.norm(c2w[:3, 2])


def neighbour_views(view, cameras: Sequence, k: int = NEIGHBOURS) -> List:
    """The k training cameras nearest to `view` that look roughly the same way (never itself)."""
    c0, d0 = _centre_dir(view)
    cos_min = np.cos(np.radians(MAX_ANGLE_DEG))
    scored = []
    for cam in cameras:
        if cam is view or getattr(cam, "image_name", None) == getattr(view, "image_name", ""):
            continue
        c, d = _centre_dir(cam)
        if float(d @ d0) < cos_min:
            continue
        scored.append((float(np.linalg.norm(c - c0)), len(scored), cam))
    return [cam for _, _, cam in sorted(scored)[:k]]


def _blurred(image: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(image[None], 3, stride=1, padding=1, count_include_pad=False)[0]


def _sample(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear colours (M,3) at pixel coordinates uv (M,2) (pixel centres at integers)."""
    H, W = image.shape[1:]
    grid = torch.stack([(2 * uv[:, 0] + 1) / W - 1, (2 * uv[:, 1] + 1) / H - 1], 1)
    out = F.grid_sample(image[None], grid[None, None].float(), mode="bilinear",
                        align_corners=False)
    return out[0, :, 0].T


def sweep_depths(near: float, far: float, n: int) -> torch.Tensor:
    """n depths from far to near, uniform in inverse depth (ties in the sweep go far)."""
    inv = torch.linspace(1.0 / far, 1.0 / near, n, dtype=torch.float64)
    return 1.0 / inv


@torch.no_grad()
def photo_consistent_depth(view, xs: torch.Tensor, ys: torch.Tensor, neighbours: Sequence,
                           photo: Optional[torch.Tensor], near: float, far: float,
                           n_depths: int = 48, chunk: int = 4096, textureless: str = "none",
                           span: Optional[torch.Tensor] = None):
    """For pixels (xs, ys) of `view`: (depth (M,), ok (M,) bool, colour (M,3)).

    photo: the view's own photo (3,H,W) or None (a novel view). The cost of a depth is the
    mean absolute deviation of the sampled colours from their mean over the cameras that see
    the point (the photo included). colour is that mean at the chosen depth.
    textureless: "none" gives rays without a clear best depth no depth; "far" gives those
    whose colours agree somewhere the farthest depth where they agree (a uniform wall looks
    the same from near viewpoints at any depth; far moves least between them).
    span: an (M,2) tensor to fill with the nearest and farthest depth where the colours agree
    about as well as at the best one."""
    m = int(xs.numel())
    depth = torch.zeros(m)
    ok = torch.zeros(m, dtype=torch.bool)
    colour = torch.zeros(m, 3)
    if m == 0 or len(neighbours) + (photo is not None) < MIN_VALID or not 0 < near < far:
        return depth, ok, colour
    images = [_blurred(c.original_image.detach().float().cpu()) for c in neighbours]
    ref = None if photo is None else _blurred(photo.detach().float().cpu())
    zs = sweep_depths(near, far, n_depths)
    for lo in range(0, m, chunk):
        x, y = xs[lo:lo + chunk].cpu(), ys[lo:lo + chunk].cpu()
        k = x.numel()
        xx = x.repeat(n_depths)
        yy = y.repeat(n_depths)
        zz = zs.repeat_interleave(k)
        pts = unproject_pixels(view, xx, yy, zz.float()).cpu()
        cols, valid = [], []
        for cam, img in zip(neighbours, images):
            uv, z = project_points(cam, pts)
            H, W = img.shape[1:]
            inside = (z > 1e-3) & (uv[:, 0] >= 0) & (uv[:, 0] <= W - 1) & \
                     (uv[:, 1] >= 0) & (uv[:, 1] <= H - 1)
            cols.append(_sample(img, uv))
            valid.append(inside)
        if ref is not None:
            cols.append(ref[:, yy.long(), xx.long()].T)
            valid.append(torch.ones_like(valid[0]))
        c = torch.stack(cols)                      # (V, k*D, 3)
        v = torch.stack(valid).float()[..., None]  # (V, k*D, 1)
        nv = v.sum(0)
        mean = (c * v).sum(0) / nv.clamp_min(1)
        dev = ((c - mean).abs().mean(-1, keepdim=True) * v).sum(0) / nv.clamp_min(1)
        cost = torch.where(nv >= MIN_VALID, dev, torch.full_like(dev, float("inf")))
        cost = cost.reshape(n_depths, k).T          # (k, D)
        mean = mean.reshape(n_depths, k, 3).transpose(0, 1)
        best, idx = cost.min(1)
        # The runner-up away from the best depth: a textureless ray agrees almost as well
        # everywhere, so its best depth means nothing.
        steps = torch.arange(n_depths)[None, :]
        away = (steps - idx[:, None]).abs() > UNIQUE_WINDOW
        runner_up = torch.where(away, cost, torch.full_like(cost, float("inf"))).min(1).values
        good = torch.isfinite(best) & (best < MAX_COST) & (best < DISTINCT * runner_up)
        agree = cost <= best[:, None] + AGREE_TOL        # (k, D), far -> near
        if textureless == "far":
            flat = ~good & torch.isfinite(best) & (best < MAX_COST)
            idx = torch.where(flat, agree.float().argmax(1), idx)  # the first (farthest) one
            good = good | flat
        if span is not None:
            first = agree.float().argmax(1)
            last = n_depths - 1 - agree.flip(1).float().argmax(1)
            span[lo:lo + k, 0] = zs[last].float()
            span[lo:lo + k, 1] = zs[first].float()
        depth[lo:lo + k] = zs[idx].float()
        ok[lo:lo + k] = good
        colour[lo:lo + k] = mean[torch.arange(k), idx]
    return depth, ok, colour


SAMPLE_PIXELS = 3000    # masked pixels swept per view (the sweep costs ~25 us a pixel on CPU)
DEPTH_AGREE = 0.7       # a rendered depth within [0.7, 1/0.7] x the photo depth agrees with it
SWEEP_RANGE = (0.25, 8.0)  # swept depths, as multiples of the cameras' focus depth
PIXELS_PER_SEED = 9     # at most one new Gaussian per 3x3 pixels of what qualifies


def sweep_range(focus_depth: Optional[float], depth: torch.Tensor, alpha: torch.Tensor):
    """(near, far) of the sweep: around the depth the cameras look at, or around the median
    solid depth of the render where the capture has no focus point."""
    ref = focus_depth
    if ref is None:
        solid = alpha >= 0.5
        ref = float(depth[solid].median()) if bool(solid.any()) else None
    if not ref or ref <= 0:
        return None
    return SWEEP_RANGE[0] * ref, SWEEP_RANGE[1] * ref


@torch.no_grad()
def seed_points(view, mask: torch.Tensor, alpha: torch.Tensor, depth: torch.Tensor,
                photo: Optional[torch.Tensor], cameras: Sequence, focus_depth: Optional[float],
                limit: int, reseed_solid: bool, textureless: str = "none",
                generator: Optional[torch.Generator] = None):
    """Pixels of `mask` (H,W bool) to put new Gaussians on, at photo-consistent depths.

    A pixel qualifies when its sweep found a depth and the render shows nothing there
    (alpha < 0.5) or, with reseed_solid, shows a surface at a depth that disagrees with it.
    Returns (xs, ys, z, rgb, spacing) for at most `limit` of them (spacing: pixels each new
    Gaussian stands for), or None when nothing qualifies. rgb is the photo's colour, or the
    neighbours' mean colour at that depth for a novel view (photo None). The pixels swept are
    sampled with `generator` (None: one seeded with 0)."""
    rng = sweep_range(focus_depth, depth, alpha)
    pix = mask.nonzero()
    if rng is None or limit <= 0 or pix.shape[0] == 0:
        return None
    neighbours = neighbour_views(view, cameras)
    order = torch.randperm(pix.shape[0], generator=generator or seeded_generator(0))
    sample = pix[order[:SAMPLE_PIXELS]]
    ys, xs = sample[:, 0], sample[:, 1]
    span = torch.zeros(ys.shape[0], 2) if textureless != "none" else None
    z, ok, colour = photo_consistent_depth(view, xs, ys, neighbours, photo, *rng,
                                           textureless=textureless, span=span)
    a, d = alpha.cpu()[ys, xs], depth.cpu()[ys, xs]
    wrong = a < 0.5
    if reseed_solid and span is None:
        ratio = d / z.clamp_min(1e-6)
        wrong |= (ratio < DEPTH_AGREE) | (ratio > 1.0 / DEPTH_AGREE)
    elif reseed_solid:  # wrong: outside every depth where the photos agree
        wrong |= (d < DEPTH_AGREE * span[:, 0]) | (d > span[:, 1] / DEPTH_AGREE)
    keep = (ok & wrong).nonzero(as_tuple=True)[0]
    if keep.numel() == 0:
        return None
    # The sample stands for the whole mask: scale the count of qualifying pixels up.
    qualifying = keep.numel() * pix.shape[0] / sample.shape[0]
    n = min(limit, int(qualifying // PIXELS_PER_SEED), keep.numel())
    if n <= 0:
        return None
    keep = keep[:n]
    rgb = colour[keep] if photo is None else photo.detach().float().cpu()[:, ys[keep], xs[keep]].T
    return xs[keep], ys[keep], z[keep], rgb, float(np.sqrt(qualifying / n))
