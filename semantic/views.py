"""Which views an analysis looks at: sampled training views, or novel views for phase 3.

Novel views are poses between two training cameras (rotation slerp, centre lerp) nudged off
the path a little, so they are viewpoints the model was never fitted to. By default they are
never the test cameras: guiding densification with test poses would leak the evaluation split
into training (`--phase3_views test` allows it, for comparison with the original method).
"""
from typing import List, Optional, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from scene.cameras import Camera
from scene.strategies.multiview import sample_views

PERTURB = 0.05   # centre offset as a fraction of the distance between the two cameras


def camera_to_world(cam) -> np.ndarray:
    """4x4 camera-to-world matrix of a Camera (its +z column is the viewing direction)."""
    w2c = cam.world_view_transform.detach().double().cpu().numpy().T  # stored transposed
    return np.linalg.inv(w2c)


def interpolated_camera(a, b, t: float, offset: np.ndarray, uid: int, image=None) -> Camera:
    """A camera at fraction t between a and b (a's intrinsics), its centre moved by offset."""
    ca, cb = camera_to_world(a), camera_to_world(b)
    rots = Rotation.from_matrix(np.stack([ca[:3, :3], cb[:3, :3]]))
    rot = Slerp([0.0, 1.0], rots)([t]).as_matrix()[0]
    centre = (1 - t) * ca[:3, 3] + t * cb[:3, 3] + offset
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = rot, centre
    w2c = np.linalg.inv(c2w)
    if image is None:
        image = torch.zeros(3, a.image_height, a.image_width)
    # The reference Camera takes R = rotation of camera-to-world, T = world-to-camera shift.
    return Camera(colmap_id=-1, R=w2c[:3, :3].T, T=w2c[:3, 3], FoVx=a.FoVx, FoVy=a.FoVy,
                  image=image, image_name=f"novel_{uid:03d}", uid=uid,
                  cx=getattr(a, "cx", None), cy=getattr(a, "cy", None),
                  data_device=str(a.data_device), znear=getattr(a, "znear", 0.01),
                  zfar=getattr(a, "zfar", 100.0))


def novel_views(cameras: Sequence, k: int, seed: int, iteration: int) -> List[Camera]:
    """k poses between random pairs of neighbouring training cameras, reproducible from
    (seed, iteration) like sample_views."""
    cams = list(cameras)
    if len(cams) < 2:
        return []
    rng = np.random.default_rng((int(seed) * 1_000_003 + int(iteration) * 7 + 11) % (2 ** 63))
    centres = np.stack([camera_to_world(c)[:3, 3] for c in cams])
    out = []
    for j in range(k):
        i = int(rng.integers(len(cams)))
        d = np.linalg.norm(centres - centres[i], axis=1)
        d[i] = np.inf
        nb = int(np.argmin(d))  # nearest neighbour: the in-between view stays plausible
        t = float(rng.uniform(0.25, 0.75))
        offset = rng.normal(size=3) * PERTURB * float(d[nb])
        out.append(interpolated_camera(cams[i], cams[nb], t, offset, uid=j))
    return out


def capture_focus(cameras: Sequence, min_conditioning: float = 1e-3) -> Optional[torch.Tensor]:
    """The point closest (least squares) to every training camera's optical axis: what a
    360-degree capture looks at. None when the axes are near parallel (forward-facing
    captures), where no such point is defined."""
    if len(cameras) < 2:
        return None
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for cam in cameras:
        c2w = camera_to_world(cam)
        d = c2w[:3, 2] / np.linalg.norm(c2w[:3, 2])  # the camera looks along its +z
        proj = np.eye(3) - np.outer(d, d)
        a += proj
        b += proj @ c2w[:3, 3]
    eig = np.linalg.eigvalsh(a)
    if eig[0] < min_conditioning * eig[-1]:
        return None
    return torch.tensor(np.linalg.solve(a, b), dtype=torch.float32)


def analysis_views(phase: str, train_cams: Sequence, test_cams: Sequence, k: int, seed: int,
                   iteration: int, phase3_views: str = "interpolated") -> List:
    if phase == "phase3":
        if phase3_views == "test" and test_cams:
            return sample_views(test_cams, k, seed, iteration)
        return novel_views(train_cams, k, seed, iteration)
    return sample_views(train_cams, k, seed, iteration)
