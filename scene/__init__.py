"""Scene: cameras and initial points of a capture, and the model's on-disk layout."""
import os
from typing import Optional

from scene.dataset_readers import (detect_scene_type, random_point_cloud,
                                   readColmapSceneInfo, readNerfSyntheticInfo)
from scene.exposure import hide_right_half
from scene.gaussian_model import GaussianModel
from scene.ply_io import write_point_cloud
from scene.camera_loading import camera_to_JSON, cameraList_from_camInfos
from utils.errors import UserError
from utils.io_utils import atomic_write_json
from utils.system_utils import searchForMaxIteration

# Random initial points when a scene ships none (Blender) and --random_init is not given.
DEFAULT_RANDOM_POINTS = 100_000


def read_scene_info(args):
    if not args.source_path or not os.path.isdir(args.source_path):
        raise UserError(f"-s/--source_path {args.source_path!r} is not a folder")
    kind = detect_scene_type(args.source_path)
    depths = getattr(args, "depths", "") or ""
    if kind == "Colmap":
        return readColmapSceneInfo(args.source_path, args.images, args.eval, args.llffhold,
                                   depths=depths)
    return readNerfSyntheticInfo(args.source_path, args.white_background, args.eval,
                                 depths=depths)


class Scene:
    """Loads cameras (train/test split) and initialises or loads `gaussians`.

    load_iteration: None = fresh start from points; -1 = latest saved iteration; N = that one.
    quiet: no progress lines (errors still raise).
    """

    def __init__(self, args, gaussians: GaussianModel, load_iteration: Optional[int] = None,
                 resolution_scales=(1.0,), quiet: bool = False):
        say = (lambda msg: None) if quiet else print
        self.model_path = args.model_path
        self.gaussians = gaussians
        self.loaded_iter = None
        if load_iteration is not None:
            pc_dir = os.path.join(self.model_path, "point_cloud")
            self.loaded_iter = (searchForMaxIteration(pc_dir) if load_iteration == -1
                                else load_iteration)
            if self.loaded_iter is None:
                raise UserError(f"no saved iteration in {pc_dir}")
            say(f"Loading trained model at iteration {self.loaded_iter}")

        info = read_scene_info(args)
        if not info.train_cameras:
            raise UserError(f"{args.source_path}: the scene has no training images")
        self.scene_info = info
        self.cameras_extent = float(info.nerf_normalization["radius"])

        self.train_cameras, self.test_cameras = {}, {}
        for scale in resolution_scales:
            self.train_cameras[scale] = cameraList_from_camInfos(
                info.train_cameras, scale, args, desc="Loading training cameras")
            self.test_cameras[scale] = cameraList_from_camInfos(
                info.test_cameras, scale, args, desc="Loading test cameras")
            if getattr(args, "train_test_exp", False) and load_iteration is None:
                # The reference's exposure protocol: test images train on their left half.
                halves = cameraList_from_camInfos(info.test_cameras, scale, args,
                                                  desc="Loading test halves")
                self.train_cameras[scale] += [hide_right_half(c) for c in halves]

        if self.loaded_iter is not None:
            gaussians.load_ply(os.path.join(self.model_path, "point_cloud",
                                            f"iteration_{self.loaded_iter}", "point_cloud.ply"))
            return
        pcd = info.point_cloud
        n_random = args.random_init or (DEFAULT_RANDOM_POINTS if pcd is None else 0)
        if n_random:
            pcd = random_point_cloud(info.train_cameras, n_random, seed=args.seed)
            say(f"Initialising from {n_random} random points in the cameras' view volume")
        if pcd is None or len(pcd.points) == 0:
            raise UserError(f"{args.source_path}: no initial points; use --random_init N")
        write_point_cloud(os.path.join(self.model_path, "input.ply"), pcd.points, pcd.colors)
        all_cams = list(info.test_cameras) + list(info.train_cameras)  # the reference's order
        atomic_write_json(os.path.join(self.model_path, "cameras.json"),
                          [camera_to_JSON(i, c) for i, c in enumerate(all_cams)])
        gaussians.create_from_pcd(pcd, self.cameras_extent)

    def save(self, iteration: int):
        path = os.path.join(self.model_path, "point_cloud", f"iteration_{iteration}",
                            "point_cloud.ply")
        self.gaussians.save_ply(path)
        return path

    def getTrainCameras(self, scale=1.0):
        return self.train_cameras[scale]

    def getTestCameras(self, scale=1.0):
        return self.test_cameras[scale]
