"""train.py --viewer: watch a run in the browser while it trains.

One call per iteration into LiveViewer (a Trainer hook) that costs next to nothing: it notes
the iteration and, every `refresh_s` seconds and only while a browser is connected and the
last snapshot has been sent, copies the Gaussian parameters (a memcpy) into a one-slot
mailbox. A sender thread turns the copy into splats and pushes them and the numbers (loss,
Gaussians, phase, iteration, s/it) to the browser. Training never waits on the browser;
the only wait is the user's own Pause, and that ends when the last tab closes.
"""
import threading
import time
from typing import Optional

import numpy as np

from scene.training_log import COLUMNS
from utils.image_utils import to_uint8_hwc
from viewer.cameras import add_frustums, up_direction, view_spec
from viewer.server import open_server, set_background
from viewer.splats import DEFAULT_MAX_SPLATS, scene_bounds, splat_arrays

LOSS_COLUMN = COLUMNS.index("loss")
PARAMS = ("_xyz", "_features_dc", "_opacity", "_scaling", "_rotation")


class LiveViewer:
    def __init__(self, host: str = "127.0.0.1", port: int = 8080, refresh_s: float = 2.0,
                 max_splats: int = DEFAULT_MAX_SPLATS, quiet: bool = False):
        self.server = open_server(host, port, "--viewer_port", "--viewer_host", quiet)
        self.refresh_s, self.max_splats = float(refresh_s), max_splats
        self.iteration, self.loss, self.num_points, self.phase = 0, None, 0, ""
        self.pause_requested = False
        self.paused_at: Optional[int] = None
        self.snapshots_sent = 0
        self._slot = None                  # (iteration, tensors) waiting for the sender
        self._busy = False                 # a snapshot is being converted / sent
        self._next_snapshot = 0.0
        self._clients = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._splats = None
        self._cams = []
        self._times = []                   # (monotonic time, iteration) for s/it
        gui = self.server.gui
        with gui.add_folder("Training", order=0):
            self.stats = gui.add_markdown("waiting for the first iteration ...")
            self.pause = gui.add_button("Pause training")
        self.pause.on_click(lambda _: self._toggle_pause())
        self.server.on_client_connect(lambda _: self._count_clients())
        self.server.on_client_disconnect(lambda _: self._count_clients())
        self._thread = threading.Thread(target=self._send_loop, name="live-viewer", daemon=True)

    # -- wiring -----------------------------------------------------------------------
    def attach(self, trainer):
        """Hook into the training loop (called after every optimizer step)."""
        self._cams = list(trainer.scene.getTrainCameras())
        self._background = trainer.background.detach().cpu().numpy()
        trainer.hooks.append(self)
        self._thread.start()
        return self

    def close(self):
        self._stop.set()
        self._wake.set()
        self.pause_requested = False
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.server.stop()

    # -- the per-iteration hook: must stay cheap -----------------------------------------
    def __call__(self, trainer, iteration: int):
        self.iteration = iteration
        rows = trainer.log.rows
        if rows:
            self.loss = rows[-1][LOSS_COLUMN]
        self.num_points = trainer.gaussians.num_points
        self.phase = trainer.phase_of(iteration)
        if self.pause_requested:
            self._hold(iteration)
        now = time.monotonic()
        if self._clients and not self._busy and now >= self._next_snapshot:
            g = trainer.gaussians
            self._slot = (iteration, [getattr(g, n).detach().clone() for n in PARAMS])
            self._busy = True
            self._next_snapshot = now + self.refresh_s
            self._wake.set()

    def _hold(self, iteration: int):
        """Pause: wait until Resume, or until no browser is left to press it."""
        self.paused_at = iteration
        self._wake.set()
        while self.pause_requested and self._clients and not self._stop.is_set():
            time.sleep(0.1)
        self.pause_requested = False
        self.paused_at = None
        self.pause.label = "Pause training"

    def _toggle_pause(self):
        self.pause_requested = not self.pause_requested
        self.pause.label = "Resume training" if self.pause_requested else "Pause training"
        self._wake.set()

    def _count_clients(self):
        self._clients = len(self.server.get_clients())
        if not self._clients:
            self.pause_requested = False   # a closed tab never leaves training paused
        self._wake.set()

    # -- the sender thread ---------------------------------------------------------------
    def _send_loop(self):
        self._add_cameras()
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            slot, self._slot = self._slot, None
            if slot is not None:
                try:
                    self._send(*slot)
                finally:
                    self._busy = False
            self._show_stats()

    def _send(self, iteration: int, tensors):
        arrays = splat_arrays(*tensors, max_splats=self.max_splats)
        if self._splats is None:
            self._splats = self.server.scene.add_gaussian_splats(
                "/splats", centers=arrays.centers, covariances=arrays.covariances,
                rgbs=arrays.rgbs, opacities=arrays.opacities)
        else:
            self._splats.set_gaussians(arrays.centers, arrays.covariances, arrays.rgbs,
                                       arrays.opacities)
        self.snapshots_sent += 1
        self.shown = (iteration, arrays.note())

    def _add_cameras(self):
        if not self._cams:
            return
        specs = [view_spec(c, "train", _thumb(c)) for c in self._cams]
        pos = np.stack([s.position for s in specs])
        centre, radius = scene_bounds(pos)
        self.server.scene.set_up_direction(tuple(float(x) for x in up_direction(specs)))
        self.server.initial_camera.position = tuple(float(x) for x in
                                                    specs[0].position * 1.5 - centre * 0.5)
        self.server.initial_camera.look_at = tuple(float(x) for x in centre)
        add_frustums(self.server, specs, radius * 0.05)
        set_background(self.server, self._background)

    def _show_stats(self):
        now = time.monotonic()
        self._times = [(t, i) for t, i in self._times if now - t < 10.0] + [(now, self.iteration)]
        (t0, i0), (t1, i1) = self._times[0], self._times[-1]
        rate = f"{(t1 - t0) / (i1 - i0):.3f} s/it" if i1 > i0 else "-"
        state = (f"**paused** at iteration {self.paused_at}" if self.paused_at is not None
                 else "**pausing** ..." if self.pause_requested else "training")
        shown = getattr(self, "shown", None)
        self.stats.content = (
            f"{state}: iteration **{self.iteration}**, loss {self.loss or '-'}, "
            f"**{self.num_points:,}** Gaussians, phase {self.phase or '-'}, {rate}  \n"
            + (f"splats from iteration {shown[0]} ({shown[1]}), every {self.refresh_s:g} s"
               if shown else "splats: waiting for a snapshot"))


def _thumb(cam, width: int = 160) -> np.ndarray:
    img = cam.original_image
    step = max(1, int(np.ceil(img.shape[2] / width)))
    return to_uint8_hwc(img[:, ::step, ::step])
