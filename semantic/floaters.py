"""Weakly supported Gaussians: the floaters that novel views expose (phases 2 to 4).

From a sparse or random start, Gaussians that drift close to a training camera can paint that
one photo from a spot no other camera constrains. Training views never see the damage; a
viewpoint in between does (blobs and haze in front of the scene). Such a Gaussian is
recognisable without any photo of the novel view:
  * it contributes to few training views (`support`: fewer than `support_frac` of them), and
  * it lies near a training camera (within `near_frac` x the cameras' extent, the radius of
    the capture that 3DGS already uses to scale learning rates).
Real surfaces near the cameras are seen from many views, and distant, rarely seen background
is not near any camera, so both are kept. On the shared 360-degree captures, pruning these
from finished runs (no further training) raised test PSNR (bench/RESULTS.md, semantic guidance
second pass).

They are pruned everywhere, not only inside the regions a proposer returns: floaters hug
single cameras, so the few novel views of one analysis meet only some of them. Guidance prunes
them from phase 2 on, while the strategy still densifies and can refill what they hid.
"""
from typing import Sequence

import torch

MAX_SUPPORT_VIEWS = 64   # evenly spaced training views are enough to count support


def support_views(cameras: Sequence) -> list:
    """At most MAX_SUPPORT_VIEWS evenly spaced training views."""
    cams = list(cameras)
    if len(cams) > MAX_SUPPORT_VIEWS:
        step = len(cams) / MAX_SUPPORT_VIEWS
        cams = [cams[int(i * step)] for i in range(MAX_SUPPORT_VIEWS)]
    return cams


@torch.no_grad()
def near_cameras(model, cameras: Sequence, radius: float) -> torch.Tensor:
    """(N,) bool: Gaussians whose centre is within `radius` of some training camera."""
    xyz = model.get_xyz.detach()
    if not len(cameras) or radius <= 0:
        return torch.zeros(xyz.shape[0], dtype=torch.bool, device=xyz.device)
    centres = torch.stack([c.camera_center.to(xyz.device, xyz.dtype) for c in cameras])
    nearest = torch.full((xyz.shape[0],), float("inf"), device=xyz.device)
    for chunk in torch.split(torch.arange(xyz.shape[0], device=xyz.device), 65536):
        nearest[chunk] = torch.cdist(xyz[chunk], centres).min(1).values
    return nearest < radius


def weak_gaussians(model, cameras: Sequence, extent: float, scorer, support_frac: float,
                   near_frac: float) -> torch.Tensor:
    """(N,) bool: Gaussians seen by < support_frac of the training views and lying within
    near_frac x extent of a training camera. Either fraction at 0 flags nothing."""
    if support_frac <= 0 or near_frac <= 0 or model.num_points == 0:
        return torch.zeros(model.num_points, dtype=torch.bool, device=model.get_xyz.device)
    near = near_cameras(model, cameras, near_frac * extent)
    if not bool(near.any()):
        return near
    return near & (scorer.support(model, support_views(cameras)) < support_frac)


@torch.no_grad()
def prune_floaters(model, cameras: Sequence, extent: float, scorer, support_frac: float,
                   near_frac: float) -> int:
    """Remove every weakly supported Gaussian (never all of them); returns how many went.
    `scorer` (the loop's ViewScorer) renders the training views that count support."""
    weak = weak_gaussians(model, cameras, extent, scorer, support_frac, near_frac)
    if not bool(weak.any()) or bool(weak.all()):
        return 0
    return model.prune(weak)
