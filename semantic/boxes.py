"""Boxes from a VLM's answer text, and boxes <-> pixel masks.

Qwen3-VL grounding answers JSON such as `[{"bbox_2d": [x1, y1, x2, y2], "label": "cup"}]` with
coordinates relative 0-1000 of the image it was given. Real answers are messier: code fences,
prose around the JSON, a list cut off by the token limit, a single object instead of a list,
absolute pixels (Qwen2.5-VL's convention), inverted or out-of-range corners, nothing at all.
`parse_boxes` recovers every complete box it can find and says how the parse went.
"""
import json
import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

Box = Tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the view, x2/y2 exclusive

RELATIVE_RANGE = 1000.0
MIN_BOX_PIXELS = 2.0     # a box thinner than this (in view pixels) is degenerate

# Answers are parsed in time linear in their length (a model can emit anything, e.g. a
# '"bbox_2d": [' followed by thousands of spaces): patterns below have bounded repeats, the
# number list of a box is found with str.find, and answers are cut at MAX_ANSWER_CHARS.
MAX_ANSWER_CHARS = 65536   # far above any real answer (max_new_tokens is a few hundred)
MAX_JSON_DEPTH = 32        # real answers nest 2 levels (a list of objects)
_BOX_KEY = re.compile(r'"?(?:bbox_2d|bbox|box|box_2d)"?[ \t\r\n]{0,16}:[ \t\r\n]{0,16}\[')
_BOX_BODY_CHARS = 200      # the numbers of one box, "[" to "]"
_NUMBER_CHARS = frozenset("-+0123456789.eE \t\r\n,")
_LABEL = re.compile(r'"label"[ \t\r\n]{0,16}:[ \t\r\n]{0,16}"((?:[^"\\]|\\.){0,200})"')
_FENCE = re.compile(r"```(?:json|JSON)?")


@dataclass
class ParsedBoxes:
    """Boxes in the coordinates of the image the model saw (not yet mapped to a view)."""
    boxes: List[Box] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)
    status: str = "empty"          # ok | partial | empty | unparseable
    coords: str = "relative"       # relative (0-1000) | absolute (pixels)


def _strip_fences(text: str) -> str:
    """The inside of the first ``` fence (to the closing one or the end), else the text."""
    m = _FENCE.search(text)
    if not m:
        return text
    end = text.find("```", m.end())
    return text[m.end():end if end >= 0 else len(text)].strip()


def _numbers(s: str) -> Optional[List[float]]:
    try:
        vals = [float(v) for v in s.replace(",", " ").split()]
    except ValueError:
        return None
    return vals if len(vals) == 4 and all(np.isfinite(vals)) else None


def _as_box(v) -> Optional[Box]:
    """Four finite JSON numbers as floats (an int of 300+ digits overflows: None)."""
    if not (isinstance(v, (list, tuple)) and len(v) == 4):
        return None
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return None
        try:
            x = float(x)
        except OverflowError:
            return None
        if not np.isfinite(x):
            return None
        out.append(x)
    return tuple(out)


def _from_json(obj, boxes, labels):
    """Walk decoded JSON in document order: dicts with a box key, bare [x1, y1, x2, y2]
    lists, and lists of them (nested too, up to MAX_JSON_DEPTH; no recursion)."""
    stack = [(obj, 0)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, dict):
            for key in ("bbox_2d", "bbox", "box", "box_2d"):
                box = _as_box(obj.get(key))
                if box is not None:
                    boxes.append(box)
                    labels.append(str(obj.get("label", ""))[:200])
                    break
        elif isinstance(obj, list):
            box = _as_box(obj)
            if box is not None:
                boxes.append(box)
                labels.append("")
            elif depth < MAX_JSON_DEPTH:
                stack.extend((item, depth + 1) for item in reversed(obj))


def _from_text(body: str, boxes, labels):
    """Every complete `"key": [a, b, c, d]` entry in text that is not valid JSON as a whole
    (prose around it, cut off by the token limit), with the label nearest after it."""
    for m in _BOX_KEY.finditer(body):
        end = body.find("]", m.end(), m.end() + _BOX_BODY_CHARS)
        inner = body[m.end():end] if end >= 0 else ""
        if not inner or not _NUMBER_CHARS.issuperset(inner):
            continue
        vals = _numbers(inner)
        if vals is None:
            continue
        boxes.append(tuple(vals))
        lab = _LABEL.search(body, end, min(len(body), end + 200))
        if lab is None:  # label written before the box
            before = list(_LABEL.finditer(body, max(0, m.start() - 200), m.start()))
            lab = before[-1] if before else None
        labels.append(lab.group(1) if lab else "")


def parse_boxes(text: Optional[str], coords: str = "auto") -> ParsedBoxes:
    """Boxes in `text`. coords: "relative" (0-1000, Qwen3-VL), "absolute" (pixels of the image
    the model saw) or "auto": relative unless some coordinate exceeds 1000."""
    if coords not in ("auto", "relative", "absolute"):
        raise ValueError(f"coords must be auto, relative or absolute, got {coords!r}")
    text = (text or "").strip()
    if not text:
        return ParsedBoxes(status="empty")
    # An over-long answer is cut like one that hit the token limit: complete boxes survive.
    body = _strip_fences(text[:MAX_ANSWER_CHARS])
    boxes: List[Box] = []
    labels: List[str] = []
    status = "ok" if len(text) <= MAX_ANSWER_CHARS else "partial"
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):  # not JSON as a whole, nested too deep, 4300+ digits
        status = "partial"
        _from_text(body, boxes, labels)
    else:
        _from_json(decoded, boxes, labels)
    if not boxes:
        return ParsedBoxes(status="unparseable")
    mode = coords
    if mode == "auto":
        mode = "absolute" if max(max(abs(v) for v in b) for b in boxes) > RELATIVE_RANGE \
            else "relative"
    return ParsedBoxes(boxes=boxes, labels=labels, status=status, coords=mode)


def to_view_pixels(parsed: ParsedBoxes, seen_size: Tuple[int, int],
                   tile: Tuple[int, int, int, int], view_size: Tuple[int, int]) -> List[Box]:
    """Map boxes from the image the model saw to pixels of one view.

    seen_size: (W, H) of the image the model was given (after our resize), e.g. a side-by-side
        composite of two views.
    tile: (x0, y0, w, h) of the view's region inside that image, in the same units as
        seen_size. A box is kept when its centre falls inside the tile, then clipped to it.
        (The bug this avoids: scaling a composite's relative coordinates by one view's width.)
    view_size: (W, H) of the view in pixels.
    """
    sw, sh = seen_size
    x0, y0, tw, th = tile
    vw, vh = view_size
    out = []
    for b in parsed.boxes:
        if parsed.coords == "relative":
            b = (b[0] / RELATIVE_RANGE * sw, b[1] / RELATIVE_RANGE * sh,
                 b[2] / RELATIVE_RANGE * sw, b[3] / RELATIVE_RANGE * sh)
        x1, x2 = sorted((b[0], b[2]))
        y1, y2 = sorted((b[1], b[3]))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        if not (x0 <= cx <= x0 + tw and y0 <= cy <= y0 + th):
            out.append(None)
            continue
        sx, sy = vw / tw, vh / th
        out.append(((x1 - x0) * sx, (y1 - y0) * sy, (x2 - x0) * sx, (y2 - y0) * sy))
    return out


def clean_boxes(boxes: Sequence[Optional[Box]], labels: Sequence[str], view_size: Tuple[int, int],
                max_boxes: int, max_box_frac: float) -> Tuple[List[Box], List[str], List[str]]:
    """Order corners, clamp to the view, drop degenerate boxes and those over `max_box_frac` of the view's
    area, keep at most `max_boxes` (the model's order: it lists the most salient first).
    Returns (boxes, labels, notes) with a note per dropped box."""
    W, H = view_size
    kept, kept_labels, notes = [], [], []
    for i, b in enumerate(boxes):
        lab = labels[i] if i < len(labels) else ""
        if b is None:
            notes.append(f"box {i}: outside the view's part of the image")
            continue
        xa, xb = sorted((b[0], b[2]))
        ya, yb = sorted((b[1], b[3]))
        x1, x2 = min(max(xa, 0.0), W), min(max(xb, 0.0), W)
        y1, y2 = min(max(ya, 0.0), H), min(max(yb, 0.0), H)
        if x2 - x1 < MIN_BOX_PIXELS or y2 - y1 < MIN_BOX_PIXELS:
            notes.append(f"box {i}: degenerate after clamping")
            continue
        if (x2 - x1) * (y2 - y1) > max_box_frac * W * H:
            notes.append(f"box {i}: covers more than {max_box_frac:.0%} of the view")
            continue
        if len(kept) >= max_boxes:
            notes.append(f"box {i}: over the {max_boxes}-box cap")
            continue
        kept.append((x1, y1, x2, y2))
        kept_labels.append(lab)
    return kept, kept_labels, notes


def boxes_to_mask(boxes: Sequence[Box], view_size: Tuple[int, int]) -> np.ndarray:
    """(H,W) bool: pixels whose centres lie inside any box."""
    W, H = view_size
    mask = np.zeros((H, W), dtype=bool)
    for x1, y1, x2, y2 in boxes:
        # pixel (x, y) has its centre at (x + 0.5, y + 0.5) in box coordinates
        c0, c1 = int(np.ceil(x1 - 0.5)), int(np.ceil(x2 - 0.5))
        r0, r1 = int(np.ceil(y1 - 0.5)), int(np.ceil(y2 - 0.5))
        mask[max(r0, 0):max(min(r1, H), 0), max(c0, 0):max(min(c1, W), 0)] = True
    return mask


def invert_mask(mask: np.ndarray) -> np.ndarray:
    """Background = everything the subject boxes do not cover."""
    return ~np.asarray(mask, dtype=bool)
