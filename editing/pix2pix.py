"""InstructPix2Pix as an editor: the render and the instruction in, the edited render out.

The diffusers pipeline is loaded lazily (never at import) from a local folder or a hub id, in
fp32 on CPU and fp16 on CUDA. The safety checker and its CLIP feature extractor are not loaded:
they need torchvision-backed image processors, and a render of the user's own scene is not
what that filter is for.
"""
from typing import Optional

import numpy as np
import torch

from editing.editor_base import Editor
from utils.errors import UserError
from utils.hf_models import model_source, quiet_hf_logs
from utils.image_utils import to_uint8, to_uint8_hwc

MULTIPLE = 64  # SD's VAE downsamples 8x and its UNet 8x more: sides must divide by 64


def diffusion_size(width: int, height: int, long_side: int):
    """(W, H) with the aspect ratio kept as well as multiples of 64 allow, long side ~long_side."""
    scale = long_side / max(width, height)
    w = max(MULTIPLE, int(round(width * scale / MULTIPLE)) * MULTIPLE)
    h = max(MULTIPLE, int(round(height * scale / MULTIPLE)) * MULTIPLE)
    return w, h


class Pix2PixEditor(Editor):
    name = "pix2pix"

    def __init__(self, model: str, steps: int = 20, guidance_scale: float = 7.5,
                 image_guidance_scale: float = 1.5, size: int = 512,
                 device: Optional[torch.device] = None):
        self.model = model
        self.steps, self.guidance_scale = int(steps), float(guidance_scale)
        self.image_guidance_scale, self.size = float(image_guidance_scale), int(size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.pipe = None

    def load(self):
        if self.pipe is not None:
            return self
        path, local = model_source(self.model, "--pix2pix_model", "model_index.json")
        quiet_hf_logs()
        try:
            from diffusers import StableDiffusionInstructPix2PixPipeline
            pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
                path, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                dtype=self.dtype, local_files_only=local)
        except UserError:
            raise
        except Exception as e:  # offline hub id, wrong folder contents, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UserError(f"--pix2pix_model {self.model}: cannot load the InstructPix2Pix "
                            f"pipeline ({type(e).__name__}: {first})") from None
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        return self

    @torch.no_grad()
    def __call__(self, image, instruction, seed):
        from PIL import Image
        self.load()
        _, H, W = image.shape
        w, h = diffusion_size(W, H, self.size)
        pil = Image.fromarray(to_uint8_hwc(image)).resize((w, h), Image.BICUBIC)
        # A CPU generator gives the same noise on every device for a given seed.
        gen = torch.Generator("cpu").manual_seed(int(seed))
        out = self.pipe(prompt=instruction, image=pil, num_inference_steps=self.steps,
                        guidance_scale=self.guidance_scale,
                        image_guidance_scale=self.image_guidance_scale, generator=gen,
                        output_type="np").images[0]
        edited = Image.fromarray(to_uint8(out))
        edited = np.asarray(edited.resize((W, H), Image.BICUBIC), dtype=np.float32) / 255.0
        return torch.from_numpy(edited).permute(2, 0, 1).to(image.device, image.dtype)

    def describe(self):
        return {"editor": self.name, "model": self.model, "steps": self.steps,
                "guidance_scale": self.guidance_scale,
                "image_guidance_scale": self.image_guidance_scale,
                "diffusion_size": self.size, "dtype": str(self.dtype).replace("torch.", ""),
                "device": str(self.device)}
