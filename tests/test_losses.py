"""L1 / SSIM / PSNR: known values, and the fast separable SSIM against the reference's
direct 11x11 convolution (values and gradients)."""
import math

import pytest
import torch
import torch.nn.functional as F

from utils.image_utils import mse, psnr
from utils.loss_utils import (gaussian_window_2d, l1_loss, photometric_loss, ssim,
                              ssim_map)

pytestmark = pytest.mark.unit


def direct_ssim_map(img1, img2, window_size=11):
    """The reference codebase's formulation: one 2-D depthwise conv per statistic."""
    batched = img1.dim() == 4
    a = img1 if batched else img1.unsqueeze(0)
    b = img2 if batched else img2.unsqueeze(0)
    c = a.shape[1]
    w = gaussian_window_2d(window_size, dtype=a.dtype).expand(c, 1, window_size, window_size)

    def conv(t):
        return F.conv2d(t, w.contiguous(), padding=window_size // 2, groups=c)

    mu1, mu2 = conv(a), conv(b)
    s11 = conv(a * a) - mu1 ** 2
    s22 = conv(b * b) - mu2 ** 2
    s12 = conv(a * b) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    return m if batched else m[0]


def _pair(shape, dtype=torch.float32, seed=0, noise=0.1):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=gen, dtype=dtype)
    b = (a + noise * torch.randn(shape, generator=gen, dtype=dtype)).clamp(0, 1)
    return a, b


@pytest.mark.parametrize("shape", [(3, 40, 27), (2, 3, 33, 50), (1, 3, 5, 8)])
@pytest.mark.parametrize("window_size", [11, 7])
def test_separable_equals_direct(shape, window_size):
    # float64: the two factorisations agree to rounding, pixel by pixel.
    a, b = _pair(shape, torch.float64)
    fast, ref = ssim_map(a, b, window_size), direct_ssim_map(a, b, window_size)
    assert fast.shape == ref.shape == a.shape
    assert torch.allclose(fast, ref, atol=1e-12, rtol=0)
    # float32: the mean SSIM (the reported number) matches to 1e-6. Single pixels may
    # differ by a few 1e-6 because sigma^2 = E[x^2] - mu^2 amplifies summation-order rounding.
    a, b = _pair(shape)
    fast, ref = ssim_map(a, b, window_size), direct_ssim_map(a, b, window_size)
    assert abs(float(ssim(a, b, window_size)) - float(ref.mean())) < 1e-6
    assert torch.allclose(fast, ref, atol=2e-5, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_gradients_match_direct(dtype, tol):
    a, b = _pair((2, 3, 30, 21), dtype)
    grads = []
    for fn in (lambda x, y: ssim(x, y), lambda x, y: direct_ssim_map(x, y).mean()):
        x, y = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
        fn(x, y).backward()
        grads.append((x.grad, y.grad))
    (gx, gy), (rx, ry) = grads
    # Relative to the largest gradient entry (the self-adjoint backward replaces autograd's).
    assert float((gx - rx).abs().max()) <= tol * float(rx.abs().max())
    assert float((gy - ry).abs().max()) <= tol * float(ry.abs().max())


def test_gradcheck_custom_backward():
    a, b = _pair((1, 2, 7, 6), torch.float64)
    a.requires_grad_(True)
    b.requires_grad_(True)
    # fast_mode checks random Jacobian projections: same guarantee in a fraction of the time.
    assert torch.autograd.gradcheck(lambda x, y: ssim_map(x, y, 5), (a, b), fast_mode=True)
    a, b = _pair((1, 1, 5, 4), torch.float64)
    a.requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda x: ssim(x, b, 3), (a,), fast_mode=True)


def test_identical_images():
    a, _ = _pair((3, 32, 24))
    assert abs(float(ssim(a, a)) - 1.0) < 1e-6
    assert float(psnr(a, a)) == math.inf  # documented: not capped
    assert float(mse(a, a)) == 0.0


def test_constant_images_known_ssim():
    # Away from the zero-padded border, two constant images a, b have sigma = 0 and
    # SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.2, 0.6
    m = ssim_map(torch.full((3, 31, 31), a, dtype=torch.float64),
                 torch.full((3, 31, 31), b, dtype=torch.float64))
    expected = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    assert torch.allclose(m[:, 5:-5, 5:-5], torch.full_like(m[:, 5:-5, 5:-5], expected), atol=1e-12)
    assert float(m[0, 0, 0]) != pytest.approx(expected)  # the border sees zero padding


def test_ssim_decreases_with_noise_and_batch_shapes():
    a, b_small = _pair((2, 3, 32, 32), noise=0.05)
    _, b_big = _pair((2, 3, 32, 32), noise=0.3)
    assert 0 < float(ssim(a, b_big)) < float(ssim(a, b_small)) < 1
    per_image = ssim(a, b_small, size_average=False)
    assert per_image.shape == (2,)
    assert torch.allclose(per_image.mean(), ssim(a, b_small))
    assert ssim(a[0], b_small[0]).dim() == 0


def test_psnr_known_value_and_batch():
    gen = torch.Generator().manual_seed(1)
    a = 0.5 * torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64)
    b = a + 0.1  # mse 0.01 -> 20 dB
    p = psnr(a, b)
    assert p.shape == (2,)
    assert torch.allclose(p, torch.full((2,), 20.0, dtype=torch.float64))
    assert psnr(a[0], b[0]).dim() == 0
    assert torch.allclose(mse(a, b), torch.full((2,), 0.01, dtype=torch.float64))


def test_losses_and_errors():
    a = torch.zeros(3, 4, 4)
    b = torch.full((3, 4, 4), 0.5)
    assert float(l1_loss(a, b)) == pytest.approx(0.5)
    x, y = _pair((3, 20, 20))
    expected = 0.8 * float(l1_loss(x, y)) + 0.2 * (1 - float(ssim(x, y)))
    loss, l1, ssim_val = photometric_loss(x, y)
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert float(l1) == float(l1_loss(x, y)) and float(ssim_val) == float(ssim(x, y))
    assert float(photometric_loss(x, y, 0.0)[0]) == float(l1_loss(x, y))
    with pytest.raises(ValueError, match="shape mismatch"):
        ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))


def test_non_contiguous_input():
    a, b = _pair((1, 3, 20, 30))
    a_cl = a.contiguous(memory_format=torch.channels_last)
    b_t = b.transpose(2, 3).contiguous().transpose(2, 3)
    assert torch.allclose(ssim_map(a_cl, b_t), direct_ssim_map(a, b), atol=1e-6)
