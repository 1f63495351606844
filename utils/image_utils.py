"""Image quality metrics for images in [0, 1]."""
import torch


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
