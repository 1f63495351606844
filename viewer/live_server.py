"""The live viewer's server process (started by viewer/live.py): viser, its websocket
threads, the splat conversion and the browser's panel all run here, so none of them shares
the training process's interpreter (GIL) or its threads.

It reads the trainer's numbers and snapshots from the shared Control block (see
viewer/live_channel.py), tells the trainer how many browsers are connected and whether Pause
was pressed, and exits when the trainer says stop or is gone.
"""
import contextlib
import io
import os
import time

import numpy as np

from viewer import live_channel as ch

POLL_S = 0.05
STATS_S = 0.5


def serve(host, port, refresh_s, max_splats, ctl, phase, prefix, setup, result):
    """Process entry point: sends ("ready", None) or ("error", message) on `result`; the
    cameras and background arrive later on `setup` (pipe ends)."""
    parent = os.getppid()
    try:
        os.nice(5)  # the browser can wait; the training run should not
    except OSError:
        pass
    import torch
    torch.set_num_threads(1)
    from utils.errors import UserError
    from viewer.server import open_server
    try:
        server = open_server(host, port, "--viewer_port", "--viewer_host", quiet=True)
    except UserError as e:
        result.send(("error", str(e)))
        return
    except Exception as e:  # anything else: one line for the trainer, not a traceback here
        result.send(("error", f"--viewer: the viewer server failed to start ({e})"))
        return
    try:
        LiveServer(server, refresh_s, max_splats, ctl, phase, prefix).run(
            setup, result, lambda: os.getppid() != parent)
    finally:
        with contextlib.redirect_stdout(io.StringIO()):  # viser's "Server stopped"
            server.stop()


class LiveServer:
    def __init__(self, server, refresh_s, max_splats, ctl, phase, prefix):
        self.server, self.refresh_s, self.max_splats = server, refresh_s, max_splats
        self.ctl, self.phase = ctl, phase
        self.reader = ch.SnapshotReader(ctl, prefix)
        self.splats = None
        self.shown = None
        self.times = []           # (monotonic time, iteration) for s/it
        gui = server.gui
        with gui.add_folder("Training", order=0):
            self.stats = gui.add_markdown("waiting for the first iteration ...")
            self.pause = gui.add_button("Pause training")
        self.pause.on_click(lambda _: self._toggle_pause())
        server.on_client_connect(lambda _: self._count_clients())
        server.on_client_disconnect(lambda _: self._count_clients())

    def run(self, setup, result, orphaned):
        result.send(("ready", None))
        next_stats = 0.0
        setup_done = False
        while not self.ctl[ch.STOP] and not orphaned():
            if not setup_done:
                try:
                    if setup.poll():
                        self._add_cameras(*setup.recv())
                        setup_done = True
                except (EOFError, OSError):  # the trainer closed before attaching
                    setup_done = True
            snap = self.reader.take()
            if snap is not None:
                self._show(*snap)
            now = time.monotonic()
            if now >= next_stats:
                self._show_stats(now)
                next_stats = now + STATS_S
            time.sleep(POLL_S)
        self.reader.close()

    def _toggle_pause(self):
        self.ctl[ch.PAUSE] = 0.0 if self.ctl[ch.PAUSE] else 1.0
        self._show_stats(time.monotonic())

    def _count_clients(self):
        n = len(self.server.get_clients())
        if not n:
            self.ctl[ch.PAUSE] = 0.0   # a closed tab never leaves training paused
        self.ctl[ch.CLIENTS] = n

    def _show(self, iteration: int, data: np.ndarray):
        from viewer.splats import splat_arrays
        arrays = splat_arrays(*ch.split_columns(data), max_splats=self.max_splats)
        if self.splats is None:
            self.splats = self.server.scene.add_gaussian_splats(
                "/splats", centers=arrays.centers, covariances=arrays.covariances,
                rgbs=arrays.rgbs, opacities=arrays.opacities)
        else:
            self.splats.set_gaussians(arrays.centers, arrays.covariances, arrays.rgbs,
                                      arrays.opacities)
        self.shown = (iteration, arrays.note())
        self.ctl[ch.SENT] = self.ctl[ch.SENT] + 1

    def _add_cameras(self, specs, background):
        from viewer.cameras import add_frustums, up_direction
        from viewer.server import set_background
        from viewer.splats import scene_bounds
        set_background(self.server, background)
        if not specs:
            return
        pos = np.stack([s.position for s in specs])
        centre, radius = scene_bounds(pos)
        self.server.scene.set_up_direction(tuple(float(x) for x in up_direction(specs)))
        self.server.initial_camera.position = tuple(float(x) for x in
                                                    specs[0].position * 1.5 - centre * 0.5)
        self.server.initial_camera.look_at = tuple(float(x) for x in centre)
        add_frustums(self.server, specs, radius * 0.05)

    def _show_stats(self, now: float):
        ctl = self.ctl
        it = int(ctl[ch.ITER])
        self.times = [(t, i) for t, i in self.times if now - t < 10.0] + [(now, it)]
        (t0, i0), (t1, i1) = self.times[0], self.times[-1]
        rate = f"{(t1 - t0) / (i1 - i0):.3f} s/it" if i1 > i0 else "-"
        paused_at = int(ctl[ch.PAUSED_AT])
        state = (f"**paused** at iteration {paused_at}" if paused_at >= 0
                 else "**pausing** ..." if ctl[ch.PAUSE] else "training")
        loss = ctl[ch.LOSS]
        phase = self.phase.value.decode(errors="replace")
        self.pause.label = "Resume training" if ctl[ch.PAUSE] else "Pause training"
        self.stats.content = (
            f"{state}: iteration **{it}**, loss {'-' if np.isnan(loss) else f'{loss:.6f}'}, "
            f"**{int(ctl[ch.NPOINTS]):,}** Gaussians, phase {phase or '-'}, {rate}  \n"
            + (f"splats from iteration {self.shown[0]} ({self.shown[1]}), every "
               f"{self.refresh_s:g} s" if self.shown else "splats: waiting for a snapshot"))
