"""Real captures in <repo>/../shared/scenes: conventions checked against real SfM data.

Skipped (with the reason) where that folder is absent, e.g. in a user's clone."""
import os

import numpy as np
import pytest
import torch

from scene.colmap_loader import read_model
from scene.dataset_readers import (detect_scene_type, random_point_cloud,
                                   readColmapSceneInfo, readNerfSyntheticInfo,
                                   sceneLoadTypeCallbacks, visible_fraction)
from scene.camera_loading import cameraList_from_camInfos
from utils.graphics_utils import fov2focal, geom_transform_points

from tests.demo_scenes import SHARED_SCENES as SCENES
from tests.tiny import loader_args

COLMAP_SCENES = ["juicebox_table", "beer_can", "fern"]
pytestmark = [pytest.mark.captures,
              pytest.mark.skipif(not os.path.isdir(SCENES),
                                 reason=f"shared captures not found at {SCENES} (a user's clone; "
                                        "CI has them)")]


def project(cam, X):
    """(N,2) integer-centre pixels and (N,) view depth of world points."""
    p = geom_transform_points(X, cam.full_proj_transform)
    z = (torch.cat([X, torch.ones(len(X), 1)], 1) @ cam.world_view_transform)[:, 2]
    return torch.stack([((p[:, 0] + 1) * cam.image_width - 1) / 2,
                        ((p[:, 1] + 1) * cam.image_height - 1) / 2], 1), z


def scene_info(name, folder="images", eval=False):
    path = os.path.join(SCENES, name)
    if detect_scene_type(path) == "Blender":
        return readNerfSyntheticInfo(path, True, eval)
    return sceneLoadTypeCallbacks["Colmap"](path, folder, eval)


@pytest.mark.parametrize("name", COLMAP_SCENES)
def test_images_2_is_half_of_images(name):
    full, half = scene_info(name, "images"), scene_info(name, "images_2")
    photos = os.listdir(os.path.join(SCENES, name, "images"))
    assert len(full.train_cameras) == len(half.train_cameras) == len(photos) > 0
    for a, b in zip(full.train_cameras, half.train_cameras):
        assert a.image_name == b.image_name and (a.width, a.height) == (2 * b.width, 2 * b.height)
        assert b.cx == pytest.approx(a.cx / 2) and b.cy == pytest.approx(a.cy / 2)
        assert fov2focal(b.FovX, b.width) == pytest.approx(fov2focal(a.FovX, a.width) / 2)
        np.testing.assert_array_equal(a.R, b.R)


@pytest.mark.parametrize("name", COLMAP_SCENES)
def test_points_project_inside_images_2(name):
    """With -i images_2, SfM points in front of a camera mostly land inside its image, and the
    image colour there matches the point colour far better than in the image turned by 180°."""
    si = scene_info(name, "images_2")
    cams = cameraList_from_camInfos(si.train_cameras[:: max(1, len(si.train_cameras) // 8)],
                                    1.0, loader_args())
    X = torch.tensor(si.point_cloud.points)
    col = torch.tensor(si.point_cloud.colors)
    inside, right, wrong = [], [], []
    for cam in cams:
        uv, z = project(cam, X)
        front = z > 0.2
        W, H = cam.image_width, cam.image_height
        ok = front & (uv[:, 0] > -0.5) & (uv[:, 0] < W - 0.5) & (uv[:, 1] > -0.5) & \
            (uv[:, 1] < H - 0.5)
        inside.append(float(ok.sum() / front.sum()))
        ui, vi = uv[ok, 0].round().long(), uv[ok, 1].round().long()
        other = cam.original_image.flip(1, 2)
        right.append(float((cam.original_image[:, vi, ui].T - col[ok]).abs().mean(1).median()))
        wrong.append(float((other[:, vi, ui].T - col[ok]).abs().mean(1).median()))
    assert np.median(inside) > 0.5
    assert np.median(right) < 0.15 and np.median(right) < 0.7 * np.median(wrong)


@pytest.mark.parametrize("folder,res,scale", [("images", 1, 1.0), ("images_2", 1, 0.5),
                                              ("images", 2, 0.5)])
def test_beer_can_track_reprojection(folder, res, scale):
    """beer_can keeps real 2D observations: projecting each track's 3D point with our camera
    lands at the observation - 0.5 px (COLMAP pixel centres are at +0.5). SfM residual is
    ~0.2 px at full size; a half-pixel convention slip would give ~0.7 px."""
    path = os.path.join(SCENES, "beer_can")
    si = readColmapSceneInfo(path, folder, False)
    cams = {c.colmap_id: c for c in cameraList_from_camInfos(si.train_cameras[:12], 1.0,
                                                             loader_args(res))}
    model_cams, imgs, pts = read_model(os.path.join(path, "sparse", "0"))
    index = {int(p): i for i, p in enumerate(pts.ids)}
    errs = []
    for im_id, cam in cams.items():
        im = imgs[im_id]
        m = im.point3D_ids >= 0
        X = torch.tensor(pts.xyz[[index[int(p)] for p in im.point3D_ids[m]]],
                         dtype=torch.float32)
        uv, _ = project(cam, X)
        s = cam.image_width / model_cams[im.camera_id].width
        obs = torch.tensor(im.xys[m] * s - 0.5, dtype=torch.float32)
        errs.append(float((uv - obs).norm(dim=1).median()))
    assert np.median(errs) < 0.35 * scale


def test_eval_split_fern():
    si = scene_info("fern", "images_2", eval=True)
    names = sorted(c.image_name for c in si.train_cameras + si.test_cameras)
    assert sorted(c.image_name for c in si.test_cameras) == names[::8]


def test_lego():
    si = scene_info("lego", eval=True)
    assert (len(si.train_cameras), len(si.test_cameras)) == (100, 13)
    assert si.point_cloud is None and si.is_nerf_synthetic
    cams = cameraList_from_camInfos(si.test_cameras[:3], 1.0, loader_args(2, white=True))
    for cam in cams:
        assert (cam.image_width, cam.image_height) == (200, 200)
        assert torch.all(cam.original_image[:, 0, 0] == 1.0)  # transparent corner -> white
        uv, z = project(cam, torch.zeros(1, 3))  # the object is at the origin, in view
        assert z[0] > 0 and 60 < float(uv[0, 0]) < 140 and 60 < float(uv[0, 1]) < 140
        # the opaque object covers the image centre
        assert float(cam.alpha_mask[0, 90:110, 90:110].mean()) > 0.5


@pytest.mark.parametrize("name", COLMAP_SCENES + ["lego"])
def test_random_point_cloud_in_view(name):
    """Random init lands where the cameras look: most points inside most frusta."""
    si = scene_info(name, "images_2")
    pcd = random_point_cloud(si.train_cameras, 5000, seed=0)
    assert pcd.points.shape == (5000, 3) and pcd.points.dtype == np.float32
    assert pcd.colors.min() >= 0 and pcd.colors.max() <= 1
    frac = visible_fraction(pcd.points, si.train_cameras)
    assert np.mean(frac >= 0.5) > 0.9
    if si.point_cloud is not None:  # and at the depth of the scene, not the world origin
        depth = lambda P, c: np.median((P @ c.R + c.T)[:, 2])
        ratios = [depth(pcd.points, c) / depth(si.point_cloud.points, c)
                  for c in si.train_cameras[::5]]
        assert 0.3 < np.median(ratios) < 3.0
    again = random_point_cloud(si.train_cameras, 5000, seed=0)
    np.testing.assert_array_equal(again.points, pcd.points)
