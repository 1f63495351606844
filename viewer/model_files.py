"""A trained model folder as the viewer needs it: its Gaussians, its cameras, its photos.

Cameras come from the scene the model was trained on (cfg_args' source path, at the run's
resolution), so a click renders exactly the view metrics.py scores. Photos load lazily:
thumbnails for the frustums, full images only for the view a user clicks.
"""
import os
import threading
from argparse import ArgumentParser
from typing import Dict, Optional

import numpy as np
import torch
from PIL import Image

from utils.device import resolve_device, resolve_secondary_device
from utils.errors import UserError
from utils.image_utils import to_uint8_hwc


def load_settings(model_path: str):
    """(dataset, pipe): train.py's ModelParams / PipelineParams as saved in cfg_args."""
    from arguments import ModelParams, PipelineParams, read_cfg_args
    if not os.path.isdir(model_path):
        raise UserError(f"-m/--model_path {model_path}: no such folder")
    saved = read_cfg_args(model_path)
    if not saved:
        raise UserError(f"-m/--model_path {model_path} has no cfg_args: not a train.py "
                        "output folder")
    parser = ArgumentParser()
    lp, pp = ModelParams(parser), PipelineParams(parser)
    ns = parser.parse_args([])
    for k, v in saved.items():
        setattr(ns, k, v)
    ns.model_path = model_path
    return lp.extract(ns), pp.extract(ns)


def ply_path(model_path: str, iteration: int = -1):
    """(path of point_cloud/iteration_<N>/point_cloud.ply, N); -1 = the latest."""
    from utils.system_utils import searchForMaxIteration
    folder = os.path.join(model_path, "point_cloud")
    it = searchForMaxIteration(folder) if iteration == -1 else iteration
    path = os.path.join(folder, f"iteration_{it}", "point_cloud.ply")
    if it is None or not os.path.isfile(path):
        what = "no saved iteration" if it is None else f"no iteration {it}"
        raise UserError(f"--iteration: {what} in {folder}")
    return path, it


def load_gaussians(path: str, sh_degree: int, device):
    from scene.gaussian_model import GaussianModel
    g = GaussianModel(sh_degree, device=device)
    g.load_ply(path)
    for name in ("_xyz", "_features_dc", "_features_rest", "_opacity", "_scaling", "_rotation"):
        setattr(g, name, getattr(g, name).to(device))
    return g


def thumbnail(path: str, width: int = 200) -> Optional[np.ndarray]:
    """HxWx3 uint8 of at most `width` px, or None when the file cannot be read."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (width, width))  # JPEG: decode at a reduced size directly
            im = im.convert("RGB")
            im.thumbnail((width, width * 4))
            return np.asarray(im)
    except Exception:
        return None


class TrainedModel:
    """Gaussians of one saved iteration plus the training and test cameras."""

    def __init__(self, model_path: str, iteration: int = -1, with_cameras: bool = True):
        self.model_path = model_path
        self.dataset, self.pipe = load_settings(model_path)
        self.device = resolve_device(self.dataset.device)
        self.dataset.data_device = str(resolve_secondary_device(
            self.dataset.data_device, self.device, "--data_device"))
        self.ply, self.iteration = ply_path(model_path, iteration)
        self.gaussians = load_gaussians(self.ply, self.dataset.sh_degree, self.device)
        bg = [1.0, 1.0, 1.0] if self.dataset.white_background else [0.0, 0.0, 0.0]
        self.background = torch.tensor(bg, dtype=torch.float32, device=self.device)
        self.infos = []      # CameraInfo of every view, training views first
        self.note = ""
        if with_cameras:
            self._read_cameras()
        self._cams: Dict[int, object] = {}
        self._lock = threading.Lock()

    def _read_cameras(self):
        from scene import read_scene_info
        src = self.dataset.source_path
        if not src or not os.path.isdir(src):
            self.note = f"scene {src or '(none)'} not found: no cameras or photos"
            return
        info = read_scene_info(self.dataset)
        self.infos = list(info.train_cameras) + list(info.test_cameras)

    def camera(self, i: int):
        """The Camera of view i at the training resolution (photo loaded), cached."""
        with self._lock:
            if i not in self._cams:
                from scene.camera_loading import loadCam
                self._cams[i] = loadCam(self.dataset, i, self.infos[i], 1.0)
            return self._cams[i]

    @torch.no_grad()
    def render_view(self, i: int, gaussians=None):
        """(render HxWx3 uint8, photo HxWx3 uint8, PSNR in dB) of view i, with our
        rasterizer and the run's background, as render.py / metrics.py see it."""
        from gaussian_renderer import render
        from utils.image_utils import psnr
        cam = self.camera(i)
        g = self.gaussians if gaussians is None else gaussians
        with self._lock:
            img = render(cam, g, self.pipe, self.background)["render"].clamp(0, 1)
        gt = cam.original_image.to(img.device)
        value = float(psnr(img[None], gt[None]).mean())
        return to_uint8_hwc(img), to_uint8_hwc(gt), value
