"""Look at a trained model, a guided run or an edit in the browser:

    python view.py -m <model or edit output> [--iteration N] [--port 8080] [--host 127.0.0.1]

A train.py output folder shows its splats and cameras (click one: our render beside the
photo, with PSNR); with regions/ (semantic guidance) also a slider over the analyses; an
edit.py output folder shows a slider over its rounds. See viewer/ and the README.
"""
import sys
import time
from arguments.ranges import ITERATIONS_MAX, POINTS_MAX, CliParser, Int
from utils.errors import user_errors_exit


def build_parser():
    p = CliParser(prog="view.py", description="Browser viewer (viser) for trained models, guided runs "
                                   "and edits")
    p.add_argument("-m", "--model_path", required=True,
                   help="train.py output folder, or edit.py output folder")
    p.add_argument("--iteration", type=Int(0, ITERATIONS_MAX, sentinels=(-1,)), default=-1,
                   help="saved iteration to show (default: the latest)")
    p.add_argument("--port", type=Int(1, 65535), default=8080)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (only this one; 0.0.0.0 = every interface)")
    p.add_argument("--max_splats", type=Int(0, POINTS_MAX), default=None,
                   help="send at most this many Gaussians to the browser, the most opaque and "
                        "largest (default 500000; 0 = all)")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv=None):
    with user_errors_exit("view.py"):
        args = build_parser().parse_args(argv)
        from viewer.app import open_viewer
        viewer = open_viewer(args.model_path, args.iteration, args.host, args.port,
                             args.max_splats, args.quiet)
        try:
            while True:
                time.sleep(3600)
        finally:
            viewer.server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
