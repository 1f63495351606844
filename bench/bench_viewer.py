"""Viewer benchmarks (results in bench/RESULTS.md).

  open: a synthetic N-Gaussian model (default 1M, SH degree 3) in a model folder of the demo
        scene: seconds until view.py's server is ready, and until a headless Chromium shows
        the model (pixels differ from the background where it projects).
  live: one training run with --viewer; a headless Chromium opens and closes a page on its
        viewer in alternating windows; median s/it with and without a browser watching.
  control: the two controls for `live`: (1) --viewer with no browser against no --viewer,
        in alternating runs (what the server costs by being there); (2) no --viewer while
        the browser watches a different viser server (view.py on a static model, its own
        process) in alternating windows (what the browser's own load costs training).
  Training is pinned to core 0 with one torch thread (run with OMP_NUM_THREADS=1 so both
  arms match), the browser and the static server to core 1; the live viewer's server
  process inherits core 0 from training (the worst case: it shares training's core).
  See bench/live_timing.py.
  copy: what the training process itself pays: one on_iteration call with no browser, and
        one snapshot copy of an N-Gaussian model into the shared-memory buffer.

python bench/bench_viewer.py open [--n 1000000]
python bench/bench_viewer.py live [--windows 3] [--window_s 20] [--refresh 2]
python bench/bench_viewer.py control [--pairs 3] [--iterations 900] [--windows 3] [--window_s 20]
python bench/bench_viewer.py copy [--n 1000000]
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
from live_timing import (BROWSER_ARGS, CHROMIUM, describe, pin_training,  # noqa: E402
                         read_windows, split_by_windows, stamped_train, start_browser)


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


def demo_argv(tmp: str, scene: str, iterations: int, extra=()):
    return ["-s", scene, "-m", os.path.join(tmp, "m"), "--iterations", str(iterations),
            "--densify_until_iter", "300", "--test_iterations", "0", "--save_iterations",
            str(iterations), "--quiet", "--no_tensorboard", *extra]


def bench_live(args):
    """One run with --viewer; the browser watches it in alternating windows."""
    pin_training()
    tmp = tempfile.mkdtemp(prefix="bench_live_")
    log = os.path.join(tmp, "windows.log")
    browse = []
    try:
        scene = demo_scene(tmp)
        start = lambda: browse.append(start_browser(f"http://127.0.0.1:{args.port}",
                                                     args.windows, args.window_s, log))
        stamps = stamped_train(demo_argv(tmp, scene, 1_000_000, [
            "--viewer", "--viewer_port", str(args.port), "--viewer_refresh", str(args.refresh)]),
            stop=lambda: browse[0].poll() is not None, on_start=start)
        idle, watched = split_by_windows(stamps, read_windows(log), 400)
        print(describe(f"live, refresh {args.refresh:g} s, iterations > 400", idle, watched,
                       "without a browser", "with one watching"))
    finally:
        for b in browse:
            b.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_control(args):
    """(1) --viewer with no client against no --viewer, in alternating runs; (2) training
    without --viewer while the browser watches a different viser server (view.py on a static
    model in its own process, on the browser's core)."""
    pin_training()
    tmp = tempfile.mkdtemp(prefix="bench_control_")
    server = browse = None
    try:
        scene = demo_scene(tmp)
        arms = {"off": [], "on": []}
        for pair in range(args.pairs):
            for arm in ("off", "on") if pair % 2 == 0 else ("on", "off"):
                extra = ["--viewer", "--viewer_port", str(args.port)] if arm == "on" else []
                stamps = stamped_train(demo_argv(tmp, scene, args.iterations, extra))
                dt = np.diff([s[1] for s in stamps])
                arms[arm].append(dt[np.array([s[0] for s in stamps])[1:] > 400])
        print(describe(f"idle server ({args.pairs} x 2 alternating runs of {args.iterations} "
                       "its, iterations > 400)", np.concatenate(arms["off"]),
                       np.concatenate(arms["on"]), "without --viewer", "--viewer, no client"))

        m = synthetic_model(tmp, scene, args.static_n)
        other = args.port + 1
        server = subprocess.Popen(["taskset", "-c", "1", sys.executable,
                                   os.path.join(REPO, "view.py"), "-m", m, "--port", str(other),
                                   "--quiet"])
        if not _wait_listening(other, 120.0):
            raise SystemExit("the static viser server never listened")
        log = os.path.join(tmp, "windows.log")
        started = []

        def start():
            started.append(start_browser(f"http://127.0.0.1:{other}", args.windows,
                                         args.window_s, log))
        stamps = stamped_train(demo_argv(tmp, scene, 1_000_000), on_start=start,
                               stop=lambda: started[0].poll() is not None)
        browse = started[0]
        idle, watched = split_by_windows(stamps, read_windows(log), 400)
        print(describe(f"no --viewer, browser watching another server ({args.static_n:,} "
                       "static splats), iterations > 400", idle, watched, "without a browser",
                       "with one watching"))
    finally:
        for p in (server, browse):
            if p is not None:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_copy(args):
    """What the training process pays: LiveViewer.on_iteration with no browser, and one
    snapshot copy of an N-Gaussian model into shared memory (medians of 5 and of 20)."""
    import multiprocessing as mp
    import torch
    from viewer import live_channel as ch
    pin_training()
    n = args.n
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, 3, generator=g), torch.randn(n, 1, 3, generator=g),
             torch.randn(n, 1, generator=g), torch.randn(n, 3, generator=g),
             torch.randn(n, 4, generator=g)]
    ctl, _ = ch.new_control(mp.get_context("spawn"))
    w = ch.SnapshotWriter(ctl)
    copies = []
    try:
        for i in range(6):
            t = time.perf_counter()
            w.write(i, *parts)
            copies.append(time.perf_counter() - t)
            ctl[ch.ACK] = ctl[ch.SEQ]
    finally:
        w.close()
    from viewer.live import LiveViewer

    class Trainer:  # what on_iteration reads
        class log:
            rows = [[1, "0.1"] + [""] * 6]
        gaussians = type("G", (), {"num_points": n})()
        phase_of = staticmethod(lambda it: "phase1")

    lv = LiveViewer("127.0.0.1", args.port, quiet=True)
    calls = []
    try:
        lv.wait_started()
        for _ in range(20):
            t = time.perf_counter()
            for it in range(1000):
                lv.on_iteration(Trainer, it)
            calls.append((time.perf_counter() - t) / 1000)
    finally:
        lv.close()
    print(f"copy: snapshot of {n:,} Gaussians into shared memory {np.median(copies[1:]) * 1e3:.2f} "
          f"ms (first, with the segment's creation, {copies[0] * 1e3:.2f} ms); on_iteration "
          f"with no browser {np.median(calls) * 1e6:.2f} us")


def _wait_listening(port: int, timeout: float) -> bool:
    """True once the server answers an HTTP request (a bare connect upsets its websocket)."""
    import urllib.request
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return True
        except OSError:
            time.sleep(0.5)
    return False


def _png(data: bytes):
    from io import BytesIO
    from PIL import Image
    return Image.open(BytesIO(data)).convert("RGB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["open", "live", "control", "copy"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--max_splats", type=int, default=None)
    ap.add_argument("--port", type=int, default=8097)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--window_s", type=float, default=20.0)
    ap.add_argument("--refresh", type=float, default=2.0)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=900)
    ap.add_argument("--static_n", type=int, default=15000)
    args = ap.parse_args()
    if CHROMIUM is None:
        raise SystemExit("needs chromium (apt-get install chromium)")
    {"open": bench_open, "live": bench_live, "control": bench_control,
     "copy": bench_copy}[args.what](args)


if __name__ == "__main__":
    main()
