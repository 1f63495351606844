"""The region of interest: 2D annotations -> per-Gaussian edit weights -> per-view soft masks.

1. Annotations: pixel boxes / polygons / points given per training view (`--roi_box` ...), or
   boxes Qwen3-VL finds for `--roi_prompt` (through the semantic module's grounding, one
   adapter: `ground_boxes`). Each becomes a 2D mask of its view.
2. Lifting: every annotated view votes for every Gaussian, weighted by how much that Gaussian
   is seen there. With colours c_i and an image-space weight map M, the render is
   sum_i c_i a_i T_i per pixel, so d(sum_p M(p) R(p)) / d c_i = sum_p M(p) a_i(p) T_i(p): the
   Gaussian's visible footprint inside the mask. Two channels in one render + backward give
   the in-mask and the total footprint; their ratio, summed over views, is the vote. Occluded
   Gaussians carry no footprint, so a box never selects what lies hidden behind the object.
   A smoothstep around --roi_threshold turns the vote into a soft weight in [0,1].
3. Per-view masks: rendering the weights as colours gives, for any view, the share of each
   pixel that comes from RoI Gaussians ("visibility"); feathered, that is the blend mask.
"""
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from utils.errors import UserError, elide
from utils.image_utils import to_uint8_hwc

MIN_FOOTPRINT = 1e-3   # summed visible footprint below which a Gaussian has no vote


@dataclass
class Annotation:
    view: int            # training view index
    kind: str            # box | polygon | points | grounded
    coords: List[float]
    text: str            # what the user typed (or the grounding answer), for messages


# ------------------------------------------------------------------ annotations

def view_index(key: str, cameras: Sequence, flag: str, text: str) -> int:
    """A view given as its training index or its image name (with or without extension)."""
    key = key.strip()
    if key.isdigit():
        idx = int(key)
        if idx >= len(cameras):
            raise UserError(f"{flag} {elide(text)}: view {idx} does not exist (the scene has "
                            f"{len(cameras)} training views, 0..{len(cameras) - 1})")
        return idx
    for i, cam in enumerate(cameras):
        name = cam.image_name
        if key in (name, os.path.splitext(name)[0], os.path.basename(name),
                   os.path.splitext(os.path.basename(name))[0]):
            return i
    raise UserError(f"{flag} {elide(text)}: no training view named {elide(key)}")


def _numbers(text: str, flag: str) -> (str, List[float]):
    if ":" not in text:
        raise UserError(f"{flag} {elide(text)}: expected VIEW:numbers, e.g. 3:10,20,60,80")
    key, nums = text.rsplit(":", 1)
    try:
        values = [float(v) for v in nums.split(",") if v.strip() != ""]
    except ValueError:
        raise UserError(f"{flag} {elide(text)}: coordinates must be numbers") from None
    return key, values


def parse_annotations(cfg, cameras: Sequence) -> List[Annotation]:
    """--roi_box / --roi_polygon / --roi_points -> checked Annotations."""
    out = []
    specs = (("--roi_box", "box", cfg.roi_box), ("--roi_polygon", "polygon", cfg.roi_polygon),
             ("--roi_points", "points", cfg.roi_points))
    for flag, kind, items in specs:
        for text in items or []:
            key, nums = _numbers(text, flag)
            idx = view_index(key, cameras, flag, text)
            cam = cameras[idx]
            W, H = cam.image_width, cam.image_height
            if kind == "box":
                if len(nums) != 4:
                    raise UserError(f"{flag} {elide(text)}: a box is x1,y1,x2,y2")
                x1, y1, x2, y2 = nums
                if x2 <= x1 or y2 <= y1:
                    raise UserError(f"{flag} {elide(text)}: empty box (need x1 < x2 and y1 < y2)")
                if x2 <= 0 or y2 <= 0 or x1 >= W or y1 >= H:
                    raise UserError(f"{flag} {elide(text)}: the box lies outside the {W}x{H} image "
                                    f"of view {idx}")
            elif kind == "polygon":
                if len(nums) < 6 or len(nums) % 2:
                    raise UserError(f"{flag} {elide(text)}: a polygon is 3 or more x,y vertices")
            else:
                if len(nums) < 2 or len(nums) % 2:
                    raise UserError(f"{flag} {elide(text)}: points are x,y pairs")
            if kind != "box":
                xs, ys = nums[0::2], nums[1::2]
                if max(xs) < 0 or max(ys) < 0 or min(xs) >= W or min(ys) >= H:
                    raise UserError(f"{flag} {elide(text)}: lies outside the {W}x{H} image "
                                    f"of view {idx}")
            out.append(Annotation(idx, kind, nums, text))
    return out


def annotation_mask(ann: Annotation, width: int, height: int,
                    point_radius: float = 6.0) -> np.ndarray:
    """(H,W) float32 mask in {0,1}. Boxes use pixel-edge coordinates (x2, y2 exclusive), as
    the grounding boxes do."""
    from PIL import Image, ImageDraw
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    c = ann.coords
    if ann.kind in ("box", "grounded"):
        x1, y1 = max(0, int(math.floor(c[0]))), max(0, int(math.floor(c[1])))
        x2, y2 = min(width, int(math.ceil(c[2]))), min(height, int(math.ceil(c[3])))
        if x2 > x1 and y2 > y1:
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=255)
    elif ann.kind == "polygon":
        draw.polygon(list(zip(c[0::2], c[1::2])), fill=255)
    else:
        r = point_radius
        for x, y in zip(c[0::2], c[1::2]):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return (np.asarray(img, dtype=np.float32) / 255.0)


def view_masks(annotations: Sequence[Annotation], cameras: Sequence,
               point_radius: float = 6.0) -> Dict[int, np.ndarray]:
    """Union of each view's annotations."""
    masks: Dict[int, np.ndarray] = {}
    for ann in annotations:
        cam = cameras[ann.view]
        m = annotation_mask(ann, cam.image_width, cam.image_height, point_radius)
        masks[ann.view] = np.maximum(masks[ann.view], m) if ann.view in masks else m
    return masks


# ------------------------------------------------------------------ prompt grounding

def ground_boxes(images: List[np.ndarray], prompt: str, model_path: str,
                 device: str = "cpu") -> List[List[List[float]]]:
    """Boxes ([x1, y1, x2, y2] pixels) of `prompt` in each HxWx3 uint8 image, from Qwen3-VL
    through the semantic module's grounding. The one place edit.py talks to the VLM (tests
    replace this function)."""
    from semantic.vlm import load_vlm  # heavy and optional: import on use
    vlm = load_vlm(model_path, device)
    answers = vlm.ground(images, prompt)
    return [[[float(v) for v in box] for box in ans.boxes] for ans in answers]


def grounding_views(n_views: int, k: int) -> List[int]:
    """k view indices evenly spread over the training views."""
    k = min(k, n_views)
    return sorted({int(round(i * (n_views - 1) / max(k - 1, 1))) for i in range(k)})


def ground_annotations(cfg, cameras: Sequence, device) -> (List[Annotation], dict):
    """Ask the VLM where --roi_prompt is in --roi_views photos; returns Annotations and a
    JSON-able record of the answers."""
    idx = grounding_views(len(cameras), cfg.roi_views)
    images = [to_uint8_hwc(cameras[i].original_image) for i in idx]
    answers = ground_boxes(images, cfg.roi_prompt, cfg.qwen_model_path, str(device))
    anns, record = [], {"prompt": cfg.roi_prompt, "model": cfg.qwen_model_path, "views": {}}
    for i, boxes in zip(idx, answers):
        record["views"][str(i)] = boxes
        for b in boxes:
            anns.append(Annotation(i, "grounded", list(b), f"{i}:{','.join(f'{v:g}' for v in b)}"))
    if not anns:
        raise UserError(f"--roi_prompt {elide(cfg.roi_prompt)}: the VLM found no box in any of the "
                        f"{len(idx)} views it looked at; give --roi_box instead")
    return anns, record


def annotations_from_record(record: dict) -> List[Annotation]:
    return [Annotation(int(v), "grounded", list(b), f"{v}:{b}")
            for v, boxes in record["views"].items() for b in boxes]


# ------------------------------------------------------------------ lifting to Gaussians

def footprints(model, camera, mask: torch.Tensor, render_fn, pipe):
    """Per-Gaussian visible footprint inside `mask` (H,W) and in the whole view."""
    n = model.num_points
    dev = model.get_xyz.device
    colors = torch.zeros(n, 3, device=dev, requires_grad=True)
    bg = torch.zeros(3, device=dev)
    img = render_fn(camera, model, pipe, bg, override_color=colors)["render"]
    objective = (img[0] * mask.to(dev)).sum() + img[1].sum()
    (grad,) = torch.autograd.grad(objective, [colors])
    return grad[:, 0].clamp_min(0), grad[:, 1].clamp_min(0)


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def lift_masks(model, cameras: Sequence, masks: Dict[int, np.ndarray], render_fn, pipe,
               threshold: float = 0.5, softness: float = 0.3):
    """Per-Gaussian weights (N,) in [0,1] and the raw votes (share of each Gaussian's visible
    footprint, over the annotated views, that falls inside the masks)."""
    dev = model.get_xyz.device
    inside = torch.zeros(model.num_points, device=dev)
    total = torch.zeros(model.num_points, device=dev)
    for idx, m in sorted(masks.items()):
        a, b = footprints(model, cameras[idx], torch.as_tensor(m), render_fn, pipe)
        inside += a
        total += b
    votes = torch.where(total > MIN_FOOTPRINT, inside / total.clamp_min(1e-12),
                        torch.zeros_like(total))
    lo = threshold - softness / 2
    weights = smoothstep((votes - lo) / softness)
    weights = torch.where(total > MIN_FOOTPRINT, weights, torch.zeros_like(weights))
    return weights.detach(), votes.detach()


@torch.no_grad()
def render_visibility(model, camera, weights: torch.Tensor, render_fn, pipe) -> torch.Tensor:
    """(H,W): the share of each pixel's colour that comes from RoI Gaussians."""
    dev = model.get_xyz.device
    colors = weights.to(dev)[:, None].expand(-1, 3).contiguous()
    bg = torch.zeros(3, device=dev)
    img = render_fn(camera, model, pipe, bg, override_color=colors)["render"]
    return img[0].clamp(0.0, 1.0)


def feather(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of an (H,W) mask (replicate padding keeps the borders honest)."""
    if sigma <= 0:
        return mask.clamp(0, 1)
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32, device=mask.device)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    m = mask[None, None].float()
    m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return m[0, 0].clamp(0, 1)


def blend_mask(visibility: torch.Tensor, sigma: float) -> torch.Tensor:
    """The per-view soft mask the edit is blended with (and the RoI losses are weighted by)."""
    return feather(visibility, sigma)


class RoI:
    """The RoI of one round: per-Gaussian weights, and per-view visibility / blend masks
    rendered on demand (and cached: only the round's selected views are asked for masks)."""

    def __init__(self, model, cameras: Sequence, weights: torch.Tensor,
                 votes: Optional[torch.Tensor], render_fn, pipe, feather_sigma: float,
                 whole_image: bool):
        self.model, self.cameras = model, cameras
        self.weights, self.votes = weights, votes   # (N,), (N,) or None
        self.render_fn, self.pipe, self.sigma = render_fn, pipe, feather_sigma
        self.whole_image = whole_image              # no RoI given: every pixel, every Gaussian
        self._vis: Dict[int, torch.Tensor] = {}

    def visibility(self, view: int) -> torch.Tensor:
        """(H,W) share of each pixel that comes from RoI Gaussians."""
        if view not in self._vis:
            cam = self.cameras[view]
            if self.whole_image:
                self._vis[view] = torch.ones(cam.image_height, cam.image_width,
                                             device=self.weights.device)
            else:
                self._vis[view] = render_visibility(self.model, cam, self.weights,
                                                    self.render_fn, self.pipe)
        return self._vis[view]

    def mask(self, view: int) -> torch.Tensor:
        """(H,W) soft blend mask of a view."""
        vis = self.visibility(view)
        return vis if self.whole_image else blend_mask(vis, self.sigma)

    def coverage(self) -> np.ndarray:
        """Mean visibility of every view (how much of the view the RoI fills), without
        keeping the images."""
        out = []
        for i in range(len(self.cameras)):
            out.append(float(self.visibility(i).mean()))
            self._vis.pop(i, None)
        return np.asarray(out)

    def centroid(self) -> torch.Tensor:
        w = self.weights[:, None]
        return (self.model.get_xyz.detach() * w).sum(0) / w.sum().clamp_min(1e-12)


def build_roi(model, cameras: Sequence, annotations: Optional[List[Annotation]], render_fn,
              pipe, cfg) -> RoI:
    """Lift the annotations onto the current Gaussians."""
    dev = model.get_xyz.device
    if not annotations:
        return RoI(model, cameras, torch.ones(model.num_points, device=dev), None, render_fn,
                   pipe, cfg.roi_feather, True)
    masks2d = view_masks(annotations, cameras, cfg.roi_point_radius)
    weights, votes = lift_masks(model, cameras, masks2d, render_fn, pipe, cfg.roi_threshold,
                                cfg.roi_softness)
    return RoI(model, cameras, weights, votes, render_fn, pipe, cfg.roi_feather, False)
