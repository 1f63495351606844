"""`<model>/regions/iter_<N>/`: what each analysis saw and decided.

Per view: `<view>_render.png`, `<view>_target.png` (training views), `<view>_boxes.png` (the
image the boxes refer to, boxes drawn) and `<view>_mask.png` (white = acted on). Always:
`regions.json` with the phase, per-view boxes, labels, raw model text, parse status, latency,
each view's camera (pose and field of view: phase-3 views are novel) and the Gaussians
densified / spawned / seeded / pruned; `added.npz` with where the Gaussians this analysis
added were born (`xyz`, `kind`: 0 densified, 1 spawned, 2 seeded, `view`: index in `views`),
for the viewer (view.py) to highlight.
"""
import os

import numpy as np
from PIL import Image, ImageDraw

from utils.image_utils import to_uint8_hwc
from utils.io_utils import atomic_path, atomic_write_json

BOX_COLOUR = (255, 40, 40)
ADDED_KINDS = ("densify", "spawn", "seeded")  # added.npz `kind` codes 0, 1, 2


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
    render = to_uint8_hwc(obs.render)
    _save_png(render, stem + "_render.png")
    shown = render
    if obs.target is not None:
        target = to_uint8_hwc(obs.target)
        _save_png(target, stem + "_target.png")
        if result.phase == "phase2":  # subjects are found on the photo
            shown = target
    _save_png(draw_boxes(shown, result.boxes, result.labels), stem + "_boxes.png")
    _save_png((result.mask.astype(np.uint8) * 255), stem + "_mask.png")


def write_record(folder: str, record: dict):
    atomic_write_json(os.path.join(folder, "regions.json"), record)


def view_pose(view) -> dict:
    """The analysed view's camera as regions.json stores it: R (camera-to-world rotation, the
    reference's Camera.R), T (world-to-camera translation), fields of view in radians."""
    return {"image_name": getattr(view, "image_name", "view"),
            "width": int(view.image_width), "height": int(view.image_height),
            "fovx": round(float(view.FoVx), 6), "fovy": round(float(view.FoVy), 6),
            "R": np.round(np.asarray(view.R, np.float64), 6).tolist(),
            "T": np.round(np.asarray(view.T, np.float64), 6).tolist()}


class AddedGaussians:
    """Collects where an analysis's new Gaussians are, step by step (row indices move as
    later steps split and prune, so positions are taken at once)."""

    def __init__(self, model):
        self.model = model
        self.xyz, self.kind, self.view = [], [], []

    def note(self, mode: str, view_index: int, first_row: int):
        xyz = self.model.get_xyz[first_row:].detach().float().cpu().numpy()
        self.xyz.append(xyz)
        self.kind.append(np.full(len(xyz), ADDED_KINDS.index(mode), np.uint8))
        self.view.append(np.full(len(xyz), view_index, np.int16))

    def save(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        cat = (lambda parts, dt, shape: np.concatenate(parts) if parts
               else np.zeros(shape, dt))
        with atomic_path(os.path.join(folder, "added.npz")) as tmp:
            with open(tmp, "wb") as f:  # a file object: savez would append .npz to a name
                np.savez_compressed(f, xyz=cat(self.xyz, np.float32, (0, 3)),
                                    kind=cat(self.kind, np.uint8, (0,)),
                                    view=cat(self.view, np.int16, (0,)))
