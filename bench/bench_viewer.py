"""Viewer benchmarks (results in bench/RESULTS.md).

  open: a synthetic N-Gaussian model (default 1M, SH degree 3) in a model folder of the demo
        scene: seconds until view.py's server is ready, and until a headless Chromium shows
        the model (pixels differ from the background where it projects).
  live: one training run with --viewer; a headless Chromium connects and disconnects in
        alternating windows; median s/it with and without a connected browser. Training is
        pinned to core 0 (one torch thread), the browser to core 1, so that what is measured
        is the viewer's cost inside the training process, not the software-WebGL browser
        competing for the same core (in real use the browser runs on the user's GPU).

python bench/bench_viewer.py open [--n 1000000]
python bench/bench_viewer.py live [--windows 3] [--window_s 20]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]


def demo_scene(folder: str, views=16, w=160, h=120) -> str:
    from scripts.make_demo_scene import make_demo_scene
    return make_demo_scene(os.path.join(folder, "demo"), views, w, h)


def synthetic_model(folder: str, scene: str, n: int) -> str:
    """A model folder (cfg_args + iteration_1 PLY) with n random Gaussians around the scene."""
    from scene.ply_io import write_gaussian_ply
    m = os.path.join(folder, "m")
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(n, 3)).astype(np.float32) * 1.0
    write_gaussian_ply(os.path.join(m, "point_cloud", "iteration_1", "point_cloud.ply"),
                       xyz=xyz, features_dc=rng.normal(size=(n, 1, 3)).astype(np.float32),
                       features_rest=np.zeros((n, 15, 3), np.float32),
                       opacity=rng.normal(size=(n, 1)).astype(np.float32),
                       scaling=np.full((n, 3), -4.5, np.float32) + rng.normal(size=(n, 3))
                       .astype(np.float32) * 0.3,
                       rotation=rng.normal(size=(n, 4)).astype(np.float32))
    with open(os.path.join(m, "cfg_args"), "w") as f:
        f.write(f"Namespace(source_path={scene!r}, model_path={m!r}, sh_degree=3, "
                "resolution=-1, white_background=False, eval=False, images='images')")
    return m


def bench_open(args):
    from playwright.sync_api import sync_playwright
    from viewer.app import open_viewer
    tmp = tempfile.mkdtemp(prefix="bench_viewer_")
    try:
        m = synthetic_model(tmp, demo_scene(tmp), args.n)
        size = os.path.getsize(os.path.join(m, "point_cloud", "iteration_1", "point_cloud.ply"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 900, "height": 600})
            t0 = time.perf_counter()
            v = open_viewer(m, port=args.port, max_splats=args.max_splats, quiet=True)
            t_ready = time.perf_counter() - t0
            print(f"server ready in {t_ready:.2f} s ({v.model.arrays.note()})", flush=True)
            page.goto(f"http://127.0.0.1:{args.port}")
            while True:  # until the middle of the canvas is no longer background
                img = np.asarray(_png(page.screenshot(timeout=180_000)))[150:450, 100:400].astype(float)
                if np.abs(img - img.reshape(-1, 3).min(0)).mean() > 5 and \
                        img.std() > 5:
                    break
                if time.perf_counter() - t0 > 180:
                    raise SystemExit("the model never showed within 180 s")
                time.sleep(0.2)
            t_shown = time.perf_counter() - t0
            v.server.stop()
            browser.close()
        print(f"open: {args.n:,} Gaussians ({size / 2**20:.0f} MiB PLY), "
              f"{v.model.arrays.note()}: server ready {t_ready:.2f} s, model on screen in "
              f"Chromium {t_shown:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


BROWSE = """
import sys, time
from playwright.sync_api import sync_playwright
url, windows, secs, chromium = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with sync_playwright() as p:
    b = p.chromium.launch(executable_path=chromium, args=%r)
    for w in range(windows):
        time.sleep(secs)                      # no browser
        page = b.new_page(viewport={"width": 900, "height": 600})
        page.goto(url)
        time.sleep(secs)                      # browser connected, watching
        page.close()
    b.close()
""" % (BROWSER_ARGS,)


def bench_live(args):
    import torch
    import train
    from viewer import live as live_mod
    os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="bench_live_")
    stamps = []   # (iteration, perf_counter, clients)

    attach = live_mod.LiveViewer.attach

    def timed_attach(self, trainer):
        attach(self, trainer)
        def stamp(tr, it):
            stamps.append((it, time.perf_counter(), self._clients))
            if browse.poll() is not None:
                raise KeyboardInterrupt  # train.py exits 130: the measurement is over

        trainer.hooks.append(stamp)
        browse = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, "-c", BROWSE,
             f"http://127.0.0.1:{args.port}", str(args.windows), str(args.window_s), CHROMIUM])
        return self

    live_mod.LiveViewer.attach = timed_attach
    try:
        scene = demo_scene(tmp)
        try:
            train.main(["-s", scene, "-m", os.path.join(tmp, "m"), "--iterations", "1000000",
                        "--densify_until_iter", "300", "--test_iterations", "0",
                        "--save_iterations", "1000000", "--viewer",
                        "--viewer_port", str(args.port), "--viewer_refresh", str(args.refresh),
                        "--quiet", "--no_tensorboard"])
        except SystemExit:  # the hook below ends the run once the browser windows are over
            pass
    finally:
        live_mod.LiveViewer.attach = attach
        shutil.rmtree(tmp, ignore_errors=True)
    its = np.array([s[0] for s in stamps])
    t = np.array([s[1] for s in stamps])
    clients = np.array([s[2] for s in stamps])
    dt = np.diff(t)
    on = clients[1:] > 0
    stable = its[1:] > 400   # after densification (until 300) the count holds still
    for name, keep in (("all iterations", np.ones_like(on)), ("iterations > 400", stable)):
        a, b = dt[keep & ~on], dt[keep & on]
        if len(a) and len(b):
            print(f"live ({name}), refresh {args.refresh:g} s: median {np.median(a) * 1e3:.2f} "
                  f"ms/it without a browser ({len(a)} its), {np.median(b) * 1e3:.2f} ms/it with "
                  f"one connected ({len(b)} its): {(np.median(b) / np.median(a) - 1) * 100:+.1f} %")


def _png(data: bytes):
    from io import BytesIO
    from PIL import Image
    return Image.open(BytesIO(data)).convert("RGB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["open", "live"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--max_splats", type=int, default=None)
    ap.add_argument("--port", type=int, default=8097)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--window_s", type=float, default=20.0)
    ap.add_argument("--refresh", type=float, default=2.0)
    args = ap.parse_args()
    if CHROMIUM is None:
        raise SystemExit("needs chromium (apt-get install chromium)")
    bench_open(args) if args.what == "open" else bench_live(args)


if __name__ == "__main__":
    main()
