"""Region hooks shared by every strategy: steer densification into given pixel regions.

`add_regions(strategy, model, views, masks, budget, mode, scorer)` is what FastGS's uncovered
spawning, semantic guidance and editing call; it uses only the strategy's public ranking
(densify_priority, small_mask, budget, protect). For each view and its (H,W) bool mask:

* densify: the Gaussians whose projected centre falls in the mask and that are composited into
  masked pixels are ranked by how many masked pixels they cover (their importance inside the
  region), ties broken by the strategy's gradient statistic; the best are cloned (small) or
  split (large), one net new Gaussian each;
* spawn: masked pixels are sampled and back-projected at the rendered depth (alpha-weighted
  depth / alpha), or at a far depth where the render is nearly transparent; each new Gaussian
  takes the target image's colour and a size matching its share of the region.

Nothing ever adds more than the view's budget, nor more than `--max_gaussians` allows.
"""
import math
from typing import Optional, Sequence, Union

import torch

from utils.general_utils import seeded_generator
from utils.graphics_utils import ALPHA_SOLID, project_points, unproject_pixels

MODES = ("densify", "spawn", "both")
SPAWN_OPACITY = 0.1     # as freshly initialised points


def _per_view(value, n: int, name: str):
    if isinstance(value, (int, float)):
        return [int(value)] * n
    values = [int(v) for v in value]
    if len(values) != n:
        raise ValueError(f"add_regions: {len(values)} {name} values for {n} views")
    return values


def _as_mask(mask, view) -> torch.Tensor:
    m = torch.as_tensor(mask)
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    if tuple(m.shape) != (view.image_height, view.image_width):
        raise ValueError(f"add_regions: mask of shape {tuple(m.shape)} for a "
                         f"{view.image_height}x{view.image_width} view")
    return m.to(torch.bool)


def _far_depth(model, view, depth_img, solid) -> float:
    """Depth for transparent pixels: the back of what this view sees."""
    if bool(solid.any()):
        return float(torch.quantile(depth_img[solid].float(), 0.9))
    if model.num_points:
        _, z = project_points(view, model.get_xyz.detach())
        z = z[z > 0.2]
        if z.numel():
            return float(z.median())
    return 1.0


def densify_in_region(strategy, model, view, mask, counts, k: int,
                      min_priority: float = 0.0):
    """Clone/split up to k Gaussians inside `mask` (counts = masked pixels each covers) whose
    gradient statistic is at least `min_priority` of the strategy's threshold. Returns (how
    many were added, the first row of the new ones: clones and split children go to the end
    and split parents are removed)."""
    if k <= 0 or model.num_points == 0:
        return 0, model.num_points
    uv, z = project_points(view, model.get_xyz.detach())
    px = uv.round().long()
    H, W = mask.shape
    inside = (z > 0.2) & (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
    centre_in = torch.zeros_like(inside)
    idx = inside.nonzero(as_tuple=True)[0]
    centre_in[idx] = mask.to(px.device)[px[idx, 1], px[idx, 0]]
    prio = strategy.densify_priority(model).float()
    cand = centre_in & (counts > 0) & (prio >= min_priority)
    prio = prio / prio.max().clamp_min(1e-12) * 0.5  # < 1: only breaks ties between counts
    chosen = strategy.top_k_mask(cand, counts.float() + prio, k)
    if not bool(chosen.any()):
        return 0, model.num_points
    small = strategy.small_mask(model)
    clone, split = chosen & small, chosen & ~small
    n_before = model.num_points
    added = model.clone_and_split(clone, split)
    return added, n_before - int(split.sum())


def spawn_in_region(model, view, mask, pkg, m: int, opacity: float = SPAWN_OPACITY,
                    generator: Optional[torch.Generator] = None) -> int:
    """Spawn up to m Gaussians on the rays of masked pixels sampled with `generator`."""
    pix = mask.nonzero()  # (P,2) as (y, x)
    m = min(m, pix.shape[0])
    if m <= 0:
        return 0
    dev = model.get_xyz.device
    pick = pix[torch.randperm(pix.shape[0], generator=generator)[:m]].to(dev)
    ys, xs = pick[:, 0], pick[:, 1]
    alpha = pkg["alpha"][0].detach()
    depth_img = pkg["depth"][0].detach() / alpha.clamp_min(1e-6)
    solid = alpha >= ALPHA_SOLID
    far = _far_depth(model, view, depth_img, solid)
    z = torch.where(solid[ys, xs], depth_img[ys, xs], torch.full_like(depth_img[ys, xs], far))
    rgb = view.original_image.to(dev)[:, ys, xs].T
    # Each new Gaussian covers its share of the region: spacing of sqrt(area / m) pixels.
    return spawn_pixels(model, view, xs, ys, z, rgb, math.sqrt(pix.shape[0] / m), opacity)


def spawn_pixels(model, view, xs, ys, z, rgb, spacing: float,
                 opacity: float = SPAWN_OPACITY) -> int:
    """One new Gaussian per pixel (xs, ys) at view depth z with colour rgb and the given
    opacity, sized to cover `spacing` pixels of the view."""
    xyz = unproject_pixels(view, xs, ys, z)
    fx = view.image_width / (2.0 * math.tan(view.FoVx * 0.5))
    scales = (0.5 * spacing * z.to(xyz.device) / fx).clamp_min(1e-6)
    return model.spawn(xyz, rgb.clamp(0.0, 1.0), scales=scales, opacity=opacity)


@torch.no_grad()
def add_regions(strategy, model, views: Sequence, masks: Sequence,
                budget: Union[int, Sequence[int]], mode: str = "both",
                scorer=None, min_priority: float = 0.0,
                protect_until: int = 0, spawn_opacity: float = SPAWN_OPACITY,
                on_added=None, generator: Optional[torch.Generator] = None) -> dict:
    """Densify and/or spawn inside each view's mask; returns {"densified": n, "spawned": m}.

    budget: new Gaussians allowed per view (an int for all views, or one per view). In "both"
    mode half of it goes to densification and the rest, with whatever densification could
    not use, to spawning.
    min_priority: densify only Gaussians whose gradient statistic reaches this fraction of
    the strategy's own threshold (0 = any Gaussian covering the region; guidance uses < 1 to
    relax the strategy's test inside the region rather than bypass it).
    protect_until: > 0 keeps what is added from the strategy's final pruning until then.
    spawn_opacity: opacity of spawned Gaussians (0.1, as fresh points, unless no photo will
    train them: semantic guidance fills novel-view holes more opaquely).
    on_added: called as on_added(mode, first_row) right after a step adds Gaussians, when
    rows [first_row, model.num_points) are the ones it added (the viewer shows them).
    generator: draws the spawned pixels (the caller seeds it, e.g. seeded_generator(seed,
    iteration)); None: a generator seeded with 0.
    """
    if mode not in MODES:
        raise ValueError(f"add_regions: mode must be one of {MODES}, got {mode!r}")
    views = list(views)
    if len(masks) != len(views):
        raise ValueError(f"add_regions: {len(masks)} masks for {len(views)} views")
    budgets = _per_view(budget, len(views), "budget")
    if any(b < 0 for b in budgets):
        raise ValueError("add_regions: budgets must be >= 0")
    if scorer is None:
        raise ValueError("add_regions needs the loop's ViewScorer (trainer.scorer)")
    generator = generator or seeded_generator(0)
    total = {"densified": 0, "spawned": 0}
    for view, mask, b in zip(views, masks, budgets):
        mask = _as_mask(mask, view)
        cap = strategy.budget(model)
        b = b if cap is None else min(b, cap)
        if b <= 0 or not bool(mask.any()):
            continue
        dev = model.get_xyz.device
        pkg = scorer.render(view, model, metric_map=mask.to(dev, torch.int32))
        want_densify = {"densify": b, "spawn": 0, "both": b // 2}[mode]
        done, first_new = densify_in_region(strategy, model, view, mask,
                                            pkg["accum_metric_counts"], want_densify,
                                            min_priority)
        total["densified"] += done
        if done and on_added is not None:
            on_added("densify", first_new)
        if mode != "densify":
            first_spawn = model.num_points
            spawned = spawn_in_region(model, view, mask, pkg, b - done, spawn_opacity,
                                      generator)
            total["spawned"] += spawned
            if spawned and on_added is not None:
                on_added("spawn", first_spawn)
        if protect_until > 0 and model.num_points > first_new:
            strategy.protect(model, first_new, protect_until)
    return total
