"""The edit objective.

Image terms (per training view, with its soft RoI mask M):
  * RoI photometric: Charbonnier (a smooth L1 that does not over-weight diffusion's outlier
    pixels) and D-SSIM to the edited target, averaged over M;
  * preservation: L1 outside the RoI (weight 1 - M) to the pre-edit render or the photo.
Gaussian terms (per Gaussian, with its RoI weight w; the model's side tables):
  * opacity growth: outside the RoI, opacity may fall but not rise above its round-start value
    (new floaters are the usual way an edit leaks);
  * cross-view consistency: penalise view-dependent colour (higher SH) in the RoI, so the
    independently edited, mutually inconsistent targets are explained by one colour seen from
    every view rather than by a different colour per view;
  * restyle only: positions and log-scales stay near their round-start values.
"""
from dataclasses import dataclass
from typing import Dict

import torch

from scene.plugins import LossTerms
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


def gaussian_terms(model, cameras_extent: float) -> dict:
    """Per-Gaussian terms, from the tables written by policies.set_anchors."""
    t = model.tables
    w = 1.0 - t["edit_damp"]                          # RoI weight
    anchored = t["anchored"]
    out = {}
    growth = torch.relu(model.get_opacity[:, 0] - t["anchor_opacity"])
    out["opacity"] = (t["edit_damp"] * anchored * growth).sum() / max(growth.numel(), 1)
    wsum = w.sum().clamp_min(1e-8)
    rest = model.get_features_rest
    out["consistency"] = (w * rest.pow(2).sum((1, 2))).sum() / wsum
    wa = w * anchored
    dx = (model.get_xyz - t["anchor_xyz"]).pow(2).sum(1) / max(cameras_extent, 1e-8) ** 2
    out["position"] = (wa * dx).sum() / wsum
    ds = (model._scaling - t["anchor_log_scale"]).pow(2).sum(1)
    out["scale"] = (wa * ds).sum() / wsum
    return out


class EditObjective:
    """The loss of one edit round, as named weighted terms (each logged by the loop): RoI
    photometric (Charbonnier and D-SSIM to the edited target), preservation outside the RoI
    (to keep[v]: the pre-edit render or the photo), and the Gaussian terms."""
    TERMS = ("roi_photo", "roi_dssim", "preserve", "opacity", "consistency", "position",
             "scale")

    def __init__(self, weights: LossWeights, keep: Dict[int, torch.Tensor],
                 masks: Dict[int, torch.Tensor], view_of: Dict[int, int], cameras_extent: float):
        """keep / masks: per view index; view_of: id(camera) -> view index."""
        self.w, self.keep, self.masks, self.view_of = weights, keep, masks, view_of
        self.extent = cameras_extent

    def terms(self, step) -> LossTerms:
        v = self.view_of[id(step.camera)]
        image = step.render_pkg["render"]
        img = image_terms(image, step.camera.original_image.to(image.device), self.keep[v],
                          self.masks[v], self.w)
        gs = gaussian_terms(step.trainer.gaussians, self.extent)
        w = self.w
        return LossTerms({"roi_photo": (1.0 - w.lambda_dssim) * img["roi_photo"],
                          "roi_dssim": w.lambda_dssim * img["roi_dssim"],
                          "preserve": w.lambda_preserve * img["preserve"],
                          "opacity": w.lambda_opacity * gs["opacity"],
                          "consistency": w.lambda_consistency * gs["consistency"],
                          "position": w.lambda_position * gs["position"],
                          "scale": w.lambda_scale * gs["scale"]}, img["l1"], img["ssim"])
