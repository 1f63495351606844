"""Mode policies: what an edit round may change, and how.

* restyle: appearance. SH and opacity learn at the trained rates; positions, scales and
  rotations at a tenth of them, with a pull back to their round-start values (losses.py).
  No Gaussians are added or removed.
* replace: geometry may change. All rates as trained, and --densify_events times per round the
  strategy's region hook (add_regions, "densify") clones/splits Gaussians in the RoI pixels the
  model still gets wrong whose gradient is high (at least --densify_grad_ratio of the
  threshold), ranked by how much of those pixels they cover.
* remove: RoI Gaussians fade (their opacity decays each step, scaled by their RoI weight); at
  each event faded RoI Gaussians are pruned and the uncovered RoI pixels are filled by spawning
  Gaussians with the (edited) target's colour (add_regions, "spawn").

Locality, for every mode: Adam normalises gradients, so scaling a Gaussian's gradient by a
constant would not slow it down. Instead each optimizer step is scaled per Gaussian: after the
step a Gaussian keeps s = w + (1 - w) * --outside_update of its update, w being its RoI weight.

The per-Gaussian values this needs are side tables of the model, so clone/split/prune/spawn
keep them row-aligned (scene/gaussian_ops.py): "edit_damp" is 1 - w rather than w because rows
made from nothing (spawned in the RoI) get 0, i.e. fully editable, while clones copy their
parent.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch

from scene.plugins import TrainingPlugin
from scene.strategies.base import Strategy
from scene.strategies.regions import add_regions
from utils.general_utils import inverse_sigmoid, seeded_generator

LR_SCALES = {
    "restyle": {"xyz": 0.1, "scaling": 0.1, "rotation": 0.1},
    "replace": {},
    "remove": {},
}
RESIDUAL_THRESH = 0.1   # replace: a RoI pixel "still wrong" when its mean |render - target| > this
EVENT_VIEWS = 8         # replace/remove: views used per densification / fill event


@dataclass
class EditStrategy(Strategy):
    """The edit's strategy: gradient statistics only (they rank densification candidates in
    the region hook); every change to the Gaussians comes from the mode policy."""
    grad_thresh: float = 0.0002
    percent_dense: float = 0.01
    mode: str = "restyle"

    @property
    def label(self) -> str:
        return f"edit ({self.mode})"

    def step_post_backward(self, iteration, model, render_pkg, scorer=None):
        self.accumulate_gradients(model, render_pkg)

    def densify_priority(self, model):
        return self.mean_gradient(model) / self.grad_thresh

    def size_fraction(self):
        return self.percent_dense


def scale_learning_rates(opt, mode: str, round_iterations: int):
    """The optimisation settings of an edit: the trained rates, scaled per mode. The position
    rate decays from init to final over one round (restarted by `restart_position_schedule`),
    so nothing depends on how many rounds are planned: `--rounds 1` then `--resume --rounds 2`
    is the same run as `--rounds 2`."""
    s = LR_SCALES[mode]
    opt.position_lr_init *= s.get("xyz", 1.0)
    opt.position_lr_final = min(opt.position_lr_final, opt.position_lr_init)
    opt.position_lr_max_steps = max(int(round_iterations), 1)
    opt.scaling_lr *= s.get("scaling", 1.0)
    opt.rotation_lr *= s.get("rotation", 1.0)
    opt.random_background = False  # preservation compares with renders on the fixed background
    return opt


def restart_position_schedule(model, first_iteration: int):
    """Make the model's position schedule count from this round's first iteration."""
    base = model.xyz_scheduler_args
    model.xyz_scheduler_args = lambda it: base(it - first_iteration + 1)


@torch.no_grad()
def set_anchors(model, weights: torch.Tensor):
    """Round start: the RoI weights and the values the regularisers pull towards (side
    tables of the model)."""
    n = model.num_points
    model.set_table("edit_damp", (1.0 - weights.to(model.get_xyz.device)).clamp(0, 1).reshape(n))
    model.set_table("anchored", torch.ones(n, device=model.get_xyz.device))
    model.set_table("anchor_opacity", model.get_opacity[:, 0].detach().clone())
    model.set_table("anchor_xyz", model.get_xyz.detach().clone())
    model.set_table("anchor_log_scale", model._scaling.detach().clone())


class ModePolicy(TrainingPlugin):
    """The edit round's plugin: scales each optimizer step per Gaussian (locality), fades
    removed Gaussians, and runs the mode's densify / fill events; it labels the iterations
    `round_<r>` (`refine_<r>` once `refining`)."""

    def __init__(self, cfg, strategy: Strategy, views: Sequence, masks: Dict[int, torch.Tensor],
                 view_ids: Sequence[int], first: int, last: int, round_index: int = 0):
        self.cfg, self.strategy = cfg, strategy
        self.views, self.view_ids, self.masks = list(views), list(view_ids), masks
        self.mode = cfg.mode
        self.outside = float(cfg.outside_update)
        self.refining = False  # GS-only refinement: no densification / pruning events
        self.round_index = round_index
        n = cfg.densify_events
        span = last - first + 1
        # Events spread over the first 80% of the round, so the new Gaussians settle.
        self.events = [] if not n or self.mode == "restyle" else sorted(
            {first - 1 + max(1, round(span * 0.8 * k / n)) for k in range(1, n + 1)})
        self.log: List[dict] = []
        self._before = None

    def phase(self, iteration: int) -> str:
        return f"{'refine' if self.refining else 'round'}_{self.round_index}"

    # -- step scaling (locality) ------------------------------------------------------------
    @staticmethod
    def step_scale(model, outside: float) -> torch.Tensor:
        damp = model.tables["edit_damp"]
        return 1.0 - damp * (1.0 - outside)

    def before_step(self, step):
        g = step.trainer.gaussians
        if bool((g.tables["edit_damp"] > 0).any()) and self.outside < 1.0:
            self._before = {n: p.detach().clone() for n, p in g._params().items()}
        else:
            self._before = None

    @torch.no_grad()
    def after_step(self, step):
        trainer, iteration = step.trainer, step.iteration
        g = trainer.gaussians
        if self._before is not None:
            s = self.step_scale(g, self.outside)
            for name, p in g._params().items():
                old = self._before[name]
                shape = (-1,) + (1,) * (p.dim() - 1)
                p.data.copy_(old + s.view(shape) * (p.data - old))
            self._before = None
        if self.mode == "remove":
            self._decay_opacity(g)
        if not self.refining and iteration in self.events:
            self.log.append(self._event(trainer, iteration))

    # -- mode actions -----------------------------------------------------------------------
    def _decay_opacity(self, g):
        w = 1.0 - g.tables["edit_damp"]
        op = g.get_opacity[:, 0] * (1.0 - self.cfg.remove_decay * w)
        g._opacity.data.copy_(inverse_sigmoid(op.clamp(1e-6, 1 - 1e-6))[:, None])

    def _event_views(self, trainer):
        """The round's views with the largest RoI error now, and masks of their wrong pixels."""
        scored = []
        for cam, vid in zip(self.views, self.view_ids):
            pkg = trainer.scorer.render(cam, trainer.gaussians)
            err = (pkg["render"] - cam.original_image.to(pkg["render"].device)).abs().mean(0)
            roi = self.masks[vid] > 0.5
            if self.mode == "replace":
                want = roi & (err > RESIDUAL_THRESH)
            else:  # remove: RoI pixels nothing covers any more
                want = roi & (pkg["alpha"][0] < 0.5)
            scored.append((float(err[roi].mean()) if bool(roi.any()) else 0.0, cam, want))
        scored.sort(key=lambda t: -t[0])
        return [(cam, want) for _, cam, want in scored[:EVENT_VIEWS] if bool(want.any())]

    def _event(self, trainer, iteration) -> dict:
        g = trainer.gaussians
        rec = {"iteration": iteration, "pruned": 0, "densified": 0, "spawned": 0}
        if self.mode == "remove" or self.mode == "replace":
            w = 1.0 - g.tables["edit_damp"]
            dead = (w > 0.5) & (g.get_opacity[:, 0] < self.cfg.prune_opacity)
            rec["pruned"] = g.prune(dead)
        picked = self._event_views(trainer)
        if picked:
            cams, masks = [c for c, _ in picked], [m for _, m in picked]
            kind = "densify" if self.mode == "replace" else "spawn"
            done = add_regions(self.strategy, g, cams, masks, self.cfg.densify_budget, kind,
                               trainer.scorer, min_priority=self.cfg.densify_grad_ratio,
                               generator=seeded_generator(self.cfg.seed, iteration))
            rec["densified"], rec["spawned"] = done["densified"], done["spawned"]
        rec["gaussians"] = g.num_points
        return rec
