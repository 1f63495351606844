"""Training/render camera (the reference codebase's attribute names).

Images are kept as uint8 when they come from files (4x smaller than float32; a Mip-NeRF 360
scene at 1600 px is ~1 GB instead of ~4 GB); `original_image` converts on access. A float
image assigned later (e.g. an edited target) is kept as given.
"""
import numpy as np
import torch

from utils.graphics_utils import fov2focal, getProjectionMatrixShift, getWorld2View2


def _as_float01(t):
    if t is None:
        return None
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t


class Camera:
    def __init__(self, colmap_id, R, T, FoVx, FoVy, image, image_name, uid,
                 cx=None, cy=None, alpha_mask=None, trans=np.array([0.0, 0.0, 0.0]),
                 scale=1.0, data_device="cpu", is_test=False, znear=0.01, zfar=100.0):
        """image: (3,H,W) uint8 or float in [0,1]; alpha_mask: (1,H,W) or None.
        cx, cy: principal point in COLMAP pixels (top-left pixel centre (0.5, 0.5)) of this
        image's resolution; default the image centre."""
        self.uid = uid
        self.colmap_id = colmap_id
        self.image_name = image_name
        self.is_test = is_test
        self.R = np.asarray(R, np.float64)
        self.T = np.asarray(T, np.float64)
        self.FoVx = float(FoVx)
        self.FoVy = float(FoVy)
        self.data_device = torch.device(data_device)
        self._image = image.to(self.data_device)
        self._alpha = None if alpha_mask is None else alpha_mask.to(self.data_device)
        self.image_height, self.image_width = int(image.shape[1]), int(image.shape[2])
        self.cx = self.image_width / 2.0 if cx is None else float(cx)
        self.cy = self.image_height / 2.0 if cy is None else float(cy)
        self.znear, self.zfar = znear, zfar
        self.trans, self.scale = np.asarray(trans, np.float64), scale
        # Depth regularisation (-d/--depths): inverse depth in COLMAP's scale, (1,H,W).
        self.invdepthmap = None
        self.depth_reliable = False
        self._update_transforms()

    def set_invdepth(self, invdepth: torch.Tensor, reliable: bool):
        """Attach an inverse-depth map (already mapped by its depth_params); an unreliable one
        is kept for inspection but never supervises (the reference's rule)."""
        assert tuple(invdepth.shape) == (1, self.image_height, self.image_width), invdepth.shape
        self.invdepthmap = invdepth.to(self.data_device)
        self.depth_reliable = bool(reliable)

    # -- images ------------------------------------------------------------
    @property
    def original_image(self) -> torch.Tensor:
        """(3,H,W) float32 in [0,1] (composited on the background for RGBA inputs)."""
        return _as_float01(self._image)

    @original_image.setter
    def original_image(self, img: torch.Tensor):
        assert tuple(img.shape) == (3, self.image_height, self.image_width), img.shape
        self._image = img.to(self.data_device)

    @property
    def alpha_mask(self):
        """(1,H,W) float32 in [0,1], or None for opaque images."""
        return _as_float01(self._alpha)

    # -- geometry ----------------------------------------------------------
    @property
    def fx(self):
        return fov2focal(self.FoVx, self.image_width)

    @property
    def fy(self):
        return fov2focal(self.FoVy, self.image_height)

    def _update_transforms(self):
        dev = self.data_device
        self.world_view_transform = torch.tensor(
            getWorld2View2(self.R, self.T, self.trans, self.scale)).transpose(0, 1).to(dev)
        self.projection_matrix = getProjectionMatrixShift(
            self.znear, self.zfar, self.fx, self.fy, self.cx, self.cy,
            self.image_width, self.image_height).transpose(0, 1).to(dev)
        self.full_proj_transform = self.world_view_transform @ self.projection_matrix
        self.camera_center = torch.linalg.inv(self.world_view_transform)[3, :3]

    def to(self, device):
        """Moves images and matrices to `device`; returns self."""
        self.data_device = torch.device(device)
        for name in ("_image", "_alpha", "invdepthmap", "world_view_transform", "projection_matrix",
                     "full_proj_transform", "camera_center"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(self.data_device))
        return self

    def __repr__(self):
        return (f"Camera(uid={self.uid}, name={self.image_name!r}, "
                f"{self.image_width}x{self.image_height}, device={self.data_device})")


class MiniCam:
    """A camera without an image (e.g. for rendering novel views), as the reference."""

    def __init__(self, width, height, fovy, fovx, znear, zfar, world_view_transform,
                 full_proj_transform):
        self.image_width, self.image_height = width, height
        self.FoVy, self.FoVx = fovy, fovx
        self.znear, self.zfar = znear, zfar
        self.world_view_transform = world_view_transform
        self.full_proj_transform = full_proj_transform
        self.camera_center = torch.linalg.inv(world_view_transform)[3, :3]

