"""Small numeric helpers shared by the model and training loop: activations, rotations,
learning-rate schedules, seeding and RNG snapshots."""
import random

import numpy as np
import torch


def inverse_sigmoid(x):
    x = torch.as_tensor(x)
    return torch.log(x / (1 - x))


def build_rotation(q: torch.Tensor) -> torch.Tensor:
    """Quaternions (N,4) as w,x,y,z (any norm) -> rotation matrices (N,3,3)."""
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(dim=1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=1)
    return R.reshape(-1, 3, 3)


def build_scaling_rotation(s: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """L = R @ diag(s), so that the covariance is L @ L^T."""
    return build_rotation(q) * s[:, None, :]


def strip_symmetric(m: torch.Tensor) -> torch.Tensor:
    """(N,3,3) symmetric -> (N,6) upper triangle as xx, xy, xz, yy, yz, zz."""
    return torch.stack([m[:, 0, 0], m[:, 0, 1], m[:, 0, 2],
                        m[:, 1, 1], m[:, 1, 2], m[:, 2, 2]], dim=1)


def get_expon_lr_func(lr_init, lr_final, lr_delay_steps=0, lr_delay_mult=1.0, max_steps=1000000):
    """Log-linear decay from lr_init to lr_final over max_steps, with an optional
    sine-eased warm-up scaled by lr_delay_mult for the first lr_delay_steps (reference
    semantics, from Plenoxels / JaxNeRF)."""
    def helper(step):
        if step < 0 or (lr_init == 0.0 and lr_final == 0.0):
            return 0.0
        if lr_delay_steps > 0:
            delay_rate = lr_delay_mult + (1 - lr_delay_mult) * np.sin(
                0.5 * np.pi * np.clip(step / lr_delay_steps, 0, 1))
        else:
            delay_rate = 1.0
        t = np.clip(step / max_steps, 0, 1)
        log_lerp = np.exp(np.log(lr_init) * (1 - t) + np.log(lr_final) * t)
        return float(delay_rate * log_lerp)
    return helper


def seeded_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator determined by (seed, keys): what it draws depends on where it is drawn
    (e.g. the iteration), not on what ran before, so a resumed run draws the same without any
    stored RNG state, and no global RNG is touched."""
    h = int(seed)
    for k in keys:
        h = (h * 1_000_003 + int(k)) % (2 ** 63)
    return torch.Generator().manual_seed(h)


def set_seed(seed: int):
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_rng_state() -> dict:
    """Snapshot of every RNG a run uses, built from tensors/ints/strings/lists only so a
    checkpoint holding it loads with torch.load(weights_only=True)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": int(py_version), "state": list(py_state),
                   "gauss": None if py_gauss is None else float(py_gauss)},
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"]), py["gauss"]))
    npst = state["numpy"]
    keys = torch.as_tensor(npst["keys"]).numpy().astype(np.uint32)
    np.random.set_state((npst["name"], keys, int(npst["pos"]),
                         int(npst["has_gauss"]), float(npst["gauss"])))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        # A checkpoint from a machine with more GPUs restores the ones we have.
        n = min(len(cuda_states), torch.cuda.device_count())
        for i in range(n):
            torch.cuda.set_rng_state(cuda_states[i].cpu(), i)
