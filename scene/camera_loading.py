"""CameraInfo -> Camera: load the image at the run's resolution (the reference `-r` rule),
composite alpha on the background, and scale the intrinsics to match."""
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from scene.cameras import Camera
from scene.depth_maps import apply_params, is_reliable, load_invdepth
from utils.device import resolve_device
from utils.errors import UserError, elide, one_line
from utils.graphics_utils import focal2fov, fov2focal
from utils.image_utils import to_uint8

# Not a cache: the reference's print-once flag for the "-r -1 downscales to 1600 px" line
# (train and test lists are loaded separately; the line is printed once per process).
WARNED = False


def _target_size(orig_w, orig_h, resolution, resolution_scale):
    """The reference rule: -r 1/2/4/8 divide the size; any other positive value is a target
    width; -1 (auto) caps the width at 1600 px."""
    global WARNED
    if resolution in (1, 2, 4, 8):
        if min(orig_w, orig_h) < resolution_scale * resolution:
            raise UserError(f"-r/--resolution {resolution} leaves less than 1 px of a "
                            f"{orig_w}x{orig_h} image")
        return (max(1, round(orig_w / (resolution_scale * resolution))),
                max(1, round(orig_h / (resolution_scale * resolution))))
    if resolution == -1:
        global_down = 1.0
        if orig_w > 1600:
            if not WARNED:
                print("[ INFO ] Images wider than 1.6K px are rescaled to 1600 px wide. "
                      "Use -r 1 to keep the full resolution.")
                WARNED = True
            global_down = orig_w / 1600
    elif resolution > 0:
        if resolution > orig_w:  # upsampling photos only costs memory (-r 100000: gigabytes)
            raise UserError(f"-r/--resolution {resolution} is wider than the {orig_w} px wide "
                            "images: give at most their width, or 1, 2, 4, 8")
        global_down = orig_w / resolution
    else:
        raise UserError(f"--resolution must be 1, 2, 4, 8, a target width in pixels, or -1 "
                        f"(auto); got {resolution}")
    s = float(global_down) * float(resolution_scale)
    return max(1, int(orig_w / s)), max(1, int(orig_h / s))


def load_image(path, size=None, white_background=False):
    """(3,H,W) uint8 composited on black/white, (1,H,W) uint8 alpha or None.

    `size`: (W,H), a function (file W, file H) -> (W,H), or None for the file's size.

    Alpha compositing is done in float at the target size on the resized RGBA, with RGB
    premultiplied first so transparent pixels' colours cannot bleed in when resizing."""
    try:
        with Image.open(path) as im:
            im.load()
            if callable(size):
                size = size(*im.size)
            has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            im = im.convert("RGBA" if has_alpha else "RGB")
    except UserError:
        raise
    except FileNotFoundError as e:
        raise UserError(f"image {elide(path, 120)} does not exist") from e
    except Exception as e:  # PIL raises many types for corrupt/unsupported files
        raise UserError(f"cannot read image {elide(path, 120)}: {one_line(str(e), 100)}") from e
    if has_alpha:
        im = im.convert("RGBa")  # premultiplied
    if size is not None and tuple(size) != im.size:
        # area filter for downscaling (as images_2 folders are made), Lanczos for upscaling
        down = size[0] <= im.size[0] and size[1] <= im.size[1]
        im = im.resize(size, Image.Resampling.BOX if down else Image.Resampling.LANCZOS)
    arr = np.asarray(im)
    if not has_alpha:
        return torch.from_numpy(arr.copy()).permute(2, 0, 1), None
    rgb_pm = arr[..., :3].astype(np.float32) / 255.0
    alpha = arr[..., 3:4].astype(np.float32) / 255.0
    bg = 1.0 if white_background else 0.0
    out = np.clip(rgb_pm + bg * (1.0 - alpha), 0.0, 1.0)  # premultiplied "over"
    img = torch.from_numpy(to_uint8(out, "half_even")).permute(2, 0, 1)
    return img, torch.from_numpy(arr[..., 3].copy())[None]


def loadCam(args, id, cam_info, resolution_scale, is_test=None):
    resolve_device(args.data_device, "--data_device")  # one line, not a traceback, if unusable
    image, alpha = load_image(
        cam_info.image_path,
        lambda w, h: _target_size(w, h, args.resolution, resolution_scale),
        args.white_background)
    H, W = image.shape[1:]
    # Intrinsics in cam_info belong to (cam_info.width, cam_info.height); scaling by the
    # ratio to the loaded size also absorbs a file whose size differs from the listed one.
    sx, sy = W / cam_info.width, H / cam_info.height
    fx = fov2focal(cam_info.FovX, cam_info.width) * sx
    fy = fov2focal(cam_info.FovY, cam_info.height) * sy
    if alpha is not None and bool((alpha == 255).all()):
        alpha = None  # opaque: no mask to carry around
    cam = Camera(colmap_id=cam_info.uid, R=cam_info.R, T=cam_info.T,
                 FoVx=focal2fov(fx, W), FoVy=focal2fov(fy, H), image=image,
                 image_name=cam_info.image_name, uid=id, cx=cam_info.cx * sx,
                 cy=cam_info.cy * sy, alpha_mask=alpha, data_device=args.data_device,
                 is_test=cam_info.is_test if is_test is None else is_test)
    if getattr(cam_info, "depth_path", ""):
        p = cam_info.depth_params
        cam.set_invdepth(apply_params(load_invdepth(cam_info.depth_path, (W, H)), p),
                         is_reliable(p))
    return cam


def cameraList_from_camInfos(cam_infos, resolution_scale, args, *, desc="Loading cameras"):
    # The bar shows only on a terminal (disable=None) and only once loading takes > 0.5 s,
    # so logs and captured stderr keep errors on one line.
    bar = tqdm(cam_infos, desc=desc, leave=False, delay=0.5,
               disable=None if len(cam_infos) >= 8 else True)
    return [loadCam(args, i, c, resolution_scale) for i, c in enumerate(bar)]


def camera_to_JSON(id, camera):
    """cameras.json entry (the reference format) from a CameraInfo or a Camera; `cx`, `cy`
    are added so off-centre principal points survive (viewers ignore unknown keys)."""
    width = getattr(camera, "width", None) or camera.image_width
    height = getattr(camera, "height", None) or camera.image_height
    fovx = getattr(camera, "FovX", None) or camera.FoVx
    fovy = getattr(camera, "FovY", None) or camera.FoVy
    Rt = np.eye(4)
    Rt[:3, :3] = np.asarray(camera.R).transpose()
    Rt[:3, 3] = camera.T
    C2W = np.linalg.inv(Rt)
    return {
        "id": id,
        "img_name": camera.image_name,
        "width": int(width),
        "height": int(height),
        "position": C2W[:3, 3].tolist(),
        "rotation": [row.tolist() for row in C2W[:3, :3]],
        "fy": fov2focal(fovy, height),
        "fx": fov2focal(fovx, width),
        "cx": float(camera.cx),
        "cy": float(camera.cy),
    }
