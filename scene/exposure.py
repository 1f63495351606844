"""Exposure compensation (`--train_test_exp`, the reference codebase's protocol).

Each training image gets a 3x4 affine colour transform E = [A | b], applied to its render as
`A^T`-mixing of the channels plus an offset (rgb' = rgb @ A + b, per pixel), starting at the
identity and learned with the scene by its own Adam optimizer on the
`--exposure_lr_init/final/delay_steps/delay_mult` schedule over `--iterations`.

Test protocol: the test images join the training set, but only their left half is trained
(their right half is blacked out in the training copy, so no test pixel of it is seen);
each test image's exposure is thus fitted on its left half, and the scores use the right half
(`right_half`). Exposures are saved with checkpoints and to `<model>/exposure.json`
(image name -> 3x4 nested list), which render.py reads back.
"""
import json
import os
from typing import Dict, Iterable, Optional

import torch
from torch import nn

from utils.errors import UserError
from utils.general_utils import get_expon_lr_func
from utils.io_utils import atomic_write_json

EXPOSURE_FILE = "exposure.json"
PROTOCOL_NOTE = ("--train_test_exp: images are scored on their right half only (each test "
                 "image's exposure was fitted on its left half), as the reference")


def apply_exposure(image: torch.Tensor, exposure: torch.Tensor) -> torch.Tensor:
    """image (3,H,W), exposure (3,4) -> (3,H,W): rgb @ exposure[:, :3] + exposure[:, 3]."""
    mixed = torch.einsum("chw,cd->dhw", image, exposure[:, :3])
    return mixed + exposure[:, 3, None, None]


def right_half(image: torch.Tensor) -> torch.Tensor:
    return image[..., image.shape[-1] // 2:]


def hide_right_half(cam):
    """Turn a (copy of a) test camera into its training half: the right half of its image
    is zeroed and `loss_mask` keeps the loss to the left half."""
    img = cam.original_image.clone()
    w = img.shape[-1]
    img[..., w // 2:] = 0
    cam.original_image = img
    mask = torch.zeros(1, img.shape[1], w, device=img.device)
    mask[..., :w // 2] = 1
    cam.loss_mask = mask
    return cam


class ExposureModel:
    """The per-image exposures of a training run and their optimizer."""

    def __init__(self, image_names: Iterable[str], opt, device):
        self.names = list(image_names)
        self.index = {n: i for i, n in enumerate(self.names)}
        eye = torch.eye(3, 4, device=device)[None].repeat(len(self.names), 1, 1)
        self.param = nn.Parameter(eye)
        self.optimizer = torch.optim.Adam([self.param], lr=opt.exposure_lr_init)
        self.lr_at = get_expon_lr_func(opt.exposure_lr_init, opt.exposure_lr_final,
                                       lr_delay_steps=opt.exposure_lr_delay_steps,
                                       lr_delay_mult=opt.exposure_lr_delay_mult,
                                       max_steps=opt.iterations)

    def get(self, name: str) -> torch.Tensor:
        return self.param[self.index[name]]

    def apply(self, image: torch.Tensor, name: str) -> torch.Tensor:
        if name not in self.index:
            return image
        return apply_exposure(image, self.get(name))

    def step(self, iteration: int):
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(iteration)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"names": list(self.names), "exposure": self.param.detach().clone(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict):
        if list(state["names"]) != self.names:
            raise UserError("checkpoint exposures are for other images than this scene's")
        with torch.no_grad():
            self.param.copy_(state["exposure"].to(self.param.device))
        self.optimizer.load_state_dict(state["optimizer"])

    def to_json(self) -> Dict[str, list]:
        return {n: self.get(n).detach().cpu().tolist() for n in self.names}

    def save(self, model_path: str):
        atomic_write_json(os.path.join(model_path, EXPOSURE_FILE), self.to_json())


def load_exposures(model_path: str, device) -> Optional[Dict[str, torch.Tensor]]:
    """<model>/exposure.json as image name -> (3,4) tensor; one clear line when malformed."""
    path = os.path.join(model_path, EXPOSURE_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path}: missing (the model was trained with --train_test_exp)")
    try:
        with open(path) as f:
            raw = json.load(f)
        out = {str(k): torch.tensor(v, dtype=torch.float32, device=device)
               for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: not an exposure file ({type(e).__name__})") from None
    if any(t.shape != (3, 4) for t in out.values()):
        raise UserError(f"{path}: every exposure must be a 3x4 matrix")
    return out
