"""Blender / NeRF-synthetic reader on a tiny generated folder."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from scene.dataset_readers import detect_scene_type, readNerfSyntheticInfo, sceneLoadTypeCallbacks
from scene.camera_loading import cameraList_from_camInfos
from tests.tiny import loader_args
from utils.errors import UserError
from utils.graphics_utils import geom_transform_points

pytestmark = pytest.mark.unit

ANGLE_X = 0.69


def blender_c2w(center):
    """OpenGL camera-to-world looking at the origin (camera -z forward, +y up, world z up)."""
    back = center / np.linalg.norm(center)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, center
    return m


def make_blender(root, n_train=3, n_test=2, size=(20, 16)):
    rng = np.random.default_rng(0)
    centers = {}
    for split, n in (("train", n_train), ("test", n_test)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        frames = []
        for i in range(n):
            a = 2 * np.pi * i / n + (0.3 if split == "test" else 0.0)
            c = np.array([4 * np.cos(a), 4 * np.sin(a), 1.5])
            centers[f"{split}/r_{i}"] = c
            rgba = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
            rgba[0, 0, 3] = 0
            Image.fromarray(rgba, "RGBA").save(os.path.join(root, split, f"r_{i}.png"))
            frames.append({"file_path": f"./{split}/r_{i}", "rotation": 0.1,
                           "transform_matrix": blender_c2w(c).tolist()})
        with open(os.path.join(root, f"transforms_{split}.json"), "w") as f:
            json.dump({"camera_angle_x": ANGLE_X, "frames": frames}, f)
    return centers


def test_blender_reader(tmp_path):
    centers = make_blender(str(tmp_path))
    assert detect_scene_type(str(tmp_path)) == "Blender"
    si = sceneLoadTypeCallbacks["Blender"](str(tmp_path), True, True)
    assert len(si.train_cameras) == 3 and len(si.test_cameras) == 2
    assert si.point_cloud is None and si.is_nerf_synthetic
    assert all(c.is_test for c in si.test_cameras) and all(c.has_alpha for c in si.test_cameras)
    for c in si.train_cameras + si.test_cameras:
        key = os.path.relpath(c.image_path, str(tmp_path)).replace(os.sep, "/")[:-4]
        np.testing.assert_allclose(-c.R @ c.T, centers[key], atol=1e-9)
        assert (c.width, c.height) == (20, 16) and c.FovX == pytest.approx(ANGLE_X)
        assert np.tan(c.FovY / 2) == pytest.approx(np.tan(ANGLE_X / 2) * 16 / 20)
        # COLMAP convention: the origin is in front, at the image centre; world up is image up
        assert (c.R.T @ np.zeros(3) + c.T)[2] > 0
        up_cam = c.R.T @ np.array([0, 0, 1.0])
        assert up_cam[1] < 0  # +y is down in COLMAP camera space
    nn = si.nerf_normalization
    np.testing.assert_allclose(nn["translate"], -np.mean(
        [-c.R @ c.T for c in si.train_cameras], axis=0), atol=1e-6)


def test_not_eval_appends_test(tmp_path):
    make_blender(str(tmp_path))
    si = readNerfSyntheticInfo(str(tmp_path), False, False)
    assert len(si.train_cameras) == 5 and si.test_cameras == []
    assert not any(c.is_test for c in si.train_cameras)


@pytest.mark.parametrize("white", [False, True])
def test_blender_loaded_cameras(tmp_path, white):
    make_blender(str(tmp_path))
    si = readNerfSyntheticInfo(str(tmp_path), white, True)
    cams = cameraList_from_camInfos(si.train_cameras, 1.0, loader_args(white=white))
    cam = cams[0]
    assert torch.all(cam.original_image[:, 0, 0] == (1.0 if white else 0.0))  # alpha 0 pixel
    assert cam.alpha_mask is not None and float(cam.alpha_mask[0, 0, 0]) == 0.0
    uv = geom_transform_points(torch.zeros(1, 3), cam.full_proj_transform)[0]
    u = ((uv[0] + 1) * cam.image_width - 1) / 2
    v = ((uv[1] + 1) * cam.image_height - 1) / 2
    assert float(u) == pytest.approx(9.5, abs=1e-3) and float(v) == pytest.approx(7.5, abs=1e-3)


def test_missing_image_and_bad_json(tmp_path):
    make_blender(str(tmp_path))
    os.remove(tmp_path / "train" / "r_1.png")
    with pytest.raises(UserError, match="r_1.png"):
        readNerfSyntheticInfo(str(tmp_path), False, False)
    (tmp_path / "transforms_train.json").write_text("{not json")
    with pytest.raises(UserError, match="transforms_train.json"):
        readNerfSyntheticInfo(str(tmp_path), False, False)


def test_detect_missing_path(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        detect_scene_type(str(tmp_path / "nope"))
