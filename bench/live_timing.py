"""Per-iteration timing of train.py runs for `bench_viewer.py live` and `control`.

A hook stamps every iteration with time.monotonic(); a browser process (Playwright driving
Debian's headless Chromium) opens and closes a page in alternating windows and logs when a
page was watching, on the same clock, so each iteration is classed as "browser watching" or
"no browser" after the fact, whichever server the browser watches. Training is pinned to
core 0 with one torch thread (OMP_NUM_THREADS=1 in every arm), the browser (and any other
server process) to core 1.
"""
import os
import shutil
import subprocess
import sys
import time
from typing import Callable, List, Optional, Tuple

import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
SETTLE_S = 3.0  # after a page opens: the first scene download and shader set-up are not "watching"

BROWSE = """
import sys, time
from playwright.sync_api import sync_playwright
url, windows, secs, settle, chromium, log = sys.argv[1:7]
windows, secs, settle = int(windows), float(secs), float(settle)
with sync_playwright() as p, open(log, "w") as out:
    b = p.chromium.launch(executable_path=chromium, args=%r)
    for w in range(windows):
        time.sleep(secs)                      # no browser
        page = b.new_page(viewport={"width": 900, "height": 600})
        page.goto(url)
        time.sleep(settle)
        out.write(f"on {time.monotonic()}\\n"); out.flush()
        time.sleep(secs)                      # browser connected, watching
        out.write(f"off {time.monotonic()}\\n"); out.flush()
        page.close()
    b.close()
""" % (BROWSER_ARGS,)


def start_browser(url: str, windows: int, window_s: float, log: str) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", BROWSE, url,
                             str(windows), str(window_s), str(SETTLE_S), CHROMIUM, log])


def pin_training():
    import torch
    os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)


def stamped_train(argv: List[str], stop: Optional[Callable[[], bool]] = None,
                  on_start: Optional[Callable[[], None]] = None) -> List[Tuple[int, float]]:
    """train.main(argv) with every iteration stamped (iteration, monotonic time); the run
    ends early (train.py's interrupt path) once stop() is true."""
    import train
    from scene import trainer as trainer_mod
    from scene.plugins import TrainingPlugin
    stamps: List[Tuple[int, float]] = []
    orig = trainer_mod.Trainer.train

    class Stamp(TrainingPlugin):
        def after_step(self, step):
            it = step.iteration
            stamps.append((it, time.monotonic()))
            if stop is not None and it % 20 == 0 and stop():
                raise KeyboardInterrupt  # train.py exits 130: the measurement is over

    def train_stamped(self, *a, **k):
        self.add_plugin(Stamp())
        if on_start is not None:
            on_start()
        return orig(self, *a, **k)

    trainer_mod.Trainer.train = train_stamped
    try:
        train.main(argv)
    except SystemExit:
        pass
    finally:
        trainer_mod.Trainer.train = orig
    return stamps


def read_windows(log: str) -> List[Tuple[float, float]]:
    """(on, off) monotonic times of the windows the browser watched."""
    ons, out = None, []
    with open(log) as f:
        for line in f:
            kind, t = line.split()
            if kind == "on":
                ons = float(t)
            elif ons is not None:
                out.append((ons, float(t)))
                ons = None
    return out


def split_by_windows(stamps, windows, min_iter: int):
    """Per-iteration seconds inside a watched window and well outside any (1 s margin)."""
    its = np.array([s[0] for s in stamps])
    t = np.array([s[1] for s in stamps])
    dt, t0, t1, keep = np.diff(t), t[:-1], t[1:], its[1:] > min_iter
    inside = np.zeros(len(dt), bool)
    near = np.zeros(len(dt), bool)
    for on, off in windows:
        inside |= (t0 >= on) & (t1 <= off)
        near |= (t1 >= on - SETTLE_S - 1.0) & (t0 <= off + 1.0)
    return dt[keep & inside], dt[keep & ~near]


def describe(name: str, a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> str:
    if not len(a) or not len(b):
        return f"{name}: not enough iterations ({len(a)} / {len(b)})"
    ma, mb = np.median(a) * 1e3, np.median(b) * 1e3
    return (f"{name}: median {ma:.2f} ms/it {a_name} ({len(a)} its), {mb:.2f} ms/it {b_name} "
            f"({len(b)} its): {(mb / ma - 1) * 100:+.1f} %")
