"""Optional LPIPS metric through the `lpips` PyPI package, loaded lazily.

`lpips` needs torchvision and fetches ImageNet backbone weights on first use, so it may be
missing or fail offline. Callers get None plus a one-line reason instead of an exception,
and report PSNR/SSIM alone. Nothing here imports `lpips` at module import time.

Input range: the `lpips` networks expect images in [-1, 1]. The reference 3DGS metrics.py
feeds [0, 1] images unchanged, and published 3DGS tables use that convention, so it is the
default here (normalize=False); normalize=True maps [0, 1] to [-1, 1] as `lpips` documents.
"""
import warnings

import torch

from utils.device import resolve_device

# (net, device) -> (frozen eval-mode network, None) or (None, reason): a real cache of
# immutable things. Building LPIPS reads its weights from disk (or fails offline) and both
# metrics.py and every edit round ask for the same network; a failure is not retried.
_cache = {}


def _build(net: str, device):
    """Returns (module, None) or (None, reason)."""
    try:
        import lpips  # noqa: PLC0415 - deliberately lazy
    except ImportError as e:
        missing = getattr(e, "name", None) or "lpips"
        if missing == "lpips":
            return None, "the 'lpips' package is not installed (pip install lpips; it needs torchvision)"
        return None, f"the 'lpips' package cannot be imported: {missing} is missing"
    except Exception as e:  # a broken install should not stop PSNR/SSIM
        return None, f"importing 'lpips' failed: {type(e).__name__}: {_first_line(e)}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision 'pretrained' deprecation chatter
            model = lpips.LPIPS(net=net, verbose=False)
        model = model.to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
    except Exception as e:  # offline weight download, unknown net name, ...
        return None, f"could not build LPIPS-{net}: {type(e).__name__}: {_first_line(e)}"
    return model, None


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else "no message"


def try_load_lpips(net: str = "vgg", device=None, normalize: bool = False):
    """Returns (fn, None) or (None, reason).

    fn(img1, img2) takes (3,H,W) or (B,3,H,W) images in [0, 1] on any device and returns the
    LPIPS distance per image (0-d tensor or (B,)), lower is better."""
    device = torch.device(device) if device is not None else resolve_device(None)
    key = (net, str(device))
    if key not in _cache:
        _cache[key] = _build(net, device)
    model, reason = _cache[key]
    if model is None:
        return None, reason

    def lpips_fn(img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        unbatched = img1.dim() == 3
        a = img1.unsqueeze(0) if unbatched else img1
        b = img2.unsqueeze(0) if unbatched else img2
        d = model(a.to(device), b.to(device), normalize=normalize).flatten()
        return d[0] if unbatched else d

    return lpips_fn, None

