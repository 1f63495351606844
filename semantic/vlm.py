"""Qwen3-VL, loaded once and lazily, asked about a batch of images in one `generate` call.

Inputs are built from the tokenizer and the PIL image processor, with images we resize
ourselves to multiples of 32 px (patch 16 x merge 2) within `max_pixels`. That path needs no
torchvision (transformers' AutoProcessor does, through Qwen's video processor) and makes the
processor's own resize a no-op, so a box's relative coordinates refer to exactly the image we
built. Everything heavy is imported on first use, never at import time.
"""
import math
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch

from semantic.boxes import Box, clean_boxes, parse_boxes, to_view_pixels
from utils.errors import UserError
from utils.hf_models import check_model_folder, model_source

PIXEL_MULTIPLE = 32          # Qwen3-VL: 16 px patches, 2x2 merged into one token
DEFAULT_MAX_PIXELS = 448 * 448
IMAGE_PAD = "<|image_pad|>"
VISION_BLOCK = "<|vision_start|>" + IMAGE_PAD + "<|vision_end|>"
# ChatML as Qwen writes it; used only when the tokenizer carries no chat template.
FALLBACK_TEMPLATE = ("<|im_start|>user\n" + VISION_BLOCK + "{text}<|im_end|>\n"
                     "<|im_start|>assistant\n")


def vlm_size(width: int, height: int, max_pixels: int, min_pixels: int = 0):
    """(W, H) for the model: the aspect ratio kept, both sides multiples of 32 px, the area
    within [min_pixels, max_pixels] (never upscaled beyond what min_pixels needs)."""
    m = PIXEL_MULTIPLE
    scale = 1.0
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
    elif min_pixels and width * height < min_pixels:
        scale = math.sqrt(min_pixels / (width * height))
    w = max(m, int(round(width * scale / m)) * m)
    h = max(m, int(round(height * scale / m)) * m)
    while w * h > max_pixels and (w > m or h > m):  # rounding up can overshoot the cap
        if w >= h:
            w -= m
        else:
            h -= m
    while min_pixels and w * h < min_pixels:
        if w <= h:
            w += m
        else:
            h += m
    return w, h


def resize_for_vlm(image: np.ndarray, max_pixels: int, min_pixels: int = 0):
    """HxWx3 uint8 -> PIL image of vlm_size()."""
    from PIL import Image
    h, w = image.shape[:2]
    size = vlm_size(w, h, max_pixels, min_pixels)
    pil = Image.fromarray(np.ascontiguousarray(image))
    return pil if pil.size == size else pil.resize(size, Image.BICUBIC)


def pick_dtype(device: torch.device, name: Optional[str] = None) -> torch.dtype:
    """fp32 on CPU; bf16 on GPUs that have it, else fp16 (or the --vlm_dtype asked for)."""
    if name and name != "auto":
        return {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                "bfloat16": torch.bfloat16, "fp16": torch.float16,
                "float16": torch.float16}[name]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class GroundingAnswer:
    """One image's answer: boxes in pixels of that image."""
    boxes: List[Box] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)
    raw_text: str = ""
    status: str = "empty"
    notes: List[str] = field(default_factory=list)


class QwenVL:
    """Lazy Qwen3-VL. `generate(images, prompts)` answers one prompt per image, batched."""

    def __init__(self, model_path: str, device="cpu", dtype: Optional[str] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_new_tokens: int = 256,
                 offload: bool = False):
        self.model_path = model_path
        self.device = torch.device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.max_pixels = max_pixels
        self.max_new_tokens = max_new_tokens
        self.offload = offload and self.device.type == "cuda"
        self.model = self.tokenizer = self.image_processor = None
        self.load_seconds = 0.0

    # -- loading ------------------------------------------------------------------------
    def load(self):
        if self.model is not None:
            return self
        t0 = time.perf_counter()
        from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil)
        where = self.model_path
        path, local = model_source(where, "--qwen_model_path", "config.json")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
            self.model = Qwen3VLForConditionalGeneration.from_pretrained(path, dtype=self.dtype)
        except (OSError, ValueError) as e:
            what = "a Qwen3-VL model folder" if local else "a reachable hub id"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"--qwen_model_path {where}: not {what} ({first})") from e
        self.tokenizer.padding_side = "left"  # generation appends on the right
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.eval()
        self.model.to(self.device)
        self.load_seconds = time.perf_counter() - t0
        return self

    def _min_max_pixels(self):
        size = getattr(self.image_processor, "size", None) or {}
        lo = int(size.get("shortest_edge", 0) or 0)
        hi = int(size.get("longest_edge", self.max_pixels) or self.max_pixels)
        return lo, min(hi, self.max_pixels)

    # -- inputs -------------------------------------------------------------------------
    def prompt_text(self, text: str) -> str:
        """One user turn holding one image and the text, then the assistant's turn."""
        template = getattr(self.tokenizer, "chat_template", None)
        if template:
            messages = [{"role": "user", "content": [{"type": "image"},
                                                     {"type": "text", "text": text}]}]
            out = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                     add_generation_prompt=True)
            if out.count(IMAGE_PAD) == 1:
                return out
        return FALLBACK_TEMPLATE.format(text=text)

    def build_inputs(self, images: Sequence[np.ndarray], prompts: Sequence[str]):
        """Tokenised batch (left-padded) with pixel values; also the sizes the model saw."""
        self.load()
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        lo, hi = self._min_max_pixels()
        pils = [resize_for_vlm(img, hi, lo) for img in images]
        vis = self.image_processor(images=pils, return_tensors="pt")
        merge = int(getattr(self.image_processor, "merge_size", 2))
        texts = []
        for grid, prompt in zip(vis["image_grid_thw"], prompts):
            n_tokens = int(grid.prod()) // (merge * merge)
            texts.append(self.prompt_text(prompt).replace(IMAGE_PAD, IMAGE_PAD * n_tokens, 1))
        enc = self.tokenizer(texts, return_tensors="pt", padding=True)
        image_id = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        inputs = dict(enc)
        inputs.pop("token_type_ids", None)
        inputs["mm_token_type_ids"] = (enc["input_ids"] == image_id).to(torch.int32)
        inputs["pixel_values"] = vis["pixel_values"]
        inputs["image_grid_thw"] = vis["image_grid_thw"]
        return inputs, [p.size for p in pils]

    # -- answers ------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, images: Sequence[np.ndarray], prompts: Sequence[str]):
        """Answer texts, one per image, from a single batched `generate` call; also the
        (W, H) each image had when the model saw it."""
        inputs, sizes = self.build_inputs(images, prompts)
        if self.offload:
            self.model.to(self.device)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        if self.offload:  # give the memory back to training until the next analysis
            self.model.to("cpu")
            torch.cuda.empty_cache()
        return texts, sizes

    def ground(self, images: Sequence[np.ndarray], prompt: str, max_boxes: int = 8,
               max_box_frac: float = 1.0) -> List[GroundingAnswer]:
        """Boxes of what `prompt` asks for, in pixels of each given image."""
        texts, sizes = self.generate(images, [prompt] * len(images))
        answers = []
        for img, text, seen in zip(images, texts, sizes):
            h, w = img.shape[:2]
            parsed = parse_boxes(text)
            mapped = to_view_pixels(parsed, seen, (0, 0, seen[0], seen[1]), (w, h))
            boxes, labels, notes = clean_boxes(mapped, parsed.labels, (w, h), max_boxes,
                                               max_box_frac)
            answers.append(GroundingAnswer(boxes, labels, text, parsed.status, notes))
        return answers


def load_vlm(model_path: str, device="cpu", **kwargs) -> QwenVL:
    """A lazily loaded Qwen3-VL (weights are read at the first question). A folder that is
    missing or holds no config.json is refused now, before any training time is spent."""
    check_model_folder(model_path, "--qwen_model_path", "config.json")
    return QwenVL(model_path, device=device, **kwargs)
