"""`--optimizer_type sparse_adam`: Adam that steps only the Gaussians visible in the view.

As the reference's SparseGaussianAdam (its 3dgs-accel rasterizer): every parameter group holds
one (N, ...) tensor whose rows are Gaussians; `step(visible)` updates the parameters and the
Adam moments of the rows where `visible` is True and leaves every other row, its moments
included, untouched. Like the reference kernel the update has no bias correction
(`p -= lr * m / (sqrt(v) + eps)`), so the step count is kept only for the record.

Pure PyTorch (index_select / index_copy_ of the visible rows, or, when most rows are visible,
a full update with the hidden rows saved and put back), so it runs on CPU and CUDA alike. The state has
the same keys as torch.optim.Adam (`step`, `exp_avg`, `exp_avg_sq`), so checkpoints and the
row surgery of scene/gaussian_ops.py treat both optimizers the same way.
"""
from typing import Optional

import torch

OPTIMIZER_TYPES = ("default", "sparse_adam")


class SparseGaussianAdam(torch.optim.Adam):
    def __init__(self, params, lr: float = 0.0, eps: float = 1e-15,
                 betas=(0.9, 0.999)):
        super().__init__(params, lr=lr, eps=eps, betas=betas)

    @torch.no_grad()
    def step(self, visible: Optional[torch.Tensor] = None, closure=None):
        """visible: bool mask over the Gaussians (render_pkg["visibility_filter"]); None
        steps every row. A group whose parameter has no gradient (its tensor was just
        replaced by densification) is skipped, as with torch's Adam."""
        if closure is not None:
            raise ValueError("SparseGaussianAdam does not take a closure")
        rows = None
        for group in self.param_groups:
            if len(group["params"]) != 1:
                raise ValueError("SparseGaussianAdam: each group must hold one tensor")
            p = group["params"][0]
            if p.grad is None:
                continue
            if visible is not None and visible.shape != (p.shape[0],):
                raise ValueError(f"visibility mask of shape {tuple(visible.shape)} for "
                                 f"group '{group.get('name')}' with {p.shape[0]} rows")
            state = self.state[p]
            if len(state) == 0:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            b1, b2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            if visible is None or bool(visible.all()):
                _adam_rows(p, p.grad, state["exp_avg"], state["exp_avg_sq"], lr, b1, b2, eps)
                continue
            if rows is None:
                vis = visible.to(p.device)
                rows = vis.nonzero(as_tuple=True)[0]
                hidden = (~vis).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            kept = (p.data, state["exp_avg"], state["exp_avg_sq"])
            if hidden.numel() < rows.numel():
                # Mostly visible: update every row, then put the hidden rows back (copies,
                # so bit-identical); cheaper than gathering and scattering the visible ones.
                saved = [t.index_select(0, hidden) for t in kept]
                _adam_rows(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], lr, b1, b2,
                           eps)
                for t, old in zip(kept, saved):
                    t.index_copy_(0, hidden, old)
                continue
            sub = [t.index_select(0, rows) for t in (p.data, p.grad, state["exp_avg"],
                                                      state["exp_avg_sq"])]
            _adam_rows(*sub, lr, b1, b2, eps)
            for t, new in zip(kept, (sub[0], sub[2], sub[3])):
                t.index_copy_(0, rows, new)


def _adam_rows(p, grad, exp_avg, exp_avg_sq, lr, b1, b2, eps):
    """In place on the given (sub)tensors: the reference's sparse Adam update."""
    exp_avg.mul_(b1).add_(grad, alpha=1.0 - b1)
    exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
    p.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-lr)


def make_optimizer(optimizer_type: str, groups: list, eps: float = 1e-15):
    """The Gaussians' optimizer for --optimizer_type (default = torch's Adam)."""
    if optimizer_type == "sparse_adam":
        return SparseGaussianAdam(groups, lr=0.0, eps=eps)
    return torch.optim.Adam(groups, lr=0.0, eps=eps)


def optimizer_step(optimizer, visible: torch.Tensor):
    """One step of either optimizer: sparse Adam gets the view's visibility mask."""
    if isinstance(optimizer, SparseGaussianAdam):
        optimizer.step(visible)
    else:
        optimizer.step()
