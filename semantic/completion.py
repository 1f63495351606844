"""Background completion's pressure on the training loss, from phase 2 on.

Over a fixed black background a half-transparent Gaussian matches a dark photo as well as an
opaque one, so dark background (a railing against a dark window) can stay see-through and
test views show holes there (bench/RESULTS.md). Two remedies, each a flag:
- `--completion_background random|phase2`: random background colours, which only opaque
  surfaces match (noisy: it costs PSNR, bench/RESULTS.md);
- `--completion_alpha W`: W * mean(max(0, COVERED_ALPHA * target - alpha)), target 1 for
  photos without an alpha channel (a real capture has a surface behind every pixel) and the
  alpha mask where there is one. It only raises pixels that show next to no surface, and
  where the photo decides, the photometric loss outweighs it: it breaks the
  black-background tie towards opaque.
"""
import math

import torch

from scene.plugins import TrainingPlugin
from semantic.config import SemanticConfig

# The term's goal for alpha: a little above ALPHA_SOLID (0.5, "shows a surface"). A goal of 1
# also pushed the soft edges the photos want half-transparent and cost PSNR (bench/RESULTS.md,
# semantic guidance fifth pass).
COVERED_ALPHA = 0.6


class CompletionPlugin(TrainingPlugin):
    """From phase 2 on (iterations after `start`): random backgrounds until `random_until`
    (--completion_background), and the `completion_alpha` loss term of weight `weight`."""
    TERMS = ("completion_alpha",)

    def __init__(self, weight: float, start: int, random_until: float):
        self.weight, self.start, self.random_until = weight, start, random_until

    def random_background(self, iteration: int) -> bool:
        return self.start < iteration <= self.random_until

    def loss_terms(self, step):
        if self.weight <= 0 or step.iteration <= self.start:
            return {}
        alpha = step.render_pkg["alpha"]
        mask = step.camera.alpha_mask
        target = torch.ones_like(alpha) if mask is None else mask.to(alpha.device)
        return {"completion_alpha":
                self.weight * (COVERED_ALPHA * target - alpha).clamp_min(0).mean()}


def completion_plugin(args: SemanticConfig, window):
    """The completion flags' plugin; `window` is phase 2's (start, end] or None (no phase 2,
    or both flags off: None)."""
    if window is None:
        return None
    start, end = window
    random_until = {"fixed": -math.inf, "phase2": end}.get(args.completion_background, math.inf)
    if args.completion_alpha <= 0 and random_until == -math.inf:
        return None
    return CompletionPlugin(args.completion_alpha, start, random_until)
