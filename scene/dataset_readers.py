"""Scene readers (COLMAP, Blender/NeRF-synthetic) -> SceneInfo, as the reference codebase.

Readers only look at image headers (size, mode); pixels are loaded later by
scene/camera_loading.py at the resolution the run asks for.
"""
import json
import os
from typing import List, NamedTuple, Optional

import numpy as np
from PIL import Image

from scene.colmap_loader import (detect_model_format, pinhole_intrinsics, qvec2rotmat,
                                 read_model)
from scene.depth_maps import check_depth_map, depth_map_path, params_for, read_depth_params
from scene.input_checks import fov_problem, position_problem, rotation_problem, size_problem
from utils.errors import UserError, elide, one_line
from utils.graphics_utils import focal2fov, fov2focal


class BasicPointCloud(NamedTuple):
    points: np.ndarray  # (N,3) float32
    colors: np.ndarray  # (N,3) float32 in [0,1]
    normals: np.ndarray  # (N,3) float32


class CameraInfo(NamedTuple):
    uid: int  # COLMAP image id (Blender: frame index)
    R: np.ndarray  # (3,3) transpose of the world-to-camera rotation
    T: np.ndarray  # (3,) world-to-camera translation
    FovX: float  # radians, for width x height
    FovY: float
    cx: float  # principal point, COLMAP pixels (top-left pixel centre = 0.5) of width x height
    cy: float
    width: int  # size of the image file
    height: int
    image_path: str
    image_name: str  # file name without extension
    is_test: bool
    has_alpha: bool = False  # image carries an alpha channel (composited at load time)
    depth_path: str = ""  # inverse-depth map (-d/--depths), "" = none
    depth_params: Optional[dict] = None  # its scale, offset, med_scale (COLMAP scenes)


class SceneInfo(NamedTuple):
    point_cloud: Optional[BasicPointCloud]  # None: the caller initialises randomly
    train_cameras: List[CameraInfo]
    test_cameras: List[CameraInfo]
    nerf_normalization: dict  # {"translate": (3,), "radius": float}
    ply_path: Optional[str]
    is_nerf_synthetic: bool


def camera_centers(cam_infos) -> np.ndarray:
    """(N,3) camera centres in world space: C = -R_w2c^T T = -R T."""
    if not cam_infos:
        return np.zeros((0, 3))
    R = np.stack([np.asarray(c.R, np.float64) for c in cam_infos])
    T = np.stack([np.asarray(c.T, np.float64) for c in cam_infos])
    return -np.einsum("nij,nj->ni", R, T)


def getNerfppNorm(cam_infos) -> dict:
    """As the reference: translate = -(centre of the camera centres), radius = 1.1 x the
    largest distance of a camera centre from that centre."""
    centers = camera_centers(cam_infos)
    if len(centers) == 0:
        return {"translate": np.zeros(3, np.float32), "radius": 1.0}
    center = centers.mean(axis=0)
    diagonal = float(np.linalg.norm(centers - center, axis=1).max())
    radius = diagonal * 1.1 if diagonal > 0 else 1.0
    return {"translate": (-center).astype(np.float32), "radius": radius}


def _image_header(path: str, listed_in: str):
    """(width, height, has_alpha) from the file header, or UserError naming the file and the
    file that listed it."""
    try:
        with Image.open(path) as im:
            has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            width, height = im.size
    except FileNotFoundError as e:
        raise UserError(f"image {elide(path, 100)} listed in {elide(listed_in, 100)} does not "
                        f"exist") from e
    except Exception as e:  # PIL raises many types for bad files (empty, garbled, too big)
        why = e.strerror if isinstance(e, OSError) and e.strerror else one_line(str(e), 60)
        raise UserError(f"cannot read image {elide(path, 100)} listed in "
                        f"{elide(listed_in, 100)}: {why}") from e
    problem = size_problem(width, height)
    if problem:
        raise UserError(f"image {elide(path, 100)} listed in {elide(listed_in, 100)}: {problem}")
    return width, height, has_alpha


# ---------------------------------------------------------------- COLMAP

def find_colmap_model(path: str) -> str:
    """`<path>/sparse/0`, or `<path>/sparse` itself when it holds the model."""
    for folder in (os.path.join(path, "sparse", "0"), os.path.join(path, "sparse")):
        if os.path.isdir(folder) and any(
                os.path.isfile(os.path.join(folder, "cameras" + e)) for e in (".bin", ".txt")):
            return folder
    raise UserError(f"no COLMAP model in {os.path.join(path, 'sparse', '0')} "
                    f"(nor in {os.path.join(path, 'sparse')})")


def readColmapCameras(model_dir, cameras, images, images_dir, ext) -> List[CameraInfo]:
    """One CameraInfo per registered image, sorted by name; intrinsics rescaled to the size of
    the file in `images_dir` (how `-i images_2` works with a full-resolution model)."""
    cams_file = os.path.join(model_dir, "cameras" + ext)
    images_file = os.path.join(model_dir, "images" + ext)
    infos = []
    for img in sorted(images.values(), key=lambda im: im.name):
        cam = cameras.get(img.camera_id)
        if cam is None:
            raise UserError(f"image {elide(img.name)} in {images_file} uses camera "
                            f"{img.camera_id}, which {cams_file} does not define")
        fx, fy, cx, cy = pinhole_intrinsics(cam, cams_file)
        image_path = os.path.join(images_dir, img.name)
        width, height, has_alpha = _image_header(image_path, images_file)
        sx, sy = width / cam.width, height / cam.height
        # A downscaled folder keeps the aspect ratio (up to rounding of odd sizes); anything
        # else means the image does not belong to this camera.
        if abs(sx - sy) > 2.0 / min(width, height) + 1e-3:
            raise UserError(f"{elide(image_path, 120)} (listed in {images_file}) is "
                            f"{width}x{height} but its camera {img.camera_id} in {cams_file} is "
                            f"{cam.width}x{cam.height} (aspect ratio differs)")
        fx, cx, fy, cy = fx * sx, cx * sx, fy * sy, cy * sy
        infos.append(CameraInfo(
            uid=img.id, R=qvec2rotmat(img.qvec).T, T=np.asarray(img.tvec, np.float64),
            FovX=focal2fov(fx, width), FovY=focal2fov(fy, height), cx=cx, cy=cy,
            width=width, height=height, image_path=image_path,
            image_name=os.path.splitext(os.path.basename(img.name))[0], is_test=False,
            has_alpha=has_alpha))
    return infos


def attach_depth_maps(cam_infos, depths_dir: str, params=None, model_dir: str = ""):
    """Give each camera its inverse-depth map (checked now: a missing or mismatched map fails
    before any image loads) and, for COLMAP scenes, its depth_params entry."""
    if not depths_dir:
        return cam_infos
    if not os.path.isdir(depths_dir):
        raise UserError(f"-d/--depths: folder {depths_dir} does not exist")
    out = []
    for c in cam_infos:
        path = depth_map_path(depths_dir, c.image_name)
        check_depth_map(path, c.image_path, (c.width, c.height))
        p = params_for(params, c.image_name, model_dir) if params is not None else None
        out.append(c._replace(depth_path=path, depth_params=p))
    return out


def readColmapSceneInfo(path, images_folder, eval, llffhold=8, depths="") -> SceneInfo:
    model_dir = find_colmap_model(path)
    ext = detect_model_format(model_dir)
    cameras, images, points = read_model(model_dir, ext)
    if not images:
        raise UserError(f"COLMAP model {model_dir} has no registered images")
    images_dir = os.path.join(path, images_folder or "images")
    if not os.path.isdir(images_dir):
        raise UserError(f"image folder {images_dir} does not exist (check -i/--images)")
    cam_infos = readColmapCameras(model_dir, cameras, images, images_dir, ext)
    if depths:
        cam_infos = attach_depth_maps(cam_infos, os.path.join(path, depths),
                                      read_depth_params(model_dir), model_dir)
    if eval:  # the reference's LLFF hold-out: every llffhold-th image in name order
        cam_infos = [c._replace(is_test=(i % llffhold == 0)) for i, c in enumerate(cam_infos)]
    train = [c for c in cam_infos if not c.is_test]
    test = [c for c in cam_infos if c.is_test]

    pcd = None
    if len(points.ids):
        xyz = points.xyz.astype(np.float32)
        pcd = BasicPointCloud(points=xyz, colors=points.rgb.astype(np.float32) / 255.0,
                              normals=np.zeros_like(xyz))
    # ply_path is None: the source folder may be read-only; Scene writes input.ply itself.
    return SceneInfo(point_cloud=pcd, train_cameras=train, test_cameras=test,
                     nerf_normalization=getNerfppNorm(train), ply_path=None,
                     is_nerf_synthetic=False)


# ---------------------------------------------------------------- Blender / NeRF-synthetic

def _load_json(json_path: str):
    """Decoded JSON, or UserError naming the file (unreadable, not JSON, nested too deep)."""
    try:
        with open(json_path, "rb") as f:
            return json.loads(f.read())
    except OSError as e:
        raise UserError(f"cannot read {json_path}: {e.strerror}") from e
    except RecursionError:
        raise UserError(f"{json_path} is not a transforms file: JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, bad UTF-8, an integer of > 4300 digits
        raise UserError(f"{json_path} is not valid JSON ({one_line(str(e), 100)})") from None


def _number(v) -> float:
    """A JSON number as a float; ValueError for anything else (bool, str, overflow)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError
    try:
        return float(v)
    except OverflowError:  # an integer beyond 1.8e308
        raise ValueError from None


def _frame_pose(frame, json_path: str, idx: int):
    """(file_path, c2w) of one frame, checked: a 4x4 rigid transform with a finite camera
    position and bottom row 0 0 0 1."""
    entry = f"{json_path}: frame {idx}"
    if not isinstance(frame, dict):
        raise UserError(f"{entry} is not an object with file_path and transform_matrix")
    file_path, m = frame.get("file_path"), frame.get("transform_matrix")
    if not isinstance(file_path, str) or not file_path:
        raise UserError(f"{entry} needs a file_path string")
    try:
        if not (isinstance(m, list) and len(m) == 4
                and all(isinstance(r, list) and len(r) == 4 for r in m)):
            raise ValueError
        c2w = np.array([[_number(v) for v in row] for row in m], dtype=np.float64)
    except ValueError:
        raise UserError(f"{entry} ({elide(file_path)}) needs a transform_matrix of 4 rows "
                        f"of 4 numbers") from None
    problem = (None if np.allclose(c2w[3], [0, 0, 0, 1], rtol=0, atol=1e-6)
               else "bottom row of transform_matrix is not 0 0 0 1")
    problem = (problem or rotation_problem(c2w[:3, :3])
               or position_problem(c2w[:3, 3], "camera position"))
    if problem:
        raise UserError(f"{entry} ({elide(file_path)}): {problem}")
    return file_path, c2w


def readCamerasFromTransforms(path, transformsfile, white_background, extension=".png",
                              is_test=False) -> List[CameraInfo]:
    json_path = os.path.join(path, transformsfile)
    contents = _load_json(json_path)
    if not isinstance(contents, dict) or "camera_angle_x" not in contents \
            or "frames" not in contents:
        raise UserError(f"{json_path} is not a transforms file: needs camera_angle_x and "
                        f"frames")
    frames = contents["frames"]
    if not isinstance(frames, list):
        raise UserError(f"{json_path}: frames must be a list, got {elide(frames, 40)}")
    try:
        fovx = _number(contents["camera_angle_x"])
    except ValueError:
        fovx = contents["camera_angle_x"]
    problem = fov_problem(fovx, "camera_angle_x")
    if problem:
        raise UserError(f"{json_path}: {problem}")
    infos = []
    for idx, frame in enumerate(frames):
        file_path, c2w = _frame_pose(frame, json_path, idx)
        if not os.path.splitext(file_path)[1]:
            file_path += extension
        image_path = os.path.normpath(os.path.join(path, file_path))
        # Blender/OpenGL camera axes (x right, y up, looking down -z) -> COLMAP (y down, z fwd)
        c2w[:3, 1:3] *= -1
        w2c = np.linalg.inv(c2w)
        width, height, has_alpha = _image_header(image_path, json_path)
        fovy = focal2fov(fov2focal(fovx, width), height)
        infos.append(CameraInfo(
            uid=idx, R=w2c[:3, :3].T, T=w2c[:3, 3], FovX=fovx, FovY=fovy,
            cx=width / 2.0, cy=height / 2.0, width=width, height=height,
            image_path=image_path, image_name=os.path.splitext(os.path.basename(file_path))[0],
            is_test=is_test, has_alpha=has_alpha))
    return infos


def readNerfSyntheticInfo(path, white_background, eval, extension=".png",
                          depths="") -> SceneInfo:
    """`white_background` is kept for the reference signature; compositing on the
    background happens when images are loaded (scene/camera_loading.py). Depth maps of Blender
    scenes are used as given (no depth_params), as the reference."""
    train = readCamerasFromTransforms(path, "transforms_train.json", white_background,
                                      extension)
    test = []
    if os.path.isfile(os.path.join(path, "transforms_test.json")):
        test = readCamerasFromTransforms(path, "transforms_test.json", white_background,
                                         extension, is_test=True)
    if not eval:  # as the reference: without --eval every view trains
        train = train + [c._replace(is_test=False) for c in test]
        test = []
    if depths:
        train = attach_depth_maps(train, os.path.join(path, depths))
        test = attach_depth_maps(test, os.path.join(path, depths))
    return SceneInfo(point_cloud=None, train_cameras=train, test_cameras=test,
                     nerf_normalization=getNerfppNorm(train), ply_path=None,
                     is_nerf_synthetic=True)


sceneLoadTypeCallbacks = {
    "Colmap": readColmapSceneInfo,
    "Blender": readNerfSyntheticInfo,
}


def detect_scene_type(path: str) -> str:
    if not os.path.isdir(path):
        raise UserError(f"source path {path} does not exist (-s/--source_path)")
    if os.path.isdir(os.path.join(path, "sparse")):
        return "Colmap"
    if os.path.isfile(os.path.join(path, "transforms_train.json")):
        return "Blender"
    raise UserError(f"no COLMAP sparse/ or transforms_train.json in {path}")


# ---------------------------------------------------------------- random initialisation

def _convergence_depths(cams):
    """Per-camera distance along the optical axis to where the cameras look.

    Heuristic: the point closest (least squares) to all optical axes. For object-centric
    (360°) captures it is the object; for forward-facing captures the small toe-in of the
    views usually still pins it down (fern: 0.9 x the median depth of its SfM points). If it
    is behind the cameras or implausibly far (> 50 x the camera spread, near-parallel axes),
    fall back to a depth of 10 x the camera spread, typical for hand-held forward captures.
    """
    C = camera_centers(cams)
    d = np.stack([np.asarray(c.R, np.float64)[:, 2] for c in cams])  # optical axes (world)
    spread = float(np.median(np.linalg.norm(C - C.mean(0), axis=1)))
    spread = spread if spread > 1e-9 else 1.0
    P = np.eye(3)[None] - d[:, :, None] * d[:, None, :]
    p = np.linalg.lstsq(P.sum(0), np.einsum("nij,nj->i", P, C), rcond=None)[0]
    t = np.einsum("ni,ni->n", d, p - C)
    t_med = float(np.median(t))
    if not (0 < t_med < 50 * spread):
        return np.full(len(cams), 10.0 * spread)
    return np.where(t > 0.1 * t_med, t, t_med)  # a camera looking elsewhere: typical depth


def visible_fraction(points, cams) -> np.ndarray:
    """(N,) fraction of `cams` whose image (full frame, in front of the camera) sees each point."""
    points = np.asarray(points, np.float32)
    seen = np.zeros(len(points), np.int32)
    for c in cams:
        # pixel * z = K (R_w2c X + T): test 0 <= u <= W as 0 <= u z <= W z (no division)
        fx, fy = fov2focal(c.FovX, c.width), fov2focal(c.FovY, c.height)
        K = np.array([[fx, 0, c.cx], [0, fy, c.cy], [0, 0, 1]])
        M = (K @ np.asarray(c.R, np.float64).T).T.astype(np.float32)
        uvz = points @ M + (K @ np.asarray(c.T, np.float64)).astype(np.float32)
        z = uvz[:, 2]
        seen += ((z > 0) & (uvz[:, 0] >= 0) & (uvz[:, 0] <= c.width * z)
                 & (uvz[:, 1] >= 0) & (uvz[:, 1] <= c.height * z))
    return seen / max(len(cams), 1)


def random_point_cloud(cameras, n, seed, bounds=None) -> BasicPointCloud:
    """`n` random points where the cameras look (not around the world origin), grey-ish colours.

    Candidates are sampled along rays from random cameras through random pixels, at depths
    uniform in [0.5 t, 1.5 t] where t is the camera's distance to the convergence point of all
    optical axes (see `_convergence_depths`). With `bounds=(min_xyz, max_xyz)` candidates are
    instead uniform in that box. Candidates seen by fewer than half of (up to 32 of) the
    cameras are rejected, so the cloud sits in the volume the views share, for 360° and
    forward-facing captures alike; if too few pass, the best-seen candidates fill up.
    """
    rng = np.random.default_rng(seed)
    cams = list(cameras)
    if not cams:
        raise UserError("cannot place random initial points: the scene has no cameras")
    judges = cams[:: max(1, len(cams) // 32)]
    depth = _convergence_depths(cams)
    kept, spare, spare_score = [], [], []
    have = 0
    for _ in range(8):
        m = max(2 * (n - have), 1024)
        if bounds is not None:
            lo, hi = (np.asarray(b, np.float64) for b in bounds)
            cand = rng.uniform(lo, hi, size=(m, 3))
        else:
            idx = rng.integers(0, len(cams), m)
            cand = np.empty((m, 3))
            for k in np.unique(idx):
                sel = np.nonzero(idx == k)[0]
                c = cams[k]
                fx, fy = fov2focal(c.FovX, c.width), fov2focal(c.FovY, c.height)
                u = rng.uniform(0, c.width, len(sel))
                v = rng.uniform(0, c.height, len(sel))
                dirs = np.stack([(u - c.cx) / fx, (v - c.cy) / fy, np.ones(len(sel))], 1)
                z = rng.uniform(0.5, 1.5, len(sel)) * depth[k]
                R = np.asarray(c.R, np.float64)
                center = -R @ np.asarray(c.T, np.float64)
                cand[sel] = center + (dirs * z[:, None]) @ R.T  # camera -> world: R x_cam
        score = visible_fraction(cand, judges)
        good = score >= 0.5
        kept.append(cand[good][: n - have])
        have += len(kept[-1])
        spare.append(cand[~good])
        spare_score.append(score[~good])
        if have >= n:
            break
    pts = np.concatenate(kept)
    if have < n:
        rest, rest_score = np.concatenate(spare), np.concatenate(spare_score)
        pts = np.concatenate([pts, rest[np.argsort(-rest_score, kind="stable")[: n - have]]])
    pts = pts.astype(np.float32)
    colors = (0.4 + 0.2 * rng.random((len(pts), 3))).astype(np.float32)
    return BasicPointCloud(points=pts, colors=colors, normals=np.zeros_like(pts))
