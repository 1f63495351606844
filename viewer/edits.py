"""An edit.py output folder in 3D: a slider over the rounds showing each round's snapshot
(round 0 = the input model), the round's RoI Gaussians highlighted, and per edited view its
pre-edit / edited / post-optimisation images (layout: editing/artifacts.py)."""
import json
import os
from typing import Dict, List, Optional

import numpy as np
import yaml
from PIL import Image

from editing.artifacts import Layout
from utils.errors import UserError
from viewer.cameras import add_frustums
from viewer.model_files import TrainedModel, load_gaussians
from viewer.splats import model_splats

ROI_COLOUR = (255, 60, 200)
EDIT_VIEW_COLOUR = (230, 30, 30)
IMAGE_KINDS = (("pre_edit", "Pre-edit render"), ("edited", "Edited target"),
               ("post_opt", "After optimisation"))


class EditRun:
    """What an edit output folder holds: its committed rounds and the model it started from."""

    def __init__(self, root: str):
        self.layout = Layout(root)
        try:
            with open(self.layout.state) as f:
                state = yaml.safe_load(f) or {}
            with open(self.layout.manifest) as f:
                self.manifest = json.load(f)
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise UserError(f"-m/--model_path {root}: unreadable edit state or manifest "
                            f"({type(e).__name__})") from None
        self.rounds: List[dict] = sorted(state.get("rounds") or [], key=lambda r: r["round"])
        src = (self.manifest.get("input_model") or {})
        path, it = src.get("path"), src.get("iteration", -1)
        if not path or not os.path.isdir(path):
            raise UserError(f"{self.layout.manifest}: the edited model {path!r} is not there "
                            "(the viewer needs its cameras)")
        self.input = TrainedModel(path, -1 if it is None else int(it))
        self._models: Dict[int, object] = {0: self.input.gaussians}

    def gaussians(self, r: int):
        """GaussianModel after round r (0 = the input model)."""
        if r not in self._models:
            self._models[r] = load_gaussians(self.layout.ply(r), self.input.dataset.sh_degree,
                                             self.input.device)
        return self._models[r]

    def roi_weights(self, r: int) -> Optional[np.ndarray]:
        """Per-Gaussian RoI weights, row-aligned with round r's PLY (None for round 0)."""
        if r == 0:
            return None
        try:
            return np.load(self.layout.roi(r, "gaussian_weights.npy"))
        except (OSError, ValueError):
            return None

    def images(self, r: int, v: int):
        out = []
        for kind, label in IMAGE_KINDS:
            try:
                with Image.open(self.layout.render(r, kind, v)) as im:
                    out.append((label, np.asarray(im.convert("RGB"))))
            except OSError:
                pass
        return out


class EditLayer:
    """Adds the round slider to a ModelView of the edit's input model."""

    def __init__(self, server, base, run: EditRun, max_splats: int):
        self.server, self.base, self.run, self.max_splats = server, base, run, max_splats
        self.handles: list = []
        self.current: Optional[int] = None
        self.highlighted = 0
        m = run.manifest
        n = len(run.rounds)
        with server.gui.add_folder("Edit", order=1):
            server.gui.add_markdown(f"**\"{m.get('instruction', '')}\"** ({m.get('mode', '')}), "
                                    f"{n} rounds in {run.layout.root}")
            self.slider = server.gui.add_slider("Round", min=0, max=max(n, 1), step=1,
                                                initial_value=n, disabled=n < 1)
            self.highlight = server.gui.add_checkbox("Highlight RoI Gaussians", True)
            self.summary = server.gui.add_markdown("")
        self.slider.on_update(lambda _: self.show(int(self.slider.value)))
        self.highlight.on_update(lambda _: self.show(self.current or 0))
        self.show(n)

    def show(self, r: int):
        g = self.run.gaussians(r)
        arrays = model_splats(g, self.max_splats)
        self.base.set_gaussians(g, arrays)
        self.base.forget(self.handles)
        self.handles = []
        self.highlighted = 0
        weights = self.run.roi_weights(r)
        if weights is not None and self.highlight.value and len(weights) == g.num_points:
            roi = weights[arrays.rows] > 0.5
            if roi.any():
                self.handles.append(self.server.scene.add_point_cloud(
                    f"/edit/round_{r:03d}/roi", points=arrays.centers[roi], colors=ROI_COLOUR,
                    point_size=self.base.radius * 0.006, point_shape="circle"))
                self.highlighted = int(roi.sum())
        entry = next((e for e in self.run.rounds if e["round"] == r), None)
        views = [int(v) for v in entry.get("views", [])] if entry else []
        specs = []
        for v in views:
            if v < len(self.base.views):
                spec = self.base.views[v]
                imgs = self.run.images(r, v)
                specs.append(type(spec)(spec.name, spec.R, spec.T, spec.fovy, spec.aspect,
                                        imgs[-1][1] if imgs else None, "edited",
                                        EDIT_VIEW_COLOUR))
        frustums = add_frustums(self.server, specs, self.base.frustum_scale * 1.4,
                                lambda i, client: self.on_view(r, views[i], specs[i], client),
                                root=f"/edit/round_{r:03d}")
        self.handles += frustums
        self.base.posed += list(zip(frustums, specs))
        self.summary.content = (
            f"**Round {r}**: input model" if r == 0 else
            f"**Round {r}**: {len(views)} edited views (red, click for pre-edit / edited / "
            f"after-optimisation), {g.num_points:,} Gaussians, {self.highlighted:,} in the RoI "
            "(magenta)")
        self.current = r

    def on_view(self, r: int, v: int, spec, client):
        self.base.fly(client, spec)
        self.base.panel.show(f"**{spec.name}** (view {v}), round {r}", self.run.images(r, v))
