"""Background completion's pressure on the training loss, from phase 2 on.

Over a fixed black background a half-transparent Gaussian matches a dark photo as well as an
opaque one, so dark background (a railing against a dark window) can stay see-through and
test views show holes there (bench/RESULTS.md). Two remedies, each a flag:
- `--completion_background random|phase2`: random background colours, which only opaque
  surfaces match (noisy: it cost juicebox_table half a dB);
- `--completion_alpha W`: W * mean(max(0, COVERED_ALPHA * target - alpha)), target 1 for
  photos without an alpha channel (a real capture has a surface behind every pixel) and the
  alpha mask where there is one. It only raises pixels that show next to no surface, and
  where the photo decides, the photometric loss outweighs it: it breaks the
  black-background tie towards opaque.
"""
import math

import torch

from semantic.config import SemanticConfig

# The term's goal for alpha: a little above ALPHA_SOLID (0.5, "shows a surface"). A goal of 1
# also pushed the soft edges the photos want half-transparent and cost beer_can 0.2-0.5 dB
# (bench/RESULTS.md).
COVERED_ALPHA = 0.6


class CoverageTerm:
    """The `--completion_alpha` loss term for Trainer.loss_terms, on after iteration `start`."""

    def __init__(self, weight: float, start: int):
        self.weight, self.start = weight, start

    def __call__(self, trainer, pkg, cam, iteration):
        if iteration <= self.start:
            return None
        alpha = pkg["alpha"]
        mask = cam.alpha_mask
        target = torch.ones_like(alpha) if mask is None else mask.to(alpha.device)
        return self.weight * (COVERED_ALPHA * target - alpha).clamp_min(0).mean()


def attach_completion(trainer, args: SemanticConfig, window):
    """Wire the completion flags into the trainer; `window` is phase 2's (start, end] or None."""
    if window is None:
        return
    start, end = window
    if args.completion_background != "fixed":
        until = end if args.completion_background == "phase2" else math.inf
        trainer.random_background_at = lambda it: start < it <= until
    if args.completion_alpha > 0:
        trainer.loss_terms.append(CoverageTerm(args.completion_alpha, start))
