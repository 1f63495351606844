"""The trained-model view: the splats, the training / test cameras with their photos, and
click-to-render (our rasterizer's image of the clicked view beside its photo, with PSNR)."""
import threading
from typing import List, Optional

import numpy as np

from viewer.cameras import ImagePanel, ViewSpec, add_frustums, fly_to, up_direction, view_spec
from viewer.model_files import TrainedModel, thumbnail
from viewer.server import set_background
from viewer.splats import SplatArrays, model_splats, scene_bounds

TRAIN_COLOUR = (40, 90, 200)
TEST_COLOUR = (220, 120, 20)


def show_splats(server, arrays: SplatArrays, name: str = "/splats"):
    return server.scene.add_gaussian_splats(name, centers=arrays.centers,
                                            covariances=arrays.covariances, rgbs=arrays.rgbs,
                                            opacities=arrays.opacities)


def frame_scene(server, views: List[ViewSpec], centre: np.ndarray, radius: float):
    """Scene up = the cameras' up; the initial viewpoint is the first camera pulled back."""
    up = up_direction(views)
    server.scene.set_up_direction(tuple(float(x) for x in up))
    if views:
        v = views[0]
        look = centre
        pos = v.position + (v.position - look) * 0.6
    else:
        look, pos = centre, centre + np.array([0.0, -3.0, 1.0]) * radius
    server.initial_camera.position = tuple(float(x) for x in pos)
    server.initial_camera.look_at = tuple(float(x) for x in look)
    server.initial_camera.up = tuple(float(x) for x in up)


class ModelView:
    """Everything `view.py -m <trained model>` shows; guided runs add regions on top."""

    def __init__(self, server, model: TrainedModel, max_splats: int):
        self.server, self.model = server, model
        self.gaussians = model.gaussians     # what the splats and click renders show
        self.arrays = model_splats(model.gaussians, max_splats)
        self.splats = show_splats(server, self.arrays)
        self.centre, self.radius = scene_bounds(self.arrays.centers, self.arrays.opacities)
        self.views = [view_spec(info, "test" if info.is_test else "train",
                                colour=TEST_COLOUR if info.is_test else TRAIN_COLOUR)
                      for info in model.infos]
        frame_scene(server, self.views, self.centre, self.radius)
        set_background(server, model.background.cpu().numpy())
        self.frustum_scale = self.camera_scale()
        with server.gui.add_folder("Model", order=0):
            self.status = server.gui.add_markdown(self._status())
            self.show_cameras = server.gui.add_checkbox("Show cameras", True)
            names = [f"{i}: {v.name} ({v.group})" for i, v in enumerate(self.views)] or ["-"]
            self.pick = server.gui.add_dropdown("Go to view", names, initial_value=names[0])
        self.panel = ImagePanel(server, "Chosen view", "Click a camera to render its view.",
                                order=0.5)
        self.frustums = add_frustums(server, self.views, self.frustum_scale, self.on_view)
        self.posed = list(zip(self.frustums, self.views))  # every frustum shown, layers' too
        self.hidden: list = []
        self.show_cameras.on_update(lambda _: self._toggle_cameras())
        self.pick.on_update(lambda ev: self._picked(ev))
        self.rendered: Optional[int] = None     # index of the view last rendered
        self._render_lock = threading.Lock()
        threading.Thread(target=self._load_thumbnails, daemon=True).start()

    def _status(self) -> str:
        lines = [f"**{self.model.model_path}**, iteration {self.model.iteration}",
                 self.arrays.note(),
                 f"{sum(v.group == 'train' for v in self.views)} training and "
                 f"{sum(v.group == 'test' for v in self.views)} test cameras "
                 f"(blue / orange): click one to render it"]
        if self.model.note:
            lines.append(self.model.note)
        return "  \n".join(lines)

    def set_gaussians(self, gaussians, arrays: SplatArrays):
        """Show other Gaussians (an edit round) in place of the model's."""
        self.gaussians, self.arrays = gaussians, arrays
        self.splats.set_gaussians(arrays.centers, arrays.covariances, arrays.rgbs,
                                  arrays.opacities)
        self.status.content = self._status()

    def camera_scale(self) -> float:
        """Frustum size: a tenth of the typical distance between neighbouring cameras, or of
        the scene radius when there is one camera."""
        if len(self.views) < 2:
            return 0.1 * self.radius
        pos = np.stack([v.position for v in self.views])
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        np.fill_diagonal(d, np.inf)
        return float(max(np.median(d.min(1)), 1e-3 * self.radius)) * 0.35

    def _load_thumbnails(self):
        for info, h in zip(self.model.infos, self.frustums):
            img = thumbnail(info.image_path)
            if img is not None:
                h.image = img

    def _toggle_cameras(self):
        for h in self.frustums:
            h.visible = self.show_cameras.value
        self.hidden = []

    def _picked(self, event):
        try:
            i = int(str(self.pick.value).split(":")[0])
        except ValueError:
            return
        self.on_view(i, event.client)

    def forget(self, handles: list):
        """Remove a layer's scene nodes (and their frustums from the fly-to bookkeeping)."""
        gone = set(map(id, handles))
        self.posed = [(h, v) for h, v in self.posed if id(h) not in gone]
        self.hidden = [h for h in self.hidden if id(h) not in gone]
        for h in handles:
            h.remove()

    def fly(self, client, spec: ViewSpec):
        """Fly to a view, hiding the frustums at its pose (their photos would fill the
        viewport) and showing again those hidden for the last one."""
        for h in self.hidden:
            _set_visible(h, self.show_cameras.value)
        self.hidden = [h for h, v in self.posed
                       if np.linalg.norm(v.position - spec.position) < 1e-6 * self.radius]
        for h in self.hidden:
            _set_visible(h, False)
        if client is not None:
            fly_to(client, spec)

    def on_view(self, i: int, client):
        """A camera was clicked: fly there, render it with our rasterizer, show it."""
        self.fly(client, self.views[i])
        self.panel.show(f"Rendering **{self.views[i].name}** ...", [])
        with self._render_lock:
            ours, photo, value = self.model.render_view(i, self.gaussians)
        v = self.views[i]
        self.panel.show(f"**{v.name}** ({v.group} view {i}): PSNR **{value:.2f} dB**",
                        [("Our render", ours), ("Photo", photo)])
        self.rendered = i
        self.last_psnr = value


def _set_visible(handle, value: bool):
    try:
        handle.visible = value
    except Exception:  # removed with its layer (another analysis or round chosen)
        pass
