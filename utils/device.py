"""The one device policy: what a --device style flag means.

"auto" (or an empty value) is CUDA when this machine has it, else the CPU; an explicit name must
be a device this machine can use, or the user gets one line naming the flag. Secondary device
flags (--data_device, --vlm_device) default to the run's device instead.
"""
from typing import Optional

import torch

from utils.errors import UserError

AUTO = (None, "", "auto")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def resolve_device(name: Optional[str], flag: str = "--device") -> torch.device:
    """`name` from the command line -> a usable torch.device (UserError naming `flag` if not)."""
    if name in AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError) as e:
        raise UserError(f"{flag} {name}: not a torch device ({_first_line(e)})") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{flag} {name}: CUDA is not available on this machine")
    if dev.type != "cpu":
        try:  # a missing index (cuda:3 on one GPU) or backend fails here, not mid-run
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError, ValueError) as e:
            raise UserError(f"{flag} {name} is not usable here: {_first_line(e)}") from e
    return dev


def resolve_secondary_device(name: Optional[str], default: torch.device, flag: str) -> torch.device:
    """A flag whose "auto" means the run's device (`default`), e.g. --data_device."""
    return torch.device(default) if name in AUTO else resolve_device(name, flag)
