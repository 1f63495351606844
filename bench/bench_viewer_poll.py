"""What the network viewer costs a training iteration when no viewer is connected: the median
over 5 rounds of NetworkViewer.serve() calls with nobody on the port (what the loop calls at
the top of every iteration), next to an empty loop.

    python bench/bench_viewer_poll.py [--calls 20000]
"""
import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussian_renderer.network_gui import NetworkViewer  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    viewer = NetworkViewer("127.0.0.1", port, quiet=True)
    serve, empty = [], []
    try:
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(args.calls):
                viewer.serve(None)
            serve.append((time.perf_counter() - t) / args.calls)
            t = time.perf_counter()
            for _ in range(args.calls):
                pass
            empty.append((time.perf_counter() - t) / args.calls)
    finally:
        viewer.close()
    print(f"serve() with no viewer: median {sorted(serve)[2] * 1e6:.2f} us per iteration "
          f"(empty loop {sorted(empty)[2] * 1e6:.2f} us)")


if __name__ == "__main__":
    main()
