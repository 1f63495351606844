"""Images in [0, 1]: quality metrics and the one float -> uint8 conversion."""
import numpy as np
import torch

from utils.io_utils import atomic_path

# How a float in [0, 255] becomes an integer. "half_up" (x*255 + 0.5, truncated) is the rule of
# every PNG and edit target we write; "truncate" is the reference network_gui's byte stream
# (its SIBR viewer expects it); "half_even" (numpy's round) is how RGBA photos are composited
# on load and point colours / synthetic photos are stored. Mixing them changes saved bytes.
ROUNDINGS = ("half_up", "truncate", "half_even")


def to_uint8(img, rounding: str = "half_up"):
    """Float image in [0, 1] (values outside are clamped) -> uint8 of the same shape and kind:
    a tensor gives a tensor on the same device, an array an array. The arithmetic runs in the
    input's dtype, so the result is the same bytes as the copies this replaced."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"to_uint8: rounding {rounding!r} not in {ROUNDINGS}")
    if isinstance(img, torch.Tensor):
        x = img.detach().clamp(0, 1) * 255
        if rounding == "half_up":
            x = x + 0.5
        elif rounding == "half_even":
            x = torch.round(x)
        return x.to(torch.uint8)
    x = np.clip(img, 0, 1) * 255
    if rounding == "half_up":
        x = x + 0.5
    elif rounding == "half_even":
        x = np.round(x)
    return x.astype(np.uint8)


def to_uint8_hwc(img: torch.Tensor, rounding: str = "half_up") -> np.ndarray:
    """(C,H,W) or (H,W) float tensor in [0, 1] -> HxWxC / HxW uint8 numpy array (for PIL)."""
    a = img.detach().cpu().numpy()
    return to_uint8(a.transpose(1, 2, 0) if a.ndim == 3 else a, rounding)


def save_png(img: torch.Tensor, path: str):
    """(3,H,W), (1,H,W) or (H,W) float tensor in [0, 1] -> an 8-bit PNG, written atomically."""
    from PIL import Image
    arr = to_uint8_hwc(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def mse(img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: (C,H,W) -> 0-d tensor, (B,C,H,W) -> (B,)."""
    if img1.shape != img2.shape:
        raise ValueError(f"mse: shape mismatch {tuple(img1.shape)} vs {tuple(img2.shape)}")
    diff2 = (img1 - img2) ** 2
    return diff2.mean() if diff2.dim() == 3 else diff2.flatten(1).mean(1)


def psnr(img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    """PSNR in dB (peak 1.0) per image, over all channels and pixels: (C,H,W) -> 0-d tensor,
    (B,C,H,W) -> (B,). Identical images give +inf (not capped), as in the reference code.

    Note: the reference's psnr() on an unbatched (C,H,W) image returns one value per
    channel; here an image always yields a single value (the one metrics.py reports)."""
    return 10.0 * torch.log10(1.0 / mse(img1, img2))
