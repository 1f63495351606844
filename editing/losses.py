"""The edit objective.

Image terms (per training view, with its soft RoI mask M):
  * RoI photometric: Charbonnier (a smooth L1 that does not over-weight diffusion's outlier
    pixels) and D-SSIM to the edited target, averaged over M;
  * preservation: L1 outside the RoI (weight 1 - M) to the pre-edit render or the photo.
Gaussian terms (per Gaussian, with its RoI weight w; rows aligned by the strategy state):
  * opacity growth: outside the RoI, opacity may fall but not rise above its round-start value
    (new floaters are the usual way an edit leaks);
  * cross-view consistency: penalise view-dependent colour (higher SH) in the RoI, so the
    independently edited, mutually inconsistent targets are explained by one colour seen from
    every view rather than by a different colour per view;
  * restyle only: positions and log-scales stay near their round-start values.
"""
from dataclasses import dataclass

import torch

from utils.loss_utils import ssim_map


@dataclass
class LossWeights:
    lambda_dssim: float = 0.2
    charbonnier_eps: float = 1e-3
    lambda_preserve: float = 1.0
    lambda_opacity: float = 0.1
    lambda_consistency: float = 0.05
    lambda_position: float = 0.0
    lambda_scale: float = 0.0

    @classmethod
    def from_config(cls, cfg):
        restyle = cfg.mode == "restyle"
        return cls(cfg.lambda_dssim, cfg.charbonnier_eps, cfg.lambda_preserve, cfg.lambda_opacity,
                   cfg.lambda_consistency, cfg.lambda_position if restyle else 0.0,
                   cfg.lambda_scale if restyle else 0.0)


def masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean of (C,H,W) x weighted by an (H,W) mask; 0 when the mask is empty."""
    w = m.expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1e-8)


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps * eps)


def image_terms(render, target, keep, mask, w: LossWeights) -> dict:
    """render/target/keep (3,H,W), mask (H,W) in [0,1]."""
    m = mask[None]
    ssim_m = ssim_map(render, target)
    roi_photo = masked_mean(charbonnier(render, target, w.charbonnier_eps), m)
    roi_dssim = masked_mean(1.0 - ssim_m, m)
    preserve = masked_mean((render - keep).abs(), 1.0 - m)
    return {"roi_photo": roi_photo, "roi_dssim": roi_dssim, "preserve": preserve,
            "l1": (render - target).abs().mean().detach(), "ssim": ssim_m.mean().detach()}


def gaussian_terms(model, state: dict, cameras_extent: float) -> dict:
    """Per-Gaussian terms; `state` holds the rows written by policies.set_anchors."""
    w = 1.0 - state["edit_damp"]                      # RoI weight
    anchored = state["anchored"]
    out = {}
    growth = torch.relu(model.get_opacity[:, 0] - state["anchor_opacity"])
    out["opacity"] = (state["edit_damp"] * anchored * growth).sum() / max(growth.numel(), 1)
    wsum = w.sum().clamp_min(1e-8)
    rest = model.get_features_rest
    out["consistency"] = (w * rest.pow(2).sum((1, 2))).sum() / wsum
    wa = w * anchored
    dx = (model.get_xyz - state["anchor_xyz"]).pow(2).sum(1) / max(cameras_extent, 1e-8) ** 2
    out["position"] = (wa * dx).sum() / wsum
    ds = (model._scaling - state["anchor_log_scale"]).pow(2).sum(1)
    out["scale"] = (wa * ds).sum() / wsum
    return out


def total_loss(img: dict, gs: dict, w: LossWeights) -> torch.Tensor:
    roi = (1.0 - w.lambda_dssim) * img["roi_photo"] + w.lambda_dssim * img["roi_dssim"]
    return (roi + w.lambda_preserve * img["preserve"] + w.lambda_opacity * gs["opacity"]
            + w.lambda_consistency * gs["consistency"] + w.lambda_position * gs["position"]
            + w.lambda_scale * gs["scale"])
