"""Per-round edit metrics.

Per edited view, with its soft RoI mask M:
  roi_psnr / roi_ssim / roi_lpips   post-optimisation render vs the edited target, inside M
  roi_residual                      mean |render - target| inside M (drives view priority)
  outside_psnr_to_original          render vs the original (unedited) model's render, outside
                                    the RoI (pixels where M < OUTSIDE_BELOW, i.e. the blended
                                    edit contributed less than 5%):
                                    how far the rest of the scene drifted (inf = not at all)
  outside_psnr_change_db            outside-RoI PSNR to the photos, edited minus original model
                                    (negative = the edit made the rest of the scene worse)
  roi_psnr_original                 the original model's render vs the photos inside M: how
                                    well the scene was fitted before; "the RoI reaches the
                                    target within X dB" compares roi_psnr with it
Across the round's views: the spread (std over views, mean over RGB) of the mean RoI colour,
of the targets and of the renders (cross-view consistency), and optionally CLIP's text-image
direction similarity (--clip_model).
LPIPS is computed where the `lpips` package and its weights are available; otherwise it is
null and the reason is recorded.
"""
import math
from typing import Dict, List, Optional

import numpy as np
import torch

from utils.loss_utils import ssim_map

OUTSIDE_BELOW = 0.05
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _finite(x: float) -> Optional[float]:
    """Rounded for the YAML file; nan -> None; inf (identical images) stays inf."""
    if x is None or math.isnan(x):
        return None
    return float(x) if math.isinf(x) else round(float(x), 6)


def masked_psnr(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> Optional[float]:
    w = m.expand_as(a)
    if float(w.sum()) < 1e-6:
        return None
    mse = float(((a - b) ** 2 * w).sum() / w.sum())
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def masked_ssim(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> Optional[float]:
    w = m.expand_as(a)
    if float(w.sum()) < 1e-6:
        return None
    return float((ssim_map(a, b) * w).sum() / w.sum())


def mean_colour(img: torch.Tensor, m: torch.Tensor) -> Optional[np.ndarray]:
    if float(m.sum()) < 1e-6:
        return None
    return ((img * m[None]).flatten(1).sum(1) / m.sum()).cpu().numpy()


def colour_spread(images: List[torch.Tensor], masks: List[torch.Tensor]) -> Optional[float]:
    cols = [c for c in (mean_colour(i, m) for i, m in zip(images, masks)) if c is not None]
    if len(cols) < 2:
        return None
    return float(np.std(np.stack(cols), axis=0).mean())


class LpipsMetric:
    """LPIPS inside the RoI: outside pixels are replaced by the target's, so only RoI
    differences count. Unavailable -> None with a reason."""

    def __init__(self, device):
        from utils.lpips_utils import try_load_lpips
        self.fn, self.reason = try_load_lpips("vgg", device)

    def __call__(self, render, target, m):
        if self.fn is None:
            return None
        mixed = render * m[None] + target * (1 - m[None])
        return float(self.fn(mixed, target))


class ClipDirection:
    """CLIP directional similarity (as Instruct-NeRF2NeRF reports it): the cosine between the
    change in image embedding (original render -> edited render) and the change in text
    embedding (source caption -> target caption). Images are preprocessed here (resize, centre
    crop, CLIP normalisation) so no torchvision-backed image processor is needed."""

    def __init__(self, model_name: str, device):
        from utils.errors import UserError
        from utils.hf_models import model_source, quiet_hf_logs
        path, local = model_source(model_name, "--clip_model", "config.json")
        quiet_hf_logs()
        try:
            from transformers import CLIPModel, CLIPTokenizer
            self.model = CLIPModel.from_pretrained(path, local_files_only=local).to(device).eval()
            self.tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=local)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UserError(f"--clip_model {model_name}: cannot load CLIP ({type(e).__name__}: "
                            f"{first})") from None
        self.device = device
        self.size = int(self.model.config.vision_config.image_size)

    def _pixels(self, imgs: List[torch.Tensor]) -> torch.Tensor:
        out = []
        for img in imgs:
            x = img[None].float().to(self.device)
            h, w = x.shape[-2:]
            s = self.size / min(h, w)
            x = torch.nn.functional.interpolate(x, size=(max(self.size, round(h * s)),
                                                         max(self.size, round(w * s))),
                                                mode="bicubic", align_corners=False)
            top = (x.shape[-2] - self.size) // 2
            left = (x.shape[-1] - self.size) // 2
            out.append(x[..., top:top + self.size, left:left + self.size])
        x = torch.cat(out).clamp(0, 1)
        mean = torch.tensor(CLIP_MEAN, device=self.device)[None, :, None, None]
        std = torch.tensor(CLIP_STD, device=self.device)[None, :, None, None]
        return (x - mean) / std

    @torch.no_grad()
    def __call__(self, before: List[torch.Tensor], after: List[torch.Tensor],
                 source_text: str, target_text: str) -> float:
        def unit(v):
            return torch.nn.functional.normalize(v, dim=-1)
        toks = self.tokenizer([source_text, target_text], padding=True, truncation=True,
                              return_tensors="pt").to(self.device)
        t = unit(self._features(self.model.get_text_features(**toks)))
        i0 = unit(self._features(self.model.get_image_features(pixel_values=self._pixels(before))))
        i1 = unit(self._features(self.model.get_image_features(pixel_values=self._pixels(after))))
        d_txt = unit(t[1] - t[0])
        d_img = unit(i1 - i0)
        return float((d_img @ d_txt).mean())

    @staticmethod
    def _features(out):
        # transformers 5 may return a model output object instead of the tensor
        return out if torch.is_tensor(out) else getattr(out, "pooler_output", out[0])


def view_metrics(post, target, original_render, photo, mask, lpips: Optional[LpipsMetric]) -> dict:
    """One view's numbers (see the module docstring)."""
    outside = (mask < OUTSIDE_BELOW).float()
    out_now = masked_psnr(post, photo, outside)
    out_before = masked_psnr(original_render, photo, outside)
    change = (None if out_now is None or out_before is None
              or math.isinf(out_now) or math.isinf(out_before) else out_now - out_before)
    w = mask.expand_as(post)
    residual = float(((post - target).abs() * w).sum() / w.sum()) if float(w.sum()) > 1e-6 else 0.0
    return {
        "roi_psnr": _finite(masked_psnr(post, target, mask)),
        "roi_ssim": _finite(masked_ssim(post, target, mask)),
        "roi_lpips": None if lpips is None else _finite(lpips(post, target, mask)),
        "roi_residual": _finite(residual),
        "roi_psnr_original": _finite(masked_psnr(original_render, photo, mask)),
        "outside_psnr_to_original": _finite(masked_psnr(post, original_render, outside)),
        "outside_psnr_change_db": _finite(change),
        "roi_fraction": _finite(float(mask.mean())),
    }


def summarise(per_view: Dict[int, dict]) -> dict:
    """Means over views of every numeric entry (finite values only; inf kept if all inf)."""
    keys = sorted({k for v in per_view.values() for k in v})
    out = {}
    for k in keys:
        vals = [v[k] for v in per_view.values() if isinstance(v.get(k), (int, float))]
        finite = [x for x in vals if math.isfinite(x)]
        out[k] = (_finite(float(np.mean(finite))) if finite
                  else (float("inf") if vals else None))
    return out
