"""A guided run's `<model>/regions/` in 3D: a slider over the analyses; for the chosen one
each analysed view's frustum with its boxes and mask, the Gaussians it added highlighted
(densified / spawned / seeded), and the Gaussian count over iterations with the phase bands.
The 3D counterpart of notebooks/inspect_regions.ipynb (formats: semantic/visualize.py)."""
import glob
import json
import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from PIL import Image

from viewer.cameras import ViewSpec, add_frustums
from viewer.plots import count_plot, read_counts

KIND_COLOURS = np.array([[255, 220, 0], [0, 230, 255], [255, 0, 200]], np.uint8)
KIND_NAMES = ("densified", "spawned", "seeded")
ANALYSIS_COLOUR = (230, 30, 30)


@dataclass
class Analysis:
    iteration: int
    phase: str
    folder: str
    record: dict


def read_analyses(model_path: str) -> List[Analysis]:
    """The analyses with views, by iteration (phase-4 prune records have none)."""
    out = []
    for path in glob.glob(os.path.join(model_path, "regions", "iter_*", "regions.json")):
        try:
            with open(path) as f:
                rec = json.load(f)
            it = int(rec["iteration"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a half-written or foreign file: skip it, the others still show
        if rec.get("views"):
            out.append(Analysis(it, str(rec.get("phase", "")), os.path.dirname(path), rec))
    return sorted(out, key=lambda a: a.iteration)


def read_schedule(model_path: str) -> Optional[dict]:
    try:
        with open(os.path.join(model_path, "regions", "schedule.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def phase_bands(schedule: Optional[dict]):
    if not schedule:
        return []
    bands = [(p["name"], p["start"], p["end"]) for p in schedule.get("phases", [])]
    if schedule.get("refine_start") and schedule.get("total_iterations"):
        bands.append(("refine", schedule["refine_start"], schedule["total_iterations"]))
    return bands


def load_added(folder: str):
    """(xyz (M,3), kind (M,)) from added.npz; None for runs that predate it."""
    try:
        with np.load(os.path.join(folder, "added.npz")) as z:
            return z["xyz"].astype(np.float32), z["kind"].astype(np.int64)
    except (OSError, ValueError, KeyError):
        return None


def view_image(folder: str, name: str) -> Optional[np.ndarray]:
    """The boxes image with the mask tinted over it (one picture for the frustum)."""
    def read(suffix):
        try:
            with Image.open(os.path.join(folder, f"{name}_{suffix}.png")) as im:
                return np.asarray(im.convert("RGB")).astype(np.float32)
        except OSError:
            return None
    boxes, mask = read("boxes"), read("mask")
    if boxes is None:
        boxes = read("render")
    if boxes is None:
        return None
    if mask is not None and mask.shape == boxes.shape:
        m = mask[..., :1] / 255.0
        boxes = boxes * (1 - 0.35 * m) + np.array([60.0, 255.0, 60.0]) * 0.35 * m
    return boxes.clip(0, 255).astype(np.uint8)


def _read_png(path: str) -> Optional[np.ndarray]:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError:
        return None


class RegionsView:
    """Adds the guided-run controls to a ModelView."""

    def __init__(self, server, base, model_path: str):
        self.server, self.base, self.model_path = server, base, model_path
        self.analyses = read_analyses(model_path)
        schedule = read_schedule(model_path)
        self.bands = phase_bands(schedule)
        self.log = read_counts(os.path.join(model_path, "training_log.csv"))
        self.handles: list = []
        self.current: Optional[int] = None
        self.highlighted = 0           # Gaussians highlighted for the current analysis
        n = len(self.analyses)
        with server.gui.add_folder("Semantic regions", order=1):
            self.summary = server.gui.add_markdown(
                f"{n} analyses in {os.path.join(model_path, 'regions')}" if n else
                "no analyses recorded in regions/")
            self.slider = server.gui.add_slider("Analysis", min=1, max=max(n, 2), step=1,
                                                initial_value=1, disabled=n < 2)
            self.highlight = server.gui.add_checkbox("Highlight added Gaussians", True)
            self.plot = server.gui.add_image(self._plot(None), label="Gaussians over iterations")
        self.slider.on_update(lambda _: self.show(int(self.slider.value) - 1))
        self.highlight.on_update(lambda _: self.show(self.current or 0))
        if n:
            self.show(0)

    def _plot(self, current: Optional[int]) -> np.ndarray:
        its, counts = self.log
        return count_plot(its, counts, self.bands, [a.iteration for a in self.analyses], current)

    def _pose(self, view: dict, name: str) -> Optional[ViewSpec]:
        cam = view.get("camera")
        if cam:
            return ViewSpec(name, np.asarray(cam["R"]), np.asarray(cam["T"]), cam["fovy"],
                            cam["width"] / cam["height"], group="analysis",
                            colour=ANALYSIS_COLOUR)
        for v in self.base.views:  # runs before regions.json kept the camera: match names
            if name.endswith("_" + v.name):
                return ViewSpec(name, v.R, v.T, v.fovy, v.aspect, group="analysis",
                                colour=ANALYSIS_COLOUR)
        return None

    def show(self, k: int):
        if not 0 <= k < len(self.analyses):
            return
        a = self.analyses[k]
        self.base.forget(self.handles)
        self.handles = []
        specs = []
        for view in a.record["views"]:
            name = str(view.get("view", "view"))
            spec = self._pose(view, name)
            if spec is not None:
                spec.image = view_image(a.folder, name)
                specs.append(spec)
        frustums = add_frustums(self.server, specs, self.base.frustum_scale * 1.6,
                                lambda i, client: self.on_view(a, specs[i], client),
                                root=f"/analysis/{a.iteration:06d}")
        self.handles += frustums
        self.base.posed += list(zip(frustums, specs))
        added = load_added(a.folder)
        self.highlighted = 0
        if added is not None and len(added[0]) and self.highlight.value:
            xyz, kind = added
            self.handles.append(self.server.scene.add_point_cloud(
                f"/analysis/{a.iteration:06d}/added", points=xyz, colors=KIND_COLOURS[kind],
                point_size=self.base.radius * 0.008, point_shape="circle"))
            self.highlighted = len(xyz)
        r = a.record
        counts = ", ".join(f"{r.get(k, 0)} {k}" for k in ("densified", "spawned", "seeded"))
        boxes = sum(len(v.get("boxes", [])) for v in r["views"])
        note = ("" if added is not None else
                "  \n(no added.npz: this run predates the records of added Gaussians)")
        self.summary.content = (
            f"**Iteration {a.iteration}**, {a.phase}: {len(r['views'])} views, {boxes} boxes; "
            f"{counts}, {r.get('pruned', 0)} pruned; {r.get('gaussians_before', '?')} -> "
            f"{r.get('gaussians_after', '?')} Gaussians. Highlighted: "
            "yellow densified, cyan spawned, magenta seeded." + note)
        self.plot.image = self._plot(a.iteration)
        self.current = k

    def on_view(self, a: Analysis, spec: ViewSpec, client):
        self.base.fly(client, spec)
        images = [(label, img) for label, img in (
            ("Render", _read_png(os.path.join(a.folder, f"{spec.name}_render.png"))),
            ("Photo", _read_png(os.path.join(a.folder, f"{spec.name}_target.png"))),
            ("Boxes", _read_png(os.path.join(a.folder, f"{spec.name}_boxes.png"))),
            ("Mask", _read_png(os.path.join(a.folder, f"{spec.name}_mask.png")))) if img is not None]
        view = next((v for v in a.record["views"] if v.get("view") == spec.name), {})
        labels = ", ".join(str(x) for x in view.get("labels", []) if x) or "none"
        self.base.panel.show(f"**{spec.name}** at iteration {a.iteration}: "
                             f"{len(view.get('boxes', []))} boxes (labels: {labels}), "
                             f"{view.get('densified', 0)} densified, {view.get('spawned', 0)} "
                             f"spawned, {view.get('seeded', 0)} seeded", images)
