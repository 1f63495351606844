"""Loading Parameters: the scene, the output folder, the device and the seed."""
import os

from arguments.groups import ParamGroup
from utils.ranges import POINTS_MAX, SH_DEGREE_MAX, Int, seed


class ModelParams(ParamGroup):
    def __init__(self, parser, sentinel=False):
        self.sh_degree = 3
        self._source_path = ""
        self._model_path = ""
        self._images = "images"
        self._depths = ""
        self._resolution = -1
        self._white_background = False
        self.data_device = "auto"
        self.device = "auto"
        self.eval = False
        self.llffhold = 8
        self.random_init = 0
        self.seed = 0
        self.train_test_exp = False
        super().__init__(parser, "Loading Parameters", sentinel)

    def _help(self):
        return {
            "source_path": "scene folder (COLMAP sparse/ or Blender transforms_*.json)",
            "model_path": "output folder (default: output/<random>)",
            "images": "image folder inside the scene, e.g. images_2",
            "depths": "folder (inside the scene, or a path) of per-image inverse-depth maps: "
                      "16-bit PNGs named as the images (COLMAP scenes also need "
                      "sparse/0/depth_params.json from utils/make_depth_scale.py)",
            "resolution": "1, 2, 4, 8 divide the image size; another value is a target width; "
                          "-1 caps the width at 1600",
            "device": "cuda, cpu or auto (CUDA when available)",
            "data_device": "where training images live (auto = --device)",
            "random_init": "start from N random points in the cameras' view volume instead of "
                           "the SfM points (0 = use SfM points)",
            "seed": "seeds Python, NumPy and torch",
            "train_test_exp": "exposure compensation: learn a 3x4 colour transform per image; "
                              "test images train on their left half and are scored on their "
                              "right half (the reference's protocol)",
        }

    def _ranges(self):
        return {"sh_degree": Int(0, SH_DEGREE_MAX),
                # 1/2/4/8 divide; another value is a target width, at most the image's
                "resolution": Int(1, 1 << 16, sentinels=(-1,)),
                "llffhold": Int(1), "random_init": Int(0, POINTS_MAX), "seed": seed()}

    def extract(self, args):
        g = super().extract(args)
        g.source_path = os.path.abspath(g.source_path) if g.source_path else ""
        return g
