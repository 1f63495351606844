"""FastGS's multi-view events: which views an event scores, when the final prunes fall, and
the view-consistent pruning itself (the scores come from scene/view_scorer.py).
"""
from typing import List, Optional, Sequence

import torch

from utils.general_utils import seeded_generator


def sample_views(cameras: Sequence, k: int, seed: int, iteration: int) -> List:
    """k distinct views, drawn from a generator seeded by (seed, iteration): the choice is
    reproducible and a resumed run draws the same views without any stored RNG state."""
    n = len(cameras)
    if n == 0:
        return []
    idx = torch.randperm(n, generator=seeded_generator(seed, iteration))[:min(k, n)]
    return [cameras[int(i)] for i in idx]


def spread_iterations(start: int, end: int, n: int) -> List[int]:
    """n iterations spread evenly strictly inside (start, end)."""
    if n <= 0 or end - start < 2:
        return []
    step = (end - start) / (n + 1)
    return sorted({i for i in (start + round(step * k) for k in range(1, n + 1)) if start < i < end})


@torch.no_grad()
def view_consistent_prune(model, scorer, views: Sequence, loss_thresh: float,
                          opacity_thresh: float, score_thresh: float,
                          keep: Optional[torch.Tensor] = None) -> int:
    """FastGS's view-consistent pruning: score the Gaussians on `views`
    (ViewScorer.multiview_scores), then remove those below `opacity_thresh` or whose pruning
    score exceeds `score_thresh`, except those in `keep`; never empties the model."""
    _, prune_score = scorer.multiview_scores(model, views, loss_thresh)
    remove = (model.get_opacity < opacity_thresh).squeeze(1)
    remove |= prune_score > score_thresh
    if keep is not None:
        remove &= ~keep
    if bool(remove.all()):
        return 0
    model.prune(remove)
    return int(remove.sum())
