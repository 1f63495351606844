"""Depth regularisation (`-d/--depths`), the reference's loss: the L1 distance between the
rendered inverse depth and the view's (scaled) inverse-depth map, weighted by
`--depth_l1_weight_init` decaying exponentially to `--depth_l1_weight_final` over the run.
Views whose map is unreliable (see scene/depth_maps.py) or missing add nothing."""
from scene.plugins import TrainingPlugin
from utils.general_utils import get_expon_lr_func


class DepthL1Term(TrainingPlugin):
    """The `depth` loss term: weight(it) * mean |rendered inverse depth - target map| (logged
    as training_log.csv's term_depth)."""
    TERMS = ("depth",)

    def __init__(self, weight_init: float, weight_final: float, iterations: int):
        self.weight = get_expon_lr_func(weight_init, weight_final, max_steps=iterations)

    def loss_terms(self, step):
        w = self.weight(step.iteration)
        cam = step.camera
        target = getattr(cam, "invdepthmap", None)
        if w <= 0 or target is None or not cam.depth_reliable:
            return {}
        invdepth = step.render_pkg["invdepth"]
        return {"depth": w * (invdepth - target.to(invdepth.device)).abs().mean()}


def depth_plugin(cameras, opt):
    """The depth term when any training view has a depth map, else None."""
    if not any(getattr(c, "invdepthmap", None) is not None for c in cameras):
        return None
    return DepthL1Term(opt.depth_l1_weight_init, opt.depth_l1_weight_final, opt.iterations)
