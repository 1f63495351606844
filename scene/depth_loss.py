"""Depth regularisation (`-d/--depths`), the reference's loss: the L1 distance between the
rendered inverse depth and the view's (scaled) inverse-depth map, weighted by
`--depth_l1_weight_init` decaying exponentially to `--depth_l1_weight_final` over the run.
Views whose map is unreliable (see scene/depth_maps.py) or missing add nothing."""
from utils.general_utils import get_expon_lr_func


class DepthL1Term:
    """A Trainer.loss_terms entry: term(trainer, render_pkg, camera, iteration) -> loss or None.
    `last` holds the unweighted L1 of the latest supervised view (for logging)."""

    def __init__(self, weight_init: float, weight_final: float, iterations: int):
        self.weight = get_expon_lr_func(weight_init, weight_final, max_steps=iterations)
        self.last = None

    def __call__(self, trainer, pkg, cam, iteration):
        w = self.weight(iteration)
        target = getattr(cam, "invdepthmap", None)
        if w <= 0 or target is None or not cam.depth_reliable:
            return None
        invdepth = pkg["invdepth"]
        l1 = (invdepth - target.to(invdepth.device)).abs().mean()
        self.last = float(l1.detach())
        return w * l1


def attach_depth_loss(trainer) -> bool:
    """Add the depth term when any training view has a depth map; returns whether it did."""
    cams = trainer.scene.getTrainCameras()
    if not any(getattr(c, "invdepthmap", None) is not None for c in cams):
        return False
    opt = trainer.opt
    trainer.loss_terms.append(DepthL1Term(opt.depth_l1_weight_init, opt.depth_l1_weight_final,
                                          opt.iterations))
    return True
