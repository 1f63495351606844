"""Render a trained model's train/test views: python render.py -m <model> [--iteration N]

Writes <model>/<split>/ours_<N>/{renders,gt}/<index>.png as the reference codebase, and
alpha/<index>.png (accumulated opacity, 8-bit grey) from which metrics.py reports coverage.
"""
import os
import sys

import torch
from tqdm import tqdm

from arguments import (CliParser, Int, ModelParams, PipelineParams, check_args,
                       fill_defaults, get_combined_args)
from arguments.ranges import ITERATIONS_MAX
from utils.device import resolve_device, resolve_secondary_device
from utils.errors import UserError, user_errors_exit
from utils.image_utils import save_png
from utils.io_utils import guarded_write


def render_set(model_path, name, iteration, views, gaussians, pipeline, background, quiet,
               exposures=None):
    """exposures (--train_test_exp models): image name -> 3x4 exposure, applied to the
    render; renders and ground truth are then the right half of each image."""
    from gaussian_renderer import render
    from scene.exposure import apply_exposure, right_half
    base = os.path.join(model_path, name, f"ours_{iteration}")
    for sub in ("renders", "gt", "alpha"):
        with guarded_write(os.path.join(base, sub)):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
    for idx, view in enumerate(tqdm(views, desc=f"Rendering {name}", disable=quiet)):
        pkg = render(view, gaussians, pipeline, background)
        image, alpha, gt = pkg["render"], pkg["alpha"], view.original_image
        if exposures is not None:
            if view.image_name in exposures:
                image = apply_exposure(image, exposures[view.image_name].to(image.device))
            image, alpha, gt = right_half(image), right_half(alpha), right_half(gt)
        save_png(image, os.path.join(base, "renders", f"{idx:05d}.png"))
        save_png(alpha, os.path.join(base, "alpha", f"{idx:05d}.png"))
        save_png(gt, os.path.join(base, "gt", f"{idx:05d}.png"))


@torch.no_grad()
def render_sets(dataset, iteration, pipeline, skip_train, skip_test, quiet):
    from scene import Scene
    from scene.gaussian_model import GaussianModel
    device = resolve_device(dataset.device)
    dataset.data_device = str(resolve_secondary_device(dataset.data_device, device,
                                                       "--data_device"))
    gaussians = GaussianModel(dataset.sh_degree, device=device)
    dataset.depths = ""  # depth maps (-d) only supervise training; rendering does not read them
    scene = Scene(dataset, gaussians, load_iteration=iteration, quiet=quiet)
    bg = [1.0, 1.0, 1.0] if dataset.white_background else [0.0, 0.0, 0.0]
    background = torch.tensor(bg, dtype=torch.float32, device=device)
    exposures = None
    if getattr(dataset, "train_test_exp", False):
        from scene.exposure import PROTOCOL_NOTE, load_exposures
        exposures = load_exposures(dataset.model_path, device)
        if not quiet:
            print(f"{PROTOCOL_NOTE}: renders/ and gt/ hold right halves, with exposure.json "
                  "applied")
    if not skip_train:
        render_set(dataset.model_path, "train", scene.loaded_iter, scene.getTrainCameras(),
                   gaussians, pipeline, background, quiet, exposures)
    if not skip_test:
        if not scene.getTestCameras() and not quiet:
            print("No test views (train with --eval for a test split)")
        render_set(dataset.model_path, "test", scene.loaded_iter, scene.getTestCameras(),
                   gaussians, pipeline, background, quiet, exposures)


def build_parser():
    parser = CliParser(description="Render a trained model's views")
    model = ModelParams(parser, sentinel=True)
    pipeline = PipelineParams(parser)
    parser.add_argument("--iteration", default=-1, type=Int(0, ITERATIONS_MAX, sentinels=(-1,)),
                        help="saved iteration to render (-1 = the latest)")
    parser.add_argument("--skip_train", action="store_true")
    parser.add_argument("--skip_test", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser, model, pipeline


def main(argv):
    parser, model, pipeline = build_parser()
    with user_errors_exit("render.py"):
        args = get_combined_args(parser, argv)
        if not getattr(args, "model_path", None):
            raise UserError("-m/--model_path is required")
        if not os.path.isfile(os.path.join(args.model_path, "cfg_args")):
            raise UserError(f"{args.model_path} has no cfg_args: not a trained model folder")
        fill_defaults(args, ModelParams)
        check_args(args)
        if not args.quiet:
            print(f"Rendering {args.model_path}")
        render_sets(model.extract(args), args.iteration, pipeline.extract(args),
                    args.skip_train, args.skip_test, args.quiet)


if __name__ == "__main__":
    main(sys.argv[1:])
