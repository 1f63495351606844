"""Region proposers: `propose(observations, phase) -> [RegionResult]`, one result per view.

An Observation is what a proposer may look at for one view: the current render, its alpha,
and the training photo (None for novel views, which have no photo). A RegionResult carries
pixel boxes, the (H,W) mask that guidance acts on, labels, the raw model text and timing.

* QwenProposer asks Qwen3-VL (the product's method), all views in one batched call.
* ErrorProposer needs no model (baseline, ablation, users without a VLM): boxes around
  connected regions of a thresholded error map; see its docstring for the phase-2 heuristic.
"""
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch
from scipy import ndimage

from semantic.boxes import (Box, boxes_to_mask, clean_boxes, invert_mask,
                            parse_boxes, to_view_pixels)
from utils.image_utils import to_uint8_hwc

# Phase-2 answers are subjects; the region acted on is their complement.
INVERTED_PHASES = ("phase2",)
SUBJECT_DEPTH_MARGIN = 1.25  # phase 2: the subject lies no deeper than this x the focus depth


@dataclass
class Observation:
    name: str
    render: torch.Tensor             # (3,H,W) float in [0,1]
    alpha: torch.Tensor              # (H,W) float
    target: Optional[torch.Tensor]   # (3,H,W) float, None for novel views
    depth: Optional[torch.Tensor] = None  # (H,W) expected depth of solid pixels, else 0
    focus_depth: Optional[float] = None   # view depth of the point the cameras look at

    @property
    def size(self):
        return int(self.render.shape[2]), int(self.render.shape[1])


@dataclass
class RegionResult:
    view: str
    phase: str
    boxes: List[Box]
    labels: List[str]
    mask: np.ndarray                 # (H,W) bool: where guidance densifies / spawns
    raw_text: str = ""
    status: str = "ok"               # the parse status (error proposer: ok / empty)
    notes: List[str] = field(default_factory=list)
    latency_s: float = 0.0           # this view's share of the analysis time

    def summary(self) -> dict:
        return {"view": self.view, "phase": self.phase,
                "boxes": [[round(v, 1) for v in b] for b in self.boxes],
                "labels": self.labels, "mask_fraction": round(float(self.mask.mean()), 4),
                "raw_text": self.raw_text, "parse_status": self.status, "notes": self.notes,
                "latency_s": round(self.latency_s, 4)}


def region_result(obs: Observation, phase: str, boxes, labels, raw_text="", status="ok",
                  notes=None, latency=0.0) -> RegionResult:
    mask = boxes_to_mask(boxes, obs.size)
    if phase in INVERTED_PHASES:
        mask = invert_mask(mask)
    return RegionResult(obs.name, phase, list(boxes), list(labels), mask, raw_text, status,
                        list(notes or []), latency)


class QwenProposer:
    """Phase 1: render | photo side by side; phase 2: the photo; phase 3: the render."""

    def __init__(self, vlm, prompts: dict, max_boxes: int = 8, max_box_frac: float = 0.5):
        self.vlm, self.prompts = vlm, prompts
        self.max_boxes, self.max_box_frac = max_boxes, max_box_frac

    def model_image(self, obs: Observation, phase: str):
        """The image shown for this view, and the view's tile (x0, y0, w, h) inside it."""
        render = to_uint8_hwc(obs.render)
        w, h = obs.size
        if phase == "phase1" and obs.target is not None:
            return np.concatenate([render, to_uint8_hwc(obs.target)], axis=1), (0, 0, w, h)
        if phase == "phase2" and obs.target is not None:
            return to_uint8_hwc(obs.target), (0, 0, w, h)
        return render, (0, 0, w, h)

    def propose(self, observations: Sequence[Observation], phase: str) -> List[RegionResult]:
        if not observations:
            return []
        shown = [self.model_image(o, phase) for o in observations]
        t0 = time.perf_counter()
        texts, seen_sizes = self.vlm.generate([img for img, _ in shown],
                                              [self.prompts[phase]] * len(shown))
        share = (time.perf_counter() - t0) / len(observations)
        results = []
        for obs, (img, tile), text, seen in zip(observations, shown, texts, seen_sizes):
            parsed = parse_boxes(text)
            # The model's coordinates are relative to the image it saw (maybe a composite):
            # scale to that image, then cut out this view's tile.
            full_w, full_h = img.shape[1], img.shape[0]
            sx, sy = seen[0] / full_w, seen[1] / full_h
            seen_tile = (tile[0] * sx, tile[1] * sy, tile[2] * sx, tile[3] * sy)
            mapped = to_view_pixels(parsed, seen, seen_tile, obs.size)
            # Subject boxes (phase 2) may be large: the complement is what gets acted on.
            frac = 1.0 if phase in INVERTED_PHASES else self.max_box_frac
            boxes, labels, notes = clean_boxes(mapped, parsed.labels, obs.size, self.max_boxes,
                                               frac)
            results.append(region_result(obs, phase, boxes, labels, text, parsed.status, notes,
                                         share))
        return results


def _close(mask: np.ndarray) -> np.ndarray:
    """Fill gaps of a few pixels; `| mask` undoes scipy's erosion of the image border."""
    return ndimage.binary_closing(mask, iterations=2) | mask


def _smooth(x: np.ndarray, size: int) -> np.ndarray:
    return ndimage.uniform_filter(x.astype(np.float32), size=size, mode="nearest")


def component_boxes(mask: np.ndarray, weight: np.ndarray, max_boxes: int,
                    min_pixels: int) -> List[Box]:
    """Bounding boxes of the connected regions of `mask`, heaviest (sum of weight) first."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    mass = ndimage.sum(weight, labels, idx)
    size = ndimage.sum(np.ones_like(weight), labels, idx)
    slices = ndimage.find_objects(labels)
    order = np.argsort(-mass)
    out = []
    for k in order:
        if size[k] < min_pixels:
            continue
        sy, sx = slices[k]
        out.append((float(sx.start), float(sy.start), float(sx.stop), float(sy.stop)))
        if len(out) >= max_boxes:
            break
    return out


class ErrorProposer:
    """Boxes from render-vs-photo error; no model.

    phase 1: the error (channel-mean |render - photo|, smoothed over ~3 % of the image width)
        normalised by its maximum; regions above `error_thresh` give boxes, heaviest first.
    phase 2 ("main subject" heuristic): a capture's subject is what its cameras look at. With
        the cameras' focus point (semantic/views.py: where their optical axes meet, so 360-
        degree captures have one), the subject is every solid (alpha >= 0.5) pixel no deeper
        than SUBJECT_DEPTH_MARGIN x the focus point's depth in that view; the boxes of its
        connected regions are the answer and guidance acts on the complement, as with the VLM
        (here the pixel-exact complement, not that of the boxes): the far background and every
        empty pixel. Without a focus point (forward-facing captures), the subject is the
        solid, well-fitted (normalised error below `error_thresh`) connected region that best
        trades size for closeness to the image centre (area x (1 - distance / half-diagonal)).
        That fallback takes most of a view once the model is solid (about 94 % on
        juicebox_table), which is why depth comes first.
    phase 3 (novel views, no photo): under-reconstruction shows as holes, so regions of the
        smoothed alpha below 0.5 give the boxes (with a photo, the phase-1 error map is used).
    """
    # Per-view caps that replace the published ones when --phaseN_max_points is left at -1.
    # Phase 1 asks for regions *starting to show* the photo's detail; these boxes are where the
    # render is most wrong, which the strategy's gradients densify already. Densifying there
    # as well cost juicebox_table 0.4-1.8 dB on 4 of 5 seeds (bench/RESULTS.md, fifth pass),
    # so by default phase 1 only proposes and records.
    default_caps = {1: 0}

    def __init__(self, max_boxes: int = 8, max_box_frac: float = 0.5,
                 error_thresh: float = 0.3):
        self.max_boxes, self.max_box_frac, self.error_thresh = max_boxes, max_box_frac, error_thresh

    def _error(self, obs: Observation) -> np.ndarray:
        err = (obs.render - obs.target).abs().mean(0).detach().cpu().numpy()
        err = _smooth(err, max(3, obs.size[0] // 32))
        top = float(err.max())
        return err / top if top > 0 else err

    @staticmethod
    def _subject(obs: Observation) -> Optional[np.ndarray]:
        """(H,W) bool: the solid pixels at most SUBJECT_DEPTH_MARGIN x the focus depth away;
        None without depth or focus."""
        if obs.depth is None or not obs.focus_depth:
            return None
        depth = obs.depth.detach().cpu().numpy()
        alpha = obs.alpha.detach().cpu().numpy()
        return _close((alpha >= 0.5) & (depth > 0)
                      & (depth <= SUBJECT_DEPTH_MARGIN * obs.focus_depth))

    def _boxes(self, obs: Observation, phase: str) -> List[Box]:
        w, h = obs.size
        min_pixels = max(4, (w * h) // 2000)
        alpha = obs.alpha.detach().cpu().numpy()
        near = self._subject(obs) if phase == "phase2" else None
        if near is not None:
            return component_boxes(near, near.astype(np.float32), self.max_boxes, min_pixels)
        if phase == "phase2" and obs.target is not None:
            err = self._error(obs)
            mature = _close((alpha >= 0.5) & (err < self.error_thresh))
            labels, n = ndimage.label(mature)
            if n == 0:
                return []
            yy, xx = np.mgrid[0:h, 0:w]
            dist = np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2) / (0.5 * np.hypot(w, h))
            idx = np.arange(1, n + 1)
            area = ndimage.sum(np.ones_like(dist), labels, idx)
            mean_dist = ndimage.mean(dist, labels, idx)
            best = int(np.argmax(area * np.clip(1 - mean_dist, 0, None)))
            if area[best] < min_pixels:
                return []
            sy, sx = ndimage.find_objects(labels)[best]
            return [(float(sx.start), float(sy.start), float(sx.stop), float(sy.stop))]
        if obs.target is not None:
            err = self._error(obs)
            return component_boxes(err > self.error_thresh, err, self.max_boxes, min_pixels)
        holes = _smooth(alpha, max(3, w // 32)) < 0.5
        return component_boxes(holes, 1.0 - alpha, self.max_boxes, min_pixels)

    def propose(self, observations: Sequence[Observation], phase: str) -> List[RegionResult]:
        results = []
        for obs in observations:
            t0 = time.perf_counter()
            found = self._boxes(obs, phase)
            frac = 1.0 if phase in INVERTED_PHASES else self.max_box_frac
            boxes, labels, notes = clean_boxes(found, [phase] * len(found), obs.size,
                                               self.max_boxes, frac)
            res = region_result(obs, phase, boxes, labels, "", "ok" if boxes else "empty", notes,
                                time.perf_counter() - t0)
            subject = self._subject(obs) if phase == "phase2" else None
            if subject is not None:  # act on the exact complement, not that of the boxes
                res.mask = ~subject
            results.append(res)
        return results


PROPOSERS = {"error": ErrorProposer, "qwen": QwenProposer}  # --region_proposer's choices


def proposer_default_caps(kind: str) -> Optional[dict]:
    """phase -> the per-view cap proposer `kind` puts in place of a --phaseN_max_points left
    at -1 (None: the published caps)."""
    return getattr(PROPOSERS.get(kind), "default_caps", None)
