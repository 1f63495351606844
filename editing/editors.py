"""Edit functions: a render in, an edited image out.

Every editor is called the same way, `editor(image, instruction, seed) -> image` with (3,H,W)
float tensors in [0,1] of the same size, so the diffusion edit and the deterministic test edit
go through exactly the same swap mechanism in the round manager.
"""
from typing import Optional, Tuple

import torch

from editing.config import parse_editor
from editing.editor_base import Editor


# Rec. 709 luma weights: a colour-neutral brightness to re-tint.
LUMA = (0.2126, 0.7152, 0.0722)


class RecolorEditor(Editor):
    """Deterministic edit: each pixel becomes its luminance times a colour (clamped to [0,1]).
    Ignores the instruction and the seed; used to measure locality and in tests."""
    name = "recolor"

    def __init__(self, rgb: Tuple[float, float, float]):
        self.rgb = tuple(float(v) for v in rgb)

    def __call__(self, image, instruction, seed):
        luma = torch.tensor(LUMA, dtype=image.dtype, device=image.device)
        y = (image * luma[:, None, None]).sum(0, keepdim=True)
        tint = torch.tensor(self.rgb, dtype=image.dtype, device=image.device)[:, None, None]
        return (y * tint).clamp(0.0, 1.0)

    def describe(self):
        return {"editor": self.name, "rgb": list(self.rgb)}


def make_editor(cfg, device: Optional[torch.device] = None) -> Editor:
    kind, arg = parse_editor(cfg.editor)
    if kind == "recolor":
        return RecolorEditor(arg)
    from editing.pix2pix import Pix2PixEditor  # diffusers is heavy: import only when used
    return Pix2PixEditor(cfg.pix2pix_model, steps=cfg.diffusion_steps,
                         guidance_scale=cfg.guidance_scale,
                         image_guidance_scale=cfg.image_guidance_scale,
                         size=cfg.diffusion_size, device=device)
