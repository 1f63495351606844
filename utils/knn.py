"""Mean squared distance to the nearest neighbours, used to size new Gaussians.

CUDA tensors go through simple-knn's distCUDA2 when the extension is built; everything
else uses scipy's KD-tree on the CPU.
"""
import numpy as np
import torch

MIN_DIST2 = 1e-7  # floor so duplicate points never produce log(0) scales


def _dist_cuda2():
    try:
        from simple_knn._C import distCUDA2
    except Exception:  # not built / no CUDA toolkit: fall back silently
        return None
    return distCUDA2


def mean_sq_dist_to_knn(points: torch.Tensor, k: int = 3) -> torch.Tensor:
    """(N,3) -> (N,) mean squared distance from each point to its k nearest other points.

    With fewer than k other points, the mean is over those that exist; a lone point
    gets 1.0 (a unit-sized Gaussian, nothing to measure against).
    """
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected points of shape (N,3), got {tuple(points.shape)}")
    n = points.shape[0]
    device, dtype = points.device, points.dtype if points.is_floating_point() else torch.float32
    if n == 0:
        return torch.zeros(0, device=device, dtype=dtype)
    if n == 1:
        return torch.ones(1, device=device, dtype=dtype)

    if points.is_cuda and k == 3:  # distCUDA2 is fixed to 3 neighbours
        dist_cuda2 = _dist_cuda2()
        if dist_cuda2 is not None and n > k:
            d = dist_cuda2(points.detach().float().contiguous())
            return d.clamp_min(MIN_DIST2).to(dtype)

    from scipy.spatial import cKDTree
    pts = points.detach().cpu().double().numpy()
    kk = min(k, n - 1)
    tree = cKDTree(pts)
    # k+1 because the nearest hit is the point itself (distance 0); with duplicates the
    # "self" may be another copy, but the distances returned are the same multiset.
    dist, _ = tree.query(pts, k=kk + 1)
    d2 = (dist[:, 1:] ** 2).mean(axis=1)
    d2 = np.maximum(d2, MIN_DIST2)
    return torch.from_numpy(d2).to(device=device, dtype=dtype)
