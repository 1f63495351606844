"""The renders a strategy, guidance or an edit asks for between training steps.

The training loop owns one ViewScorer: it holds the renderer, the pipeline settings, the fixed
background and the training views, so a strategy never sees any of them. A strategy asks it
for what it decides from (FastGS's multi-view scores, a view's render with per-Gaussian
counts of masked pixels, how many training views see each Gaussian) and gets tensors back.
"""
from typing import Callable, Optional, Sequence, Tuple

import torch

from utils.loss_utils import photometric_loss


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


class ViewScorer:
    """Renders views of the model being trained, for decisions outside the training step.

    render_fn: gaussian_renderer.render; pipe: its settings; background: the fixed background
    colour (3,); cameras: the training views; lambda_dssim: the photometric objective's weight
    (FastGS weights each view's Gaussian counts by that view's loss).
    """

    def __init__(self, render_fn: Callable, pipe, background: torch.Tensor,
                 cameras: Sequence, lambda_dssim: float = 0.2):
        self.render_fn, self.pipe, self.background = render_fn, pipe, background
        self.cameras = list(cameras)
        self.lambda_dssim = lambda_dssim

    def render(self, view, model, metric_map: Optional[torch.Tensor] = None,
               background: Optional[torch.Tensor] = None) -> dict:
        """The render package of `view` (on the fixed background unless one is given); with
        metric_map (H,W) int, `accum_metric_counts` counts each Gaussian's masked pixels."""
        bg = self.background if background is None else background
        if metric_map is None:
            return self.render_fn(view, model, self.pipe, bg)
        return self.render_fn(view, model, self.pipe, bg, metric_map=metric_map)

    def counts(self, view, model, mask: torch.Tensor) -> torch.Tensor:
        """(N,) how many pixels of the (H,W) mask each Gaussian is composited into."""
        dev = model.get_xyz.device
        return self.render(view, model, metric_map=mask.to(dev, torch.int32))[
            "accum_metric_counts"]

    @torch.no_grad()
    def multiview_scores(self, model, views: Sequence, loss_thresh: float
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
        """FastGS's scores, (importance, pruning_score), both (N,) on the model's device.

        Per view, pixels whose min-max normalised L1 error exceeds `loss_thresh` are
        high-error. importance: the mean over views of the high-error pixels each Gaussian was
        composited into. pruning_score: the sum over views of (that view's photometric loss x
        those counts), min-max normalised to [0, 1] (zeros when every Gaussian scores alike).
        """
        n, dev = model.num_points, model.get_xyz.device
        counts_sum = torch.zeros(n, device=dev)
        weighted = torch.zeros(n, device=dev)
        if n == 0 or not views:
            return counts_sum, weighted
        for view in views:
            gt = view.original_image.to(dev)
            image = self.render(view, model)["render"]
            metric = high_error_map(image, gt, loss_thresh)
            loss = photometric_loss(image, gt, self.lambda_dssim)[0]
            counts = self.counts(view, model, metric).float()
            counts_sum += counts
            weighted += float(loss) * counts
        return counts_sum / len(views), minmax(weighted)

    @torch.no_grad()
    def support(self, model, views: Sequence) -> torch.Tensor:
        """(N,) float: the fraction of `views` each Gaussian is composited into."""
        seen = torch.zeros(model.num_points, device=model.get_xyz.device)
        for cam in views:
            ones = torch.ones(int(cam.image_height), int(cam.image_width), dtype=torch.int32,
                              device=seen.device)
            seen += (self.counts(cam, model, ones) > 0).float()
        return seen / max(1, len(views))
