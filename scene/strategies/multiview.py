"""Multi-view scores of FastGS: which Gaussians sit in high-error pixels across views.

At a densification or pruning event a few training views are rendered. Per view, the per-pixel
L1 error is min-max normalised to [0, 1] and pixels above `loss_thresh` form a metric map; the
renderer counts, per Gaussian, the high-error pixels it was composited into
(`accum_metric_counts`). Averaged over views that count is the *importance* (densification
support); weighted by each view's photometric loss, summed and min-max normalised it is the
*pruning score*.
"""
from typing import List, Optional, Sequence, Tuple

import torch

from utils.loss_utils import l1_loss, ssim


def sample_views(cameras: Sequence, k: int, seed: int, iteration: int) -> List:
    """k distinct views, drawn from a generator seeded by (seed, iteration): the choice is
    reproducible and a resumed run draws the same views without any stored RNG state."""
    n = len(cameras)
    if n == 0:
        return []
    gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(iteration)) % (2 ** 63))
    idx = torch.randperm(n, generator=gen)[:min(k, n)]
    return [cameras[int(i)] for i in idx]


def high_error_map(image: torch.Tensor, gt: torch.Tensor, loss_thresh: float) -> torch.Tensor:
    """(H,W) bool: pixels whose channel-mean L1 error, min-max normalised, exceeds the threshold."""
    err = (image - gt).abs().mean(dim=0)
    lo, hi = err.min(), err.max()
    if float(hi - lo) <= 0.0:  # a perfect (or uniformly wrong) view flags nothing
        return torch.zeros_like(err, dtype=torch.bool)
    return (err - lo) / (hi - lo) > loss_thresh


def minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    if float(hi - lo) <= 0.0:
        return torch.zeros_like(x)
    return (x - lo) / (hi - lo)


@torch.no_grad()
def score_gaussians(model, views: Sequence, render, pipe, background: torch.Tensor,
                    loss_thresh: float, lambda_dssim: float = 0.2
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(importance, pruning_score), both (N,) float on the model's device.

    importance: mean over `views` of the high-error pixels each Gaussian was composited into.
    pruning_score: sum over views of (that view's photometric loss x those counts), min-max
        normalised to [0, 1] (zeros when every Gaussian scores the same).
    """
    n, dev = model.num_points, model.get_xyz.device
    counts_sum = torch.zeros(n, device=dev)
    weighted = torch.zeros(n, device=dev)
    if n == 0 or not views:
        return counts_sum, weighted
    for view in views:
        gt = view.original_image.to(dev)
        image = render(view, model, pipe, background)["render"]
        metric = high_error_map(image, gt, loss_thresh)
        loss = (1.0 - lambda_dssim) * l1_loss(image, gt) + lambda_dssim * (1.0 - ssim(image, gt))
        counts = render(view, model, pipe, background,
                        metric_map=metric.to(torch.int32))["accum_metric_counts"].float()
        counts_sum += counts
        weighted += float(loss) * counts
    return counts_sum / len(views), minmax(weighted)


def spread_iterations(start: int, end: int, n: int) -> List[int]:
    """n iterations spread evenly strictly inside (start, end)."""
    if n <= 0 or end - start < 2:
        return []
    step = (end - start) / (n + 1)
    return sorted({i for i in (start + round(step * k) for k in range(1, n + 1)) if start < i < end})


@torch.no_grad()
def vcp_prune(model, prune_score: torch.Tensor, opacity_thresh: float, score_thresh: float,
              state=None, keep: Optional[torch.Tensor] = None) -> int:
    """FastGS's view-consistent pruning: remove Gaussians below `opacity_thresh` or whose
    multi-view pruning score exceeds `score_thresh`, except those in `keep`; never empties
    the model."""
    remove = (model.get_opacity < opacity_thresh).squeeze(1)
    remove |= prune_score > score_thresh
    if keep is not None:
        remove &= ~keep
    if bool(remove.all()):
        return 0
    model.prune(remove, state=state)
    return int(remove.sum())
