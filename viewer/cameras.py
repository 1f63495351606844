"""Camera frustums (with their photos) in the viser scene, flying to a view, and the side
panel that shows images of the chosen view.

Our cameras and viser's share OpenCV's convention (+Z forward, +Y down), so a view's pose
is its camera-to-world rotation (Camera.R, the transposed world-to-camera rotation) and
its centre -R @ T.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np


@dataclass
class ViewSpec:
    name: str
    R: np.ndarray          # (3,3) camera-to-world rotation
    T: np.ndarray          # (3,) world-to-camera translation
    fovy: float            # radians
    aspect: float          # width / height
    image: Optional[np.ndarray] = None   # HxWx3 uint8 shown on the frustum
    group: str = "train"   # scene-tree folder (train, test, analysis, ...)
    colour: Tuple[int, int, int] = (40, 90, 200)

    @property
    def position(self) -> np.ndarray:
        return -np.asarray(self.R, np.float64) @ np.asarray(self.T, np.float64)

    @property
    def wxyz(self) -> np.ndarray:
        from viser import transforms as tf
        return tf.SO3.from_matrix(np.asarray(self.R, np.float64)).wxyz


def view_spec(info, group: str, image=None, colour=(40, 90, 200)) -> ViewSpec:
    """ViewSpec of a CameraInfo or Camera (reference attribute names)."""
    w = getattr(info, "width", None) or info.image_width
    h = getattr(info, "height", None) or info.image_height
    fovy = getattr(info, "FovY", None) or info.FoVy
    return ViewSpec(info.image_name, np.asarray(info.R), np.asarray(info.T), float(fovy),
                    w / h, image, group, colour)


def up_direction(views: Sequence[ViewSpec]) -> np.ndarray:
    """The cameras' mean up (-Y in OpenCV), the scene's up in most captures."""
    if not views:
        return np.array([0.0, 0.0, 1.0])
    up = -np.mean([np.asarray(v.R)[:, 1] for v in views], axis=0)
    n = np.linalg.norm(up)
    return up / n if n > 1e-6 else np.array([0.0, 0.0, 1.0])


def fly_to(client, view: ViewSpec):
    """Put the client's viewport camera at the view's pose and field of view."""
    with client.atomic():
        client.camera.fov = float(view.fovy)
        client.camera.position = view.position
        client.camera.wxyz = view.wxyz


def add_frustums(server, views: Sequence[ViewSpec], scale: float,
                 on_click: Optional[Callable[[int, object], None]] = None,
                 root: str = "/cameras") -> list:
    """One frustum per view under root/<group>/<index>_<name>; on_click(index, client)."""
    handles = []
    for i, v in enumerate(views):
        h = server.scene.add_camera_frustum(
            f"{root}/{v.group}/{i:04d}_{_safe(v.name)}", fov=float(v.fovy), aspect=float(v.aspect),
            scale=scale, thickness=1.5, thickness_units="screen", color=v.colour, image=v.image,
            format="jpeg", jpeg_quality=80, wxyz=v.wxyz, position=v.position)
        if on_click is not None:
            h.on_click(lambda event, i=i: on_click(i, event.client))
        handles.append(h)
    return handles


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))[:60]


class ImagePanel:
    """A GUI folder that shows a title line and a few labelled images (replaced on show)."""

    def __init__(self, server, title: str, hint: str, order: float = 10.0):
        self.server = server
        self.folder = server.gui.add_folder(title, order=order)
        with self.folder:
            self.text = server.gui.add_markdown(hint)
        self.images: list = []

    def show(self, text: str, images: List[Tuple[str, np.ndarray]], width: int = 480):
        for h in self.images:
            h.remove()
        self.images = []
        self.text.content = text
        with self.folder:
            for label, img in images:
                self.images.append(self.server.gui.add_image(
                    _fit(img, width), label=label, format="jpeg", jpeg_quality=90))


def _fit(img: np.ndarray, width: int) -> np.ndarray:
    """Downscale (nearest) so the panel never ships a full-resolution photo."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    step = max(1, int(np.ceil(img.shape[1] / width)))
    return np.ascontiguousarray(img[::step, ::step, :3])
