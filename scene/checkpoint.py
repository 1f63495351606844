"""Checkpoints: parameters, optimizer, side tables (the strategy's statistics among them),
iteration, sampler and RNG states."""
import os

import torch

from utils.errors import UserError
from utils.general_utils import get_rng_state, set_rng_state
from utils.io_utils import atomic_torch_save

FORMAT = "gs-checkpoint-v1"


def checkpoint_path(model_path: str, iteration: int) -> str:
    return os.path.join(model_path, f"chkpnt{iteration}.pth")


def save_checkpoint(path: str, iteration: int, gaussians, sampler, exposure=None) -> str:
    atomic_torch_save({
        "format": FORMAT,
        "iteration": iteration,
        "model": gaussians.capture(),
        "sampler": sampler.state_dict(),
        "rng": get_rng_state(),
        "exposure": exposure.state_dict() if exposure is not None else None,
    }, path)
    return path


def load_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise UserError(f"--start_checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or not ours
        raise UserError(f"--start_checkpoint {path}: not a readable checkpoint ({type(e).__name__})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"--start_checkpoint {path}: not a checkpoint written by this train.py")
    return ckpt


def check_resume(ckpt: dict, path: str, sh_degree: int, iterations: int) -> int:
    """The checkpoint's iteration, after refusing a resume that could only go wrong: one at
    or past --iterations trains nothing, and another --sh_degree than the checkpoint's would
    be silently ignored (the saved tensors fix the degree), so both are one-line errors."""
    try:
        it = int(ckpt["iteration"])
        degree = int(ckpt["model"]["max_sh_degree"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"--start_checkpoint {path}: not a checkpoint written by this "
                        "train.py (no iteration or SH degree)") from None
    if it >= iterations:
        raise UserError(f"--start_checkpoint {path} is at iteration {it}, not before "
                        f"--iterations {iterations}: nothing to train (raise --iterations)")
    if degree != sh_degree:
        raise UserError(f"--sh_degree {sh_degree} does not match --start_checkpoint {path} "
                        f"(SH degree {degree}): resume with --sh_degree {degree}")
    return it


def model_capture(ckpt: dict) -> dict:
    """The checkpoint's GaussianModel.capture(); checkpoints written before the side tables
    moved into the model kept them as the strategy's state."""
    captured = ckpt["model"]
    if "tables" not in captured and isinstance(ckpt.get("strategy"), dict):
        captured = dict(captured, tables={k: v for k, v in ckpt["strategy"].items()
                                          if torch.is_tensor(v)})
    return captured


def restore_checkpoint(ckpt: dict, gaussians, sampler, opt, exposure=None):
    if exposure is not None:
        if ckpt.get("exposure") is None:
            raise UserError("--train_test_exp: the checkpoint was saved without exposures")
        exposure.load_state_dict(ckpt["exposure"])
    gaussians.restore(model_capture(ckpt), opt)
    sampler.load_state_dict(ckpt["sampler"])
    set_rng_state(ckpt["rng"])
    return int(ckpt["iteration"])
