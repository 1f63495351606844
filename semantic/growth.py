"""Growing Gaussians in an analysed view's regions (the apply step of semantic guidance).

Per view, in this order: seeding (phases 2 and 3 with --spawn_depth photo: new Gaussians at
photo-consistent depths, semantic/depth_prior.py), then `grow`: densify the covered part of the
region and spawn in its empty part, sharing the per-view budget (scene/strategies/regions.py).
"""
import numpy as np
import torch

from scene.strategies.regions import SPAWN_OPACITY, add_regions, spawn_pixels
from semantic.depth_prior import seed_points
from utils.graphics_utils import ALPHA_SOLID

SEED_PHASES = ("phase2", "phase3")  # where --spawn_depth photo places new Gaussians
PIXELS_PER_SPAWN = 9   # at most one new Gaussian per 3x3 pixels of empty region


class RegionGrowth:
    """The growth rules of one run: `config` holds the semantic flags (spawn_depth,
    textureless_depth, background_holes, hole_opacity), `cameras` the training views that
    seeding compares photos across."""

    def __init__(self, config, cameras):
        self.args, self.cameras = config, cameras

    def seed(self, strategy, model, view, obs, mask: np.ndarray, phase,
             protect_until: int = 0, generator=None) -> int:
        """Phases 2 and 3 with --spawn_depth photo: new Gaussians at photo-consistent depths
        (semantic/depth_prior.py) on masked pixels the view shows empty; phase 2 also on
        background it shows at a depth the photos disagree with (a wall rendered in front of
        where it is fits its own photo and smears in every other view). Returns how many."""
        if self.args.spawn_depth != "photo" or phase.name not in SEED_PHASES:
            return 0
        limit = phase.max_points
        cap = strategy.budget(model)
        limit = limit if cap is None else min(limit, cap)
        picked = seed_points(view, torch.as_tensor(mask, dtype=torch.bool), obs.alpha, obs.depth,
                             obs.target, self.cameras, obs.focus_depth,
                             limit, reseed_solid=phase.name == "phase2",
                             textureless=self.args.textureless_depth, generator=generator)
        if picked is None:
            return 0
        xs, ys, z, rgb, spacing = picked
        first = model.num_points
        dev = model.get_xyz.device
        # Re-seeded surfaces start as fresh points; seeds in empty pixels as hole fills.
        empty = obs.alpha.cpu()[ys, xs] < ALPHA_SOLID
        opacity = torch.where(empty, self.spawn_opacity(phase), SPAWN_OPACITY).to(dev)
        n = spawn_pixels(model, view, xs.to(dev), ys.to(dev), z, rgb, spacing, opacity)
        if protect_until > 0 and n:
            strategy.protect(model, first, protect_until)
        return n

    def fills_holes(self, phase) -> bool:
        """Whether this phase's new Gaussians in empty pixels are hole fills (--hole_opacity,
        spawned before densifying). Phase 3: novel-view holes no training photo may ever
        train. Phase 2 with --background_holes fill: background a training view renders
        empty; where its photo is dark, black background already matches it, so nothing in
        the loss would ever raise a fresh point's opacity there."""
        return phase.name == "phase3" or (phase.name == "phase2"
                                          and self.args.background_holes == "fill")

    def spawn_opacity(self, phase) -> float:
        """At the usual 0.1, a hole fill would never make its hole opaque, and would fall to
        the first opacity prune."""
        return self.args.hole_opacity if self.fills_holes(phase) else SPAWN_OPACITY


def grow(strategy, model, view, pkg, mask: np.ndarray, budget: int, scorer,
         min_priority: float = 0.0, protect_until: int = 0,
         spawn_opacity: float = SPAWN_OPACITY, spawn_first: bool = False,
         on_added=None, generator=None) -> dict:
    """Densify the covered part of the mask and spawn in its empty part, `budget` in all.
    The budget is shared in proportion to the two parts' areas, or with spawn_first the
    empty part takes what it needs first (spawning at most one Gaussian per
    PIXELS_PER_SPAWN empty pixels); what one part leaves goes to the other.
    on_added(mode, first_row) hears of the rows each step adds, and `generator` samples the
    spawned pixels (see add_regions)."""
    hear = {} if on_added is None else {"on_added": on_added}
    mask_t = torch.as_tensor(mask, dtype=torch.bool)
    empty = (pkg["alpha"][0] < ALPHA_SOLID).cpu()
    spawn_mask, dense_mask = mask_t & empty, mask_t & ~empty
    n_mask = int(mask_t.sum())
    out = {"densified": 0, "spawned": 0}
    if n_mask == 0 or budget <= 0:
        return out
    n_empty = int(spawn_mask.sum())
    spawn_cap = n_empty // PIXELS_PER_SPAWN
    spawn_share = min(spawn_cap, budget if spawn_first else round(budget * n_empty / n_mask))
    if bool(dense_mask.any()):
        out["densified"] = add_regions(strategy, model, [view], [dense_mask],
                                       budget - spawn_share, "densify", scorer,
                                       min_priority, protect_until, **hear)["densified"]
    spawn_budget = min(spawn_cap, budget - out["densified"])
    if spawn_budget > 0:
        out["spawned"] = add_regions(strategy, model, [view], [spawn_mask], spawn_budget,
                                     "spawn", scorer, protect_until=protect_until,
                                     spawn_opacity=spawn_opacity, generator=generator,
                                     **hear)["spawned"]
    return out
