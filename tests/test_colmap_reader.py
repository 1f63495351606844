"""COLMAP model I/O (bin + txt), camera models, corrupt-file fuzzing, and the scene reader."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image as PILImage

from scene import colmap_loader as cl
from scene.dataset_readers import detect_scene_type, readColmapSceneInfo
from utils.errors import UserError

pytestmark = pytest.mark.unit


def small_model(camera_models=("PINHOLE", "SIMPLE_PINHOLE"), n_images=4, n_points=20, seed=0,
                width=32, height=24):
    """A small consistent model: one camera per image from `camera_models` (cycled)."""
    rng = np.random.default_rng(seed)
    cameras = {}
    for i, name in enumerate(camera_models):
        m = cl.MODEL_BY_NAME[name]
        params = rng.uniform(0.01, 0.1, m.num_params)  # distortion terms, if any
        params[:2] = 30.0  # focal(s) first in every model
        if name in cl.SUPPORTED_MODELS:
            params[-2:] = width / 2 + 1.5, height / 2 - 0.5  # then cx, cy
        cameras[i + 1] = cl.Camera(i + 1, name, width, height, params)
    images = {}
    for k in range(1, n_images + 1):
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q) * np.sign(q[0])
        npts = int(rng.integers(0, 5))
        images[k] = cl.Image(k, q, rng.normal(size=3), (k - 1) % len(cameras) + 1,
                             f"img_{k:02d}.png", rng.uniform(0, 30, (npts, 2)),
                             rng.integers(-1, n_points, npts).astype(np.int64))
    lens = rng.integers(0, 4, n_points)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    points = cl.Points3D(np.arange(1, n_points + 1, dtype=np.int64), rng.normal(size=(n_points, 3)),
                         rng.integers(0, 256, (n_points, 3)).astype(np.uint8),
                         rng.random(n_points), offsets,
                         rng.integers(0, 10, (int(offsets[-1]), 2)).astype(np.int32))
    return cameras, images, points


def assert_models_equal(a, b):
    ca, ia, pa = a
    cb, ib, pb = b
    assert ca.keys() == cb.keys()
    for k in ca:
        assert (ca[k].id, ca[k].model, ca[k].width, ca[k].height) == \
               (cb[k].id, cb[k].model, cb[k].width, cb[k].height)
        np.testing.assert_array_equal(ca[k].params, cb[k].params)
    assert ia.keys() == ib.keys()
    for k in ia:
        assert (ia[k].name, ia[k].camera_id) == (ib[k].name, ib[k].camera_id)
        for f in ("qvec", "tvec", "xys", "point3D_ids"):
            np.testing.assert_array_equal(getattr(ia[k], f), getattr(ib[k], f))
    for f in pa._fields:
        np.testing.assert_array_equal(getattr(pa, f), getattr(pb, f))


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_round_trip(tmp_path, ext):
    model = small_model()
    cl.write_model(str(tmp_path), *model, ext=ext)
    assert cl.detect_model_format(str(tmp_path)) == ext
    assert_models_equal(model, cl.read_model(str(tmp_path)))


def test_bin_preferred_over_txt(tmp_path):
    cl.write_model(str(tmp_path), *small_model(seed=1), ext=".txt")
    cl.write_model(str(tmp_path), *small_model(seed=2), ext=".bin")
    assert_models_equal(small_model(seed=2), cl.read_model(str(tmp_path)))


def test_text_without_empty_points_lines(tmp_path):
    (tmp_path / "images.txt").write_text(
        "# comment\n1 1 0 0 0 0 0 1 1 a.png\n2 1 0 0 0 0 0 2 1 b c.png\n1.5 2.5 -1 3 4 7\n")
    imgs = cl.read_images_text(str(tmp_path / "images.txt"))
    assert [imgs[1].name, imgs[2].name] == ["a.png", "b c.png"]
    assert len(imgs[1].xys) == 0
    np.testing.assert_array_equal(imgs[2].point3D_ids, [-1, 7])


def test_qvec_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q) * np.sign(q[0])
        R = cl.qvec2rotmat(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(cl.rotmat2qvec(R), q, atol=1e-10)


# ---------------------------------------------------------------- corrupt files

def _read_outcome(reader, path):
    """"ok" or "user" (a one-line UserError naming the file); anything else propagates."""
    try:
        reader(path)
        return "ok"
    except UserError as e:
        msg = str(e)
        assert os.path.basename(path) in msg and "\n" not in msg and len(msg) <= 300, msg
        return "user"


@pytest.mark.parametrize("which", ["cameras", "images", "points3D"])
def test_truncated_bin(tmp_path, which):
    cl.write_model(str(tmp_path), *small_model(n_images=6, n_points=30), ext=".bin")
    path = str(tmp_path / f"{which}.bin")
    reader = {"cameras": cl.read_cameras_binary, "images": cl.read_images_binary,
              "points3D": cl.read_points3D_binary}[which]
    data = open(path, "rb").read()
    bad = str(tmp_path / f"bad_{which}.bin")
    offsets = sorted(set(np.linspace(0, len(data) - 1, 120).astype(int)))
    for n in offsets:
        open(bad, "wb").write(data[:n])
        assert _read_outcome(reader, bad) == "user", n  # every strict prefix is incomplete
    open(bad, "wb").write(data + b"\0")
    assert _read_outcome(reader, bad) == "user"


def _byte_roles(which, model):
    """The role of each byte of the `which`.bin that write_model writes for `model`: "count"
    (a record count), "free" (a colour byte, or one of a double's four low mantissa bytes: any
    value there still loads) or "other"."""
    cameras, images, points = model
    roles = []

    def add(role, n):
        roles.extend([role] * n)

    def doubles(n):
        for _ in range(n):
            add("free", 4)
            add("other", 4)

    add("count", 8)
    if which == "cameras":
        for cam in cameras.values():
            add("other", 24)  # id, model id, width, height
            doubles(len(cam.params))
    elif which == "images":
        for img in images.values():
            add("other", 4)  # id
            doubles(7)  # qvec, tvec
            add("other", 4 + len(img.name.encode()) + 1)  # camera id, name and NUL
            add("count", 8)
            for _ in img.point3D_ids:
                doubles(2)
                add("other", 8)
    else:
        for i in range(len(points.ids)):
            add("other", 8)  # id
            doubles(3)
            add("free", 3)  # rgb
            doubles(1)  # error
            add("count", 8)  # track length
            add("other", 8 * int(points.track_offsets[i + 1] - points.track_offsets[i]))
    return np.array(roles)


@pytest.mark.parametrize("which", ["cameras", "images", "points3D"])
def test_garbled_bin(tmp_path, which):
    """1 to 3 random bytes changed, 300 times: each file loads or is a clean line; a change
    only in colours or low mantissa bits always loads, a changed record count never does."""
    model = small_model(n_images=6, n_points=30)
    cl.write_model(str(tmp_path), *model, ext=".bin")
    path = str(tmp_path / f"{which}.bin")
    reader = {"cameras": cl.read_cameras_binary, "images": cl.read_images_binary,
              "points3D": cl.read_points3D_binary}[which]
    data = bytearray(open(path, "rb").read())
    roles = _byte_roles(which, model)
    assert len(roles) == len(data)
    rng = np.random.default_rng(0)
    bad = str(tmp_path / f"bad_{which}.bin")
    outcomes = {"ok": 0, "user": 0}
    by_role = {"free": 0, "count": 0}
    for _ in range(300):
        d = bytearray(data)
        for pos in rng.integers(0, len(d), int(rng.integers(1, 4))):
            d[pos] = int(rng.integers(0, 256))
        open(bad, "wb").write(bytes(d))
        got = _read_outcome(reader, bad)  # any other exception fails the test
        outcomes[got] += 1
        changed = set(roles[np.frombuffer(bytes(d), np.uint8) != np.frombuffer(data, np.uint8)])
        if changed == {"free"}:
            by_role["free"] += 1
            assert got == "ok", which
        if "count" in changed:
            by_role["count"] += 1
            assert got == "user", which
    assert outcomes["ok"] + outcomes["user"] == 300
    assert by_role["free"] > 0 and by_role["count"] > 0, by_role  # both rules were exercised


def test_huge_count_is_rejected_without_allocating(tmp_path):
    p = tmp_path / "points3D.bin"
    p.write_bytes((2 ** 63).to_bytes(8, "little") + b"\0" * 50)
    with pytest.raises(UserError, match="points3D.bin"):
        cl.read_points3D_binary(str(p))
    p = tmp_path / "images.bin"
    cl.write_images_binary(small_model(n_images=1)[1], str(p))
    d = bytearray(p.read_bytes())
    i = d.index(b"img_01.png\0") + len(b"img_01.png\0")
    d[i:i + 8] = (2 ** 62).to_bytes(8, "little")  # number of 2D points
    p.write_bytes(bytes(d))
    with pytest.raises(UserError, match="images.bin"):
        cl.read_images_binary(str(p))


def test_text_garbage(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 32 24 30 30 16\n")
    with pytest.raises(UserError, match="cameras.txt line 1"):
        cl.read_cameras_text(str(tmp_path / "cameras.txt"))
    (tmp_path / "points3D.txt").write_text("1 0 0 0 255 0 0 0.1 1\n")
    with pytest.raises(UserError, match="points3D.txt line 1"):
        cl.read_points3D_text(str(tmp_path / "points3D.txt"))


# ---------------------------------------------------------------- scene folders

def write_scene(root, model=None, ext=".bin", images_folder="images", scale=1.0,
                sparse_sub="sparse/0"):
    """A COLMAP scene folder with real image files matching the model (optionally scaled)."""
    cameras, images, points = model or small_model()
    cl.write_model(os.path.join(root, sparse_sub), cameras, images, points, ext=ext)
    os.makedirs(os.path.join(root, images_folder), exist_ok=True)
    rng = np.random.default_rng(0)
    for im in images.values():
        cam = cameras[im.camera_id]
        w, h = round(cam.width * scale), round(cam.height * scale)
        PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            os.path.join(root, images_folder, im.name))
    return cameras, images, points


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_read_colmap_scene(tmp_path, ext):
    cameras, images, points = write_scene(str(tmp_path), ext=ext)
    si = readColmapSceneInfo(str(tmp_path), "images", eval=False)
    assert len(si.train_cameras) == len(images) and si.test_cameras == []
    assert [c.image_name for c in si.train_cameras] == sorted(
        os.path.splitext(im.name)[0] for im in images.values())
    for c in si.train_cameras:
        im = images[c.uid]
        np.testing.assert_allclose(c.R.T, cl.qvec2rotmat(im.qvec), atol=1e-12)
        np.testing.assert_allclose(c.T, im.tvec)
        fx = cameras[im.camera_id].params[0]
        assert c.FovX == pytest.approx(2 * np.arctan(32 / (2 * fx)))
        assert (c.width, c.height) == (32, 24)
    np.testing.assert_allclose(si.point_cloud.points, points.xyz.astype(np.float32))
    assert si.point_cloud.colors.max() <= 1.0 and si.point_cloud.colors.dtype == np.float32
    assert si.is_nerf_synthetic is False
    assert set(si.nerf_normalization) == {"translate", "radius"}
    assert detect_scene_type(str(tmp_path)) == "Colmap"


def test_sparse_without_0_and_eval_split(tmp_path):
    write_scene(str(tmp_path), model=small_model(n_images=10), sparse_sub="sparse")
    si = readColmapSceneInfo(str(tmp_path), "images", eval=True, llffhold=4)
    assert sorted(c.image_name for c in si.test_cameras) == ["img_01", "img_05", "img_09"]
    assert len(si.train_cameras) == 7


def test_images_folder_scaled(tmp_path):
    cameras, images, _ = write_scene(str(tmp_path), images_folder="images_2", scale=0.5)
    si = readColmapSceneInfo(str(tmp_path), "images_2", eval=False)
    for c in si.train_cameras:
        cam = cameras[images[c.uid].camera_id]
        fx, fy, cx, cy = cl.pinhole_intrinsics(cam, "x")
        assert (c.width, c.height) == (16, 12)
        assert c.cx == pytest.approx(cx / 2) and c.cy == pytest.approx(cy / 2)
        assert c.FovX == pytest.approx(2 * np.arctan(16 / (2 * fx / 2)))


def test_empty_points_gives_none(tmp_path):
    cams, imgs, _ = small_model()
    write_scene(str(tmp_path), model=(cams, imgs, cl.Points3D.empty()))
    assert readColmapSceneInfo(str(tmp_path), "images", False).point_cloud is None


@pytest.mark.parametrize("model", [m.model_name for m in cl.CAMERA_MODELS
                                   if m.model_name not in cl.SUPPORTED_MODELS])
def test_unsupported_camera_model(tmp_path, model):
    write_scene(str(tmp_path), model=small_model(camera_models=(model,)))
    assert cl.read_cameras_binary(str(tmp_path / "sparse/0/cameras.bin"))[1].model == model
    with pytest.raises(UserError, match=model) as e:
        readColmapSceneInfo(str(tmp_path), "images", False)
    assert "cameras.bin" in str(e.value) and "image_undistorter" in str(e.value)


def test_missing_sparse(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(UserError, match=str(tmp_path / "sparse" / "0")):
        readColmapSceneInfo(str(tmp_path), "images", False)
    with pytest.raises(UserError, match="no COLMAP sparse/ or transforms_train.json"):
        detect_scene_type(str(tmp_path))


def test_missing_images_folder(tmp_path):
    write_scene(str(tmp_path))
    with pytest.raises(UserError, match="images_4"):
        readColmapSceneInfo(str(tmp_path), "images_4", False)


def test_image_listed_but_absent(tmp_path):
    write_scene(str(tmp_path))
    os.remove(tmp_path / "images" / "img_03.png")
    with pytest.raises(UserError, match="img_03.png"):
        readColmapSceneInfo(str(tmp_path), "images", False)


def test_unreadable_image(tmp_path):
    write_scene(str(tmp_path))
    (tmp_path / "images" / "img_02.png").write_bytes(b"not a png at all")
    with pytest.raises(UserError, match="img_02.png"):
        readColmapSceneInfo(str(tmp_path), "images", False)


def test_corrupt_model_in_scene(tmp_path):
    write_scene(str(tmp_path))
    p = tmp_path / "sparse" / "0" / "images.bin"
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(UserError, match="images.bin"):
        readColmapSceneInfo(str(tmp_path), "images", False)


def test_reader_does_not_write_to_source(tmp_path):
    """Readers never write into the source folder (shared scenes are read-only)."""
    write_scene(str(tmp_path / "s"))
    before = sorted(os.listdir(tmp_path / "s" / "sparse" / "0"))
    readColmapSceneInfo(str(tmp_path / "s"), "images", False)
    assert sorted(os.listdir(tmp_path / "s" / "sparse" / "0")) == before
    shutil.rmtree(tmp_path / "s")


# ---------------------------------------------------------------- random initialisation

def _look_at_info(center, target, uid):
    from scene.dataset_readers import CameraInfo
    f = (target - center) / np.linalg.norm(target - center)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    Rw2c = np.stack([right, np.cross(f, right), f])
    return CameraInfo(uid=uid, R=Rw2c.T, T=-Rw2c @ center, FovX=1.0, FovY=0.8, cx=32.0,
                      cy=24.0, width=64, height=48, image_path="", image_name=str(uid),
                      is_test=False)


@pytest.mark.parametrize("layout", ["ring", "parallel"])
def test_random_point_cloud_synthetic(layout):
    from scene.dataset_readers import random_point_cloud, visible_fraction
    target = np.array([5.0, -3.0, 2.0])  # away from the world origin on purpose
    if layout == "ring":
        cams = [_look_at_info(target + 4 * np.array([np.cos(a), np.sin(a), 0.5]), target, i)
                for i, a in enumerate(np.linspace(0, 2 * np.pi, 12, endpoint=False))]
    else:  # exactly parallel axes: the convergence point is undefined -> depth fallback
        cams = [_look_at_info(target + np.array([x, 10.0, 0.0]), target + [x, 0, 0], i)
                for i, x in enumerate(np.linspace(-1, 1, 6))]
    pcd = random_point_cloud(cams, 3000, seed=1)
    assert pcd.points.shape == (3000, 3) and np.all(pcd.normals == 0)
    assert np.mean(visible_fraction(pcd.points, cams) >= 0.5) > 0.95
    box = random_point_cloud(cams, 500, seed=1, bounds=(target - 1, target + 1))
    assert np.all(np.abs(box.points - target) <= 1 + 1e-5)
