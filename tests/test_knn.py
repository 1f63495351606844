"""mean_sq_dist_to_knn against brute force, and its edge cases."""
import pytest
import torch

from utils.knn import MIN_DIST2, mean_sq_dist_to_knn

pytestmark = pytest.mark.unit


def _brute(points, k):
    p = points.double()
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    d2.fill_diagonal_(float("inf"))
    kk = min(k, len(p) - 1)
    return d2.topk(kk, dim=1, largest=False).values.mean(1).clamp_min(MIN_DIST2)


def test_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(300, 3, generator=gen) * torch.tensor([1.0, 3.0, 0.2])
    for k in (1, 3, 5):
        got = mean_sq_dist_to_knn(pts, k=k)
        assert got.shape == (300,) and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), _brute(pts, k), rtol=1e-5, atol=1e-9)


def test_few_points_and_duplicates():
    assert mean_sq_dist_to_knn(torch.zeros(0, 3)).shape == (0,)
    one = mean_sq_dist_to_knn(torch.tensor([[1.0, 2.0, 3.0]]))
    assert one.shape == (1,) and torch.isfinite(one).all() and one.item() > 0
    two = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])  # N <= k: mean over the one other
    torch.testing.assert_close(mean_sq_dist_to_knn(two, k=3), torch.tensor([4.0, 4.0]))
    dup = torch.zeros(5, 3)
    assert (mean_sq_dist_to_knn(dup) == torch.tensor(MIN_DIST2)).all()
    mixed = torch.tensor([[0.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0], [0.0, 1, 0], [5.0, 5, 5]])
    torch.testing.assert_close(mean_sq_dist_to_knn(mixed).double(), _brute(mixed, 3))


def test_keeps_device_and_dtype():
    pts = torch.rand(20, 3, dtype=torch.float64)
    out = mean_sq_dist_to_knn(pts)
    assert out.dtype == torch.float64 and out.device == pts.device
