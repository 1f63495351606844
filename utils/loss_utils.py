"""Photometric losses: L1 and SSIM, and the L1 + D-SSIM training objective (the one copy).

SSIM follows the reference 3DGS codebase exactly (11x11 Gaussian window, sigma 1.5, zero
padding of window_size // 2, C1 = 0.01^2, C2 = 0.03^2, mean over channels and pixels), so
its numbers are comparable with published tables. It is computed differently for speed:

* the 2-D Gaussian is the outer product of a 1-D one, and zero padding commutes with that
  factorisation, so two 1-D depthwise convolutions give the same result as the 11x11 one;
* the five statistics (x, y, x^2, y^2, xy) are filtered in a single convolution call;
* the blur is a symmetric linear operator (symmetric kernel, centred zero padding), so its
  adjoint is itself: the backward pass re-runs the forward blur on the incoming gradient
  instead of using the (much slower on CPU) generic convolution backward.
"""
import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2


def l1_loss(network_output: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over every element."""
    return torch.abs(network_output - gt).mean()


def gaussian_window_1d(window_size: int = 11, sigma: float = SSIM_SIGMA,
                       dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of length `window_size`, centred on window_size // 2."""
    x = torch.arange(window_size, dtype=torch.float64) - window_size // 2
    g = torch.exp(-x ** 2 / (2.0 * sigma ** 2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def gaussian_window_2d(window_size: int = 11, sigma: float = SSIM_SIGMA,
                       dtype=torch.float32, device=None) -> torch.Tensor:
    """The reference's 2-D window (outer product), shape (window_size, window_size)."""
    g = gaussian_window_1d(window_size, sigma, torch.float64)
    return torch.outer(g, g).to(dtype=dtype, device=device)


def _blur_forward(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Depthwise separable Gaussian blur of (B, C, H, W) with zero padding."""
    c, k = x.shape[1], g.numel()
    pad = k // 2
    # channels_last makes oneDNN's depthwise kernels several times faster on CPU.
    x = x.contiguous(memory_format=torch.channels_last)
    w_row = g.view(1, 1, 1, k).expand(c, 1, 1, k).contiguous()
    w_col = g.view(1, 1, k, 1).expand(c, 1, k, 1).contiguous()
    x = F.conv2d(x, w_row, padding=(0, pad), groups=c)
    x = F.conv2d(x, w_col, padding=(pad, 0), groups=c)
    # Channel slices of a channels_last tensor are strided views, and the element-wise
    # SSIM algebra on them is ~10x slower than on plain NCHW: convert back once here.
    return x.contiguous()


class _GaussianBlur(torch.autograd.Function):
    """Separable blur whose backward is the same blur (the operator is self-adjoint)."""

    @staticmethod
    def forward(ctx, x, g):
        ctx.save_for_backward(g)
        return _blur_forward(x, g)

    @staticmethod
    def backward(ctx, grad_out):
        (g,) = ctx.saved_tensors
        # apply() rather than _blur_forward keeps double backward available.
        return _GaussianBlur.apply(grad_out, g), None


def gaussian_blur(x: torch.Tensor, window_size: int = 11, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Blur every channel of (B, C, H, W) with the SSIM Gaussian, zero padded ('same' size)."""
    g = gaussian_window_1d(window_size, sigma, x.dtype, x.device)
    return _GaussianBlur.apply(x, g)


def ssim_map(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Per-pixel, per-channel SSIM with the same shape as the inputs ((C,H,W) or (B,C,H,W))."""
    if img1.shape != img2.shape:
        raise ValueError(f"ssim: shape mismatch {tuple(img1.shape)} vs {tuple(img2.shape)}")
    if img1.dim() not in (3, 4):
        raise ValueError(f"ssim: expected (C,H,W) or (B,C,H,W), got {tuple(img1.shape)}")
    unbatched = img1.dim() == 3
    x = img1.unsqueeze(0) if unbatched else img1
    y = img2.unsqueeze(0) if unbatched else img2
    y = y.to(x.dtype)
    c = x.shape[1]

    # One blur call for all five statistics.
    stats = gaussian_blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), window_size)
    mu1, mu2, e11, e22, e12 = stats.split(c, dim=1)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = e11 - mu1_sq
    sigma2_sq = e22 - mu2_sq
    sigma12 = e12 - mu1_mu2

    num = (2 * mu1_mu2 + SSIM_C1) * (2 * sigma12 + SSIM_C2)
    den = (mu1_sq + mu2_sq + SSIM_C1) * (sigma1_sq + sigma2_sq + SSIM_C2)
    out = num / den
    return out.squeeze(0) if unbatched else out


def ssim(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11,
         size_average: bool = True) -> torch.Tensor:
    """Mean SSIM. (C,H,W) -> 0-d tensor; (B,C,H,W) -> 0-d mean over the batch, or (B,)
    per-image values with size_average=False. Differentiable in both inputs."""
    m = ssim_map(img1, img2, window_size)
    if size_average or m.dim() == 3:
        return m.mean()
    return m.flatten(1).mean(1)


def photometric_terms(image: torch.Tensor, gt: torch.Tensor, lambda_dssim: float = 0.2):
    """The reference training objective's two weighted parts and what they weigh:
    ((1 - lambda) * L1, lambda * (1 - SSIM), L1, SSIM), all 0-d tensors."""
    l1 = l1_loss(image, gt)
    ssim_val = ssim(image, gt)
    return (1.0 - lambda_dssim) * l1, lambda_dssim * (1.0 - ssim_val), l1, ssim_val


def photometric_loss(image: torch.Tensor, gt: torch.Tensor, lambda_dssim: float = 0.2):
    """(1 - lambda) * L1 + lambda * (1 - SSIM), with its parts: returns (loss, l1, ssim)."""
    l1_term, dssim_term, l1, ssim_val = photometric_terms(image, gt, lambda_dssim)
    return l1_term + dssim_term, l1, ssim_val
