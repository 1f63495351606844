"""`<model>/regions/iter_<N>/`: what each analysis saw and decided.

Per view: `<view>_render.png`, `<view>_target.png` (training views), `<view>_boxes.png` (the
image the boxes refer to, boxes drawn) and `<view>_mask.png` (white = acted on). Always:
`regions.json` with the phase, per-view boxes, labels, raw model text, parse status, latency
and the Gaussians densified / spawned / seeded / pruned.
"""
import os

import numpy as np
from PIL import Image, ImageDraw

from semantic.proposers import to_uint8
from utils.io_utils import atomic_path, atomic_write_json

BOX_COLOUR = (255, 40, 40)


def region_dir(model_path: str, iteration: int) -> str:
    return os.path.join(model_path, "regions", f"iter_{iteration:06d}")


def _save_png(array: np.ndarray, path: str):
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def draw_boxes(image: np.ndarray, boxes, labels) -> np.ndarray:
    pil = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(pil)
    for (x1, y1, x2, y2), lab in zip(boxes, labels):
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=BOX_COLOUR, width=1)
        if lab:
            draw.text((x1 + 2, y1 + 1), str(lab)[:24], fill=BOX_COLOUR)
    return np.asarray(pil)


def save_view_images(folder: str, obs, result):
    stem = os.path.join(folder, obs.name)
    render = to_uint8(obs.render)
    _save_png(render, stem + "_render.png")
    shown = render
    if obs.target is not None:
        target = to_uint8(obs.target)
        _save_png(target, stem + "_target.png")
        if result.phase == "phase2":  # subjects are found on the photo
            shown = target
    _save_png(draw_boxes(shown, result.boxes, result.labels), stem + "_boxes.png")
    _save_png((result.mask.astype(np.uint8) * 255), stem + "_mask.png")


def write_record(folder: str, record: dict):
    atomic_write_json(os.path.join(folder, "regions.json"), record)
