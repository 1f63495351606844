"""Camera matrices (the pixel contract with COLMAP intrinsics), the -r rule, alpha, JSON."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from scene import camera_loading
from scene.camera_loading import camera_to_JSON, cameraList_from_camInfos, loadCam
from scene.cameras import Camera
from scene.colmap_loader import qvec2rotmat
from scene.dataset_readers import CameraInfo
from tests.tiny import loader_args
from utils.errors import UserError
from utils.graphics_utils import (focal2fov, fov2focal, geom_transform_points, getProjectionMatrix,
                                  getProjectionMatrixShift, getWorld2View2)

pytestmark = pytest.mark.unit


def random_pose(seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=4)
    return qvec2rotmat(q / np.linalg.norm(q)), rng.normal(size=3)


def project_pixels(cam, X):
    """Our integer-centre pixel coordinates of world points through full_proj_transform."""
    p = geom_transform_points(X, cam.full_proj_transform)
    return torch.stack([((p[:, 0] + 1) * cam.image_width - 1) / 2,
                        ((p[:, 1] + 1) * cam.image_height - 1) / 2], 1)


def test_focal_fov_inverse():
    assert focal2fov(fov2focal(0.7, 123), 123) == pytest.approx(0.7)


def test_shift_matrix_equals_reference_when_centred():
    W, H, fx, fy = 64, 48, 50.0, 55.0
    P = getProjectionMatrixShift(0.01, 100.0, fx, fy, W / 2, H / 2, W, H)
    Q = getProjectionMatrix(0.01, 100.0, focal2fov(fx, W), focal2fov(fy, H))
    torch.testing.assert_close(P, Q)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixel_contract(seed):
    """A point at COLMAP pixel (u, v) = (fx x/z + cx, fy y/z + cy) lands at (u - 0.5, v - 0.5)."""
    Rw2c, t = random_pose(seed)
    W, H, fx, fy, cx, cy = 80, 60, 70.0, 72.0, 43.25, 27.5
    cam = Camera(colmap_id=1, R=Rw2c.T, T=t, FoVx=focal2fov(fx, W), FoVy=focal2fov(fy, H),
                 image=torch.zeros(3, H, W, dtype=torch.uint8), image_name="a", uid=0,
                 cx=cx, cy=cy)
    rng = np.random.default_rng(seed)
    Xc = np.concatenate([rng.uniform(-1, 1, (50, 2)), rng.uniform(1, 5, (50, 1))], 1)
    Xw = (Xc - t) @ Rw2c  # camera -> world
    uv_colmap = np.stack([fx * Xc[:, 0] / Xc[:, 2] + cx, fy * Xc[:, 1] / Xc[:, 2] + cy], 1)
    uv = project_pixels(cam, torch.tensor(Xw, dtype=torch.float32))
    np.testing.assert_allclose(uv.numpy(), uv_colmap - 0.5, atol=2e-3)
    # view transform, depth and centre
    pv = torch.cat([torch.tensor(Xw, dtype=torch.float32), torch.ones(50, 1)], 1) \
        @ cam.world_view_transform
    np.testing.assert_allclose(pv[:, :3].numpy(), Xc, atol=1e-4)
    np.testing.assert_allclose(cam.camera_center.numpy(), -Rw2c.T @ t, atol=1e-5)
    torch.testing.assert_close(cam.full_proj_transform,
                               cam.world_view_transform @ cam.projection_matrix)
    torch.testing.assert_close(cam.world_view_transform,
                               torch.tensor(getWorld2View2(Rw2c.T, t)).T)


def make_info(path, W, H, fx=None, cx=None, cy=None, seed=0):
    Rw2c, t = random_pose(seed)
    fx = fx or 0.8 * W
    return CameraInfo(uid=7, R=Rw2c.T, T=t, FovX=focal2fov(fx, W), FovY=focal2fov(fx, H),
                      cx=W / 2 if cx is None else cx, cy=H / 2 if cy is None else cy,
                      width=W, height=H, image_path=str(path), image_name="img", is_test=False)


@pytest.mark.parametrize("r,size", [(1, (64, 48)), (2, (32, 24)), (4, (16, 12)), (8, (8, 6)),
                                    (40, (40, 30)), (-1, (64, 48))])
def test_resolution_rule(tmp_path, r, size):
    p = tmp_path / "img.png"
    Image.fromarray(np.full((48, 64, 3), 100, np.uint8)).save(p)
    info = make_info(p, 64, 48, cx=35.0, cy=20.0)
    cam = loadCam(loader_args(r), 3, info, 1.0)
    assert (cam.image_width, cam.image_height) == size
    assert cam.original_image.shape == (3, size[1], size[0])
    assert cam.original_image.dtype == torch.float32
    assert float(cam.original_image.max()) == pytest.approx(100 / 255)
    s = size[0] / 64
    assert cam.cx == pytest.approx(35.0 * s) and cam.cy == pytest.approx(20.0 * size[1] / 48)
    assert fov2focal(cam.FoVx, cam.image_width) == pytest.approx(0.8 * 64 * s)
    assert cam.uid == 3 and cam.colmap_id == 7 and cam.alpha_mask is None


def test_auto_resolution_caps_width(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(camera_loading, "WARNED", False)
    p = tmp_path / "wide.png"
    Image.fromarray(np.zeros((4, 2000, 3), np.uint8)).save(p)
    cams = [loadCam(loader_args(-1), i, make_info(p, 2000, 4), 1.0) for i in range(2)]
    assert (cams[0].image_width, cams[0].image_height) == (1600, 3)
    assert capsys.readouterr().out.count("1600") == 1  # told once


def test_bad_resolution(tmp_path):
    p = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p)
    with pytest.raises(UserError, match="--resolution"):
        loadCam(loader_args(-3), 0, make_info(p, 8, 8), 1.0)


def test_size_mismatch_rescales_intrinsics(tmp_path):
    """The file is 32x24 but the info describes 64x48: intrinsics follow the file."""
    p = tmp_path / "img.png"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(p)
    cam = loadCam(loader_args(1), 0, make_info(p, 64, 48, fx=50.0, cx=30.0, cy=26.0), 1.0)
    assert (cam.image_width, cam.image_height) == (32, 24)
    assert cam.cx == pytest.approx(15.0) and cam.cy == pytest.approx(13.0)
    assert fov2focal(cam.FoVx, 32) == pytest.approx(25.0)


@pytest.mark.parametrize("white", [False, True])
def test_rgba_composited(tmp_path, white):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    p = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(p)
    cam = loadCam(loader_args(1, white), 0, make_info(p, 8, 8), 1.0)
    img = cam.original_image
    assert torch.allclose(img[:, :4], torch.tensor([200 / 255, 0, 0]).view(3, 1, 1))
    assert torch.all(img[:, 4:] == (1.0 if white else 0.0))
    assert cam.alpha_mask.shape == (1, 8, 8)
    assert float(cam.alpha_mask[0, 0, 0]) == 1.0 and float(cam.alpha_mask[0, 7, 0]) == 0.0


def test_unreadable_image(tmp_path):
    p = tmp_path / "broken.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:40])  # header survives, pixel data does not
    with pytest.raises(UserError, match="broken.png"):
        loadCam(loader_args(1), 0, make_info(p, 16, 16), 1.0)
    with pytest.raises(UserError, match="gone.png"):
        loadCam(loader_args(1), 0, make_info(tmp_path / "gone.png", 16, 16), 1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_data_device_without_cuda(tmp_path):
    p = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p)
    a = loader_args(1)
    a.data_device = "cuda"
    with pytest.raises(UserError, match="--data_device"):
        loadCam(a, 0, make_info(p, 8, 8), 1.0)


def test_camera_list_to_and_json(tmp_path):
    p = tmp_path / "img.png"
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(p)
    infos = [make_info(p, 16, 12, seed=s) for s in range(3)]
    cams = cameraList_from_camInfos(infos, 1.0, loader_args(1))
    assert [c.uid for c in cams] == [0, 1, 2]
    assert cams[0].to("cpu") is cams[0]
    entry = camera_to_JSON(0, infos[1])
    json.dumps(entry)
    assert {"id", "img_name", "width", "height", "position", "rotation", "fy", "fx"} <= set(entry)
    np.testing.assert_allclose(entry["position"], cams[1].camera_center.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.array(entry["rotation"]), infos[1].R, atol=1e-12)
    assert entry["fx"] == pytest.approx(0.8 * 16)
    assert camera_to_JSON(0, cams[1])["fx"] == pytest.approx(entry["fx"])


def test_float_target_assignment():
    cam = Camera(1, np.eye(3), np.zeros(3), 1.0, 0.8, torch.zeros(3, 4, 5, dtype=torch.uint8),
                 "x", 0)
    new = torch.rand(3, 4, 5)
    cam.original_image = new
    assert torch.equal(cam.original_image, new)
