"""Optimizer-consistent row surgery on Gaussian parameters, shared by every strategy.

All functions take
  * params:    dict name -> nn.Parameter, every tensor with the same first dim N;
  * optimizer: a torch.optim.Adam (or None) whose param_groups carry group["name"] and
               hold exactly one parameter each (the names match `params`);
  * state:     optional dict of per-Gaussian tensors (a strategy's stats). Every tensor
               whose first dim is N is kept row-aligned; other values are left alone.
They replace the parameters in `params` (and in the optimizer) with new nn.Parameters and
move Adam's exp_avg / exp_avg_sq rows along with their Gaussians. Adam's `step` is shared
by all rows and is left untouched. `params` and `state` are updated in place.

Rows created from nothing (append) get zero moments and `state_fill` state; rows copied
from existing Gaussians (duplicate, or append with `state_src`) get zero moments and a copy
of their source's state, as in gsplat.
"""
from typing import Callable, Dict, Optional

import torch
from torch import nn

Tensor = torch.Tensor


def num_rows(params: Dict[str, Tensor]) -> int:
    sizes = {p.shape[0] for p in params.values()}
    if len(sizes) > 1:
        raise ValueError(f"parameters disagree on the number of Gaussians: {sorted(sizes)}")
    return sizes.pop() if sizes else 0


def _group(optimizer, name: str):
    if optimizer is None:
        return None
    for group in optimizer.param_groups:
        if group.get("name") == name:
            if len(group["params"]) != 1:
                raise ValueError(f"optimizer group '{name}' must hold exactly one parameter")
            return group
    return None


def _is_row_tensor(v, n: int) -> bool:
    return isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n


def _update(params: Dict[str, Tensor], optimizer,
            param_fn: Callable[[str, Tensor], Tensor],
            moment_fn: Callable[[str, Tensor], Tensor]):
    """Swap each parameter for param_fn(name, data); per-row optimizer moments become
    moment_fn(key, moment)."""
    n = num_rows(params)
    for name, old in list(params.items()):
        new = nn.Parameter(param_fn(name, old.detach()), requires_grad=old.requires_grad)
        group = _group(optimizer, name)
        if group is not None:
            opt_state = optimizer.state.pop(group["params"][0], None)
            if opt_state:
                for key, v in opt_state.items():
                    if key != "step" and _is_row_tensor(v, n):
                        opt_state[key] = moment_fn(key, v)
                optimizer.state[new] = opt_state
            group["params"][0] = new
        params[name] = new


def _update_state(state: Optional[dict], n: int, fn: Callable[[Tensor], Tensor]):
    if state is None:
        return
    for key, v in list(state.items()):
        if _is_row_tensor(v, n):
            state[key] = fn(v)


def select_rows(params: Dict[str, Tensor], optimizer, rows: Tensor,
                state: Optional[dict] = None) -> int:
    """Keep only `rows` (bool mask of length N, or an index tensor) in that order.
    Returns the new number of Gaussians."""
    n = num_rows(params)
    if rows.dtype == torch.bool:
        if rows.shape != (n,):
            raise ValueError(f"mask has shape {tuple(rows.shape)}, expected ({n},)")
        rows = rows.nonzero(as_tuple=True)[0]
    rows = rows.long()

    def take(_, v):
        return v[rows.to(v.device)]

    _update(params, optimizer, take, take)
    _update_state(state, n, lambda v: v[rows.to(v.device)])
    return int(rows.numel())


def remove(params: Dict[str, Tensor], optimizer, mask: Tensor,
           state: Optional[dict] = None) -> int:
    """Delete the Gaussians where `mask` is True. Returns how many were removed."""
    n = num_rows(params)
    if mask.dtype != torch.bool or mask.shape != (n,):
        raise ValueError(f"remove needs a bool mask of shape ({n},), got "
                         f"{mask.dtype} {tuple(mask.shape)}")
    removed = int(mask.sum())
    if removed:
        select_rows(params, optimizer, ~mask, state)
    return removed


def append(params: Dict[str, Tensor], optimizer, new_values: Dict[str, Tensor],
           state: Optional[dict] = None, state_fill=0, state_src: Optional[Tensor] = None) -> int:
    """Append M new Gaussians given as raw (pre-activation) values for every parameter.
    New Adam moments are zero. New state rows are `state_fill`, or copies of rows
    `state_src` (an index tensor of length M) when given. Returns M."""
    missing = set(params) - set(new_values)
    extra = set(new_values) - set(params)
    if missing or extra:
        raise ValueError(f"append: missing values {sorted(missing)}, unknown {sorted(extra)}")
    n = num_rows(params)
    m = num_rows(new_values)
    if m == 0:
        return 0
    for name, p in params.items():
        v = new_values[name]
        if tuple(v.shape[1:]) != tuple(p.shape[1:]):
            raise ValueError(f"append: '{name}' rows have shape {tuple(v.shape[1:])}, "
                             f"expected {tuple(p.shape[1:])}")

    def cat_values(name, v):
        return torch.cat([v, new_values[name].detach().to(device=v.device, dtype=v.dtype)])

    def cat_zeros(_, v):
        return torch.cat([v, v.new_zeros((m,) + tuple(v.shape[1:]))])

    _update(params, optimizer, cat_values, cat_zeros)
    if state_src is not None:
        src = state_src.long()
        if src.numel() != m:
            raise ValueError(f"append: state_src has {src.numel()} rows, expected {m}")
        _update_state(state, n, lambda v: torch.cat([v, v[src.to(v.device)]]))
    else:
        _update_state(state, n, lambda v: torch.cat(
            [v, torch.full((m,) + tuple(v.shape[1:]), state_fill, dtype=v.dtype,
                           device=v.device)]))
    return m


def duplicate(params: Dict[str, Tensor], optimizer, mask: Tensor,
              state: Optional[dict] = None) -> int:
    """Append exact copies of the selected Gaussians (zero moments, copied state)."""
    idx = mask.nonzero(as_tuple=True)[0] if mask.dtype == torch.bool else mask.long()
    new_values = {name: p.detach()[idx.to(p.device)] for name, p in params.items()}
    return append(params, optimizer, new_values, state=state, state_src=idx)


def reset_rows(params: Dict[str, Tensor], optimizer, name: str, new_value: Tensor,
               mask: Optional[Tensor] = None) -> int:
    """Set parameter `name` to `new_value` (all rows, or the rows in `mask`, with
    new_value broadcastable to them) and zero its Adam moments for those rows.
    Returns the number of rows reset."""
    if name not in params:
        raise KeyError(f"no parameter named '{name}'")
    n = num_rows(params)
    target = params[name]
    rows = None
    if mask is not None:
        rows = mask.nonzero(as_tuple=True)[0] if mask.dtype == torch.bool else mask.long()
        rows = rows.to(target.device)

    def set_values(k, v):
        if k != name:
            return v
        out = v.clone()
        val = new_value.detach().to(device=v.device, dtype=v.dtype)
        if rows is None:
            out[...] = val
        else:
            out[rows] = val
        return out

    def zero_moments(_, v):
        out = v.clone()
        if rows is None:
            out.zero_()
        else:
            out[rows] = 0
        return out

    # Only the named parameter changes; others pass straight through.
    sub = {name: target}
    _update(sub, optimizer, set_values, zero_moments)
    params[name] = sub[name]
    return n if rows is None else int(rows.numel())
