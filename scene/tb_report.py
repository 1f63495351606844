"""TensorBoard logging under the reference codebase's tag names.

Every iteration: `train_loss_patches/l1_loss`, `train_loss_patches/total_loss`, `iter_time`
(milliseconds, as the reference's CUDA-event timer), `total_points`, and each named loss term
as `loss_terms/<name>` (scene/plugins.py). At test iterations:
`{test,train}/loss_viewpoint - l1_loss` and `- psnr`, renders of the first five views of each
set as `{set}_view_{image_name}/render` (their ground truth once, at the first test
iteration, as `.../ground_truth`) and `scene/opacity_histogram`.
"""
import os
import warnings


def open_tensorboard(model_path: str, quiet: bool):
    """A SummaryWriter on <model>, or None (with one line) when TensorBoard is missing."""
    try:
        with warnings.catch_warnings():  # its imports warn about deprecated protobuf APIs
            warnings.simplefilter("ignore")
            from torch.utils.tensorboard import SummaryWriter
    except Exception:
        if not quiet:
            print("Tensorboard not available: not logging progress")
        return None
    return SummaryWriter(os.path.abspath(model_path))


def log_iteration(tb, iteration: int, l1: float, loss: float, iter_seconds: float,
                  num_points: int):
    if tb is None:
        return
    tb.add_scalar("train_loss_patches/l1_loss", l1, iteration)
    tb.add_scalar("train_loss_patches/total_loss", loss, iteration)
    tb.add_scalar("iter_time", iter_seconds * 1000.0, iteration)
    tb.add_scalar("total_points", num_points, iteration)


def log_terms(tb, iteration: int, terms: dict):
    """Every named loss term of the iteration, weighted as summed into the loss."""
    if tb is None:
        return
    for name, value in terms.items():
        tb.add_scalar(f"loss_terms/{name}", value, iteration)


def log_view_images(tb, split: str, index: int, cam, image, gt, iteration: int,
                    first_test: bool):
    """Render (and, at the first test iteration, ground truth) of one of the first 5 views."""
    if tb is None or index >= 5:
        return
    tag = f"{split}_view_{cam.image_name}"
    tb.add_images(f"{tag}/render", image[None].clamp(0, 1).cpu(), global_step=iteration)
    if first_test:
        tb.add_images(f"{tag}/ground_truth", gt[None].clamp(0, 1).cpu(), global_step=iteration)


def log_evaluation(tb, split: str, l1: float, psnr: float, iteration: int):
    if tb is None:
        return
    tb.add_scalar(f"{split}/loss_viewpoint - l1_loss", l1, iteration)
    tb.add_scalar(f"{split}/loss_viewpoint - psnr", psnr, iteration)


def log_scene(tb, gaussians, iteration: int):
    if tb is None:
        return
    tb.add_histogram("scene/opacity_histogram", gaussians.get_opacity.detach().cpu(), iteration)
    tb.add_scalar("total_points", gaussians.num_points, iteration)
