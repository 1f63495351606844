"""Train 3D Gaussians on a capture: python train.py -s <scene> -m <out> [--eval] [...]"""
import os
import sys
from argparse import Namespace

import torch

from arguments import (CliParser, DensificationParams, ModelParams, OptimizationParams,
                       PipelineParams, SemanticParams, check_args)
from arguments.ranges import ITERATIONS_MAX, Float, Int, iteration_list_entry
from utils.errors import user_errors_exit
from utils.io_utils import atomic_write_text, ensure_writable_dir


def build_parser():
    parser = CliParser(description="Train 3D Gaussian Splatting")
    groups = (ModelParams(parser), OptimizationParams(parser), PipelineParams(parser),
              DensificationParams(parser), SemanticParams(parser))
    parser.add_argument("--test_iterations", nargs="+", type=iteration_list_entry(),
                        default=[7_000, 30_000])
    parser.add_argument("--save_iterations", nargs="+", type=iteration_list_entry(),
                        default=[7_000, 30_000])
    parser.add_argument("--checkpoint_iterations", nargs="+", type=iteration_list_entry(),
                        default=[])
    parser.add_argument("--start_checkpoint", type=str, default=None)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--no_tensorboard", action="store_true",
                        help="do not log to TensorBoard even when it is installed")
    # The reference's network viewer and debugging flags.
    parser.add_argument("--ip", type=str, default="127.0.0.1",
                        help="address the network viewer server listens on")
    parser.add_argument("--port", type=Int(1, 65535), default=6009, help="network viewer port")
    parser.add_argument("--disable_viewer", action="store_true",
                        help="do not serve the network viewer")
    parser.add_argument("--debug_from", type=Int(0, ITERATIONS_MAX, sentinels=(-1,)), default=-1,
                        help="turn the rasterizer's debug mode on from this iteration")
    parser.add_argument("--detect_anomaly", action="store_true",
                        help="torch.autograd anomaly detection (slow)")
    add_viewer_args(parser)
    return parser, groups


def add_viewer_args(parser):
    v = parser.add_argument_group("Browser viewer (viser)")
    v.add_argument("--viewer", action="store_true",
                   help="watch the run in the browser (viewer/live.py)")
    v.add_argument("--viewer_port", type=Int(1, 65535), default=8080)
    v.add_argument("--viewer_host", default="127.0.0.1",
                   help="the only address the viewer listens on")
    v.add_argument("--viewer_refresh", type=Float(0.1, 3600.0), default=2.0,
                   help="seconds between splat updates in the browser")


def main(argv=None):
    parser, (lp, op, pp, dp, sp) = build_parser()
    with user_errors_exit("train.py"):
        args = parser.parse_args(argv)
        check_args(args)
        live = None
        if args.viewer:  # first: a taken port costs no time
            from viewer.live import LiveViewer
            live = LiveViewer(args.viewer_host, args.viewer_port, args.viewer_refresh,
                              quiet=args.quiet)
        from arguments.resolve import SIZE_SAMPLE_VIEWS, resolve_run_config
        from scene.tb_report import open_tensorboard
        from scene.trainer import Trainer, TrainConfig
        from scene.view_sizes import training_view_sizes
        # Every default resolved before cfg_args is written and the scene loads (the image
        # sizes come from the files' headers: a missing scene is refused here, at no cost);
        # nothing changes the flags afterwards.
        run = resolve_run_config(args, training_view_sizes(lp.extract(args), SIZE_SAMPLE_VIEWS))
        args = run.args
        ensure_writable_dir(args.model_path)
        if not args.quiet:
            print(f"Output folder: {args.model_path}")
        atomic_write_text(os.path.join(args.model_path, "cfg_args"), str(Namespace(**vars(args))))
        tb = None if args.no_tensorboard else open_tensorboard(args.model_path, args.quiet)
        cfg = TrainConfig(test_iterations=args.test_iterations,
                          save_iterations=args.save_iterations,
                          checkpoint_iterations=args.checkpoint_iterations,
                          start_checkpoint=args.start_checkpoint, quiet=args.quiet,
                          tidy_model_folder=True, debug_from=args.debug_from)
        from semantic.guidance import SemanticGuidance, make_proposer
        from utils.device import resolve_device
        # Before the scene loads: a bad model path costs no time. (The VLM itself loads lazily.)
        proposer = make_proposer(run.semantic, resolve_device(args.device))
        torch.autograd.set_detect_anomaly(args.detect_anomaly)
        trainer = Trainer(lp.extract(args), op.extract(args), pp.extract(args),
                          dp.extract(args), cfg, tb)
        viewer = None
        if not args.disable_viewer:  # after the scene loaded: bad input fails first
            from gaussian_renderer.network_gui import NetworkViewer, PortInUse
            try:
                viewer = NetworkViewer(args.ip, args.port, args.quiet)
            except PortInUse as e:
                # Parallel runs (batch --jobs, a second experiment) share the default port:
                # the viewer is optional, the run is not.
                print(f"train.py: warning: {e}; training without the network viewer",
                      file=sys.stderr)
        if viewer is not None:
            trainer.add_plugin(viewer)
        if proposer is not None:
            SemanticGuidance(run.semantic, proposer).attach(trainer)
        if live is not None:
            live.attach(trainer)
        try:
            seconds = trainer.train()
            if viewer is not None:
                viewer.finish(trainer)
        finally:
            if viewer is not None:
                viewer.close()
            if live is not None:
                live.close()
        if not args.quiet:
            print(f"\nTraining complete in {seconds:.1f} s: {trainer.gaussians.num_points} "
                  f"Gaussians, saved to {args.model_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
