"""The training views' image sizes, known before the scene loads."""
import copy
from typing import List, Tuple

from scene import read_scene_info
from scene.camera_loading import _target_size


def training_view_sizes(dataset, limit: int) -> List[Tuple[int, int]]:
    """(width, height) of the first `limit` training cameras as Scene loads them (the
    --resolution rule applied to the image files' headers; test images follow the training
    ones with --train_test_exp, as in Scene), without decoding a single image: the defaults
    that depend on the image size are resolved before cfg_args is written and the scene
    loads. Raises the UserError Scene would for a missing scene or a bad --resolution."""
    plain = copy.copy(dataset)
    plain.depths = ""  # depth maps do not change the sizes; their checks wait for the Scene
    info = read_scene_info(plain)
    infos = list(info.train_cameras)
    if getattr(dataset, "train_test_exp", False):
        infos += list(info.test_cameras)
    return [_target_size(c.width, c.height, dataset.resolution, 1.0) for c in infos[:limit]]
