"""train.py --viewer: watch a run in the browser while it trains.

The viser server runs in a child process (viewer/live_server.py): its websocket threads,
the splat conversion and the panel never share the training process's interpreter. The
training side is one call per iteration, `on_iteration(trainer, iteration)`, that writes
a few numbers into shared memory and, every `refresh_s` seconds and only while a browser
is connected and the server has taken the last snapshot, copies the Gaussian parameters
into a shared-memory buffer (a memcpy). Training never waits on the browser or the server;
the only wait is the user's own Pause, and that ends when the last tab closes (or the
server process is gone).
"""
import multiprocessing as mp
import threading
import time
import weakref

import numpy as np

from scene.plugins import TrainingPlugin
from scene.training_log import COLUMNS
from utils.errors import UserError
from utils.image_utils import to_uint8_hwc
from viewer import live_channel as ch
from viewer.splats import DEFAULT_MAX_SPLATS

LOSS_COLUMN = COLUMNS.index("loss")
START_TIMEOUT_S = 120.0


class LiveViewer(TrainingPlugin):
    """The training process's end of the live viewer.

    Constructing it checks the port (one clear line if taken) and starts the server process;
    attach() waits for it to listen, hands it the cameras and hooks on_iteration into the
    trainer; close() stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, refresh_s: float = 2.0,
                 max_splats: int = DEFAULT_MAX_SPLATS, quiet: bool = False):
        from viewer.server import check_port_free, require_viser
        require_viser()
        check_port_free(host, port, "--viewer_port", "--viewer_host")
        self.host, self.port, self.quiet = host, port, quiet
        self.refresh_s = float(refresh_s)
        ctx = mp.get_context("spawn")   # no fork of a process with torch's threads
        self.ctl, self.phase_label = ch.new_control(ctx)
        self.snapshots = ch.SnapshotWriter(self.ctl)
        # Pipes, not Queues: no named semaphores for a killed run to leave behind.
        setup_recv, self._setup = ctx.Pipe(duplex=False)
        self._result, result_send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_serve, name="live-viewer", daemon=True,
            args=(host, port, self.refresh_s, max_splats, self.ctl, self.phase_label,
                  self.snapshots.prefix, setup_recv, result_send))
        self._proc.start()
        setup_recv.close()
        result_send.close()
        # If the run fails before close() (a bad scene), the server still stops.
        weakref.finalize(self, _stop, self.ctl)
        self._started = False
        self._phase = ""
        self._next_snapshot = 0.0

    # -- wiring -----------------------------------------------------------------------
    def attach(self, trainer):
        """Wait for the server, send it the cameras, hook on_iteration into the loop."""
        self.wait_started()
        from viewer.cameras import view_spec
        cams = list(trainer.scene.getTrainCameras())
        specs = [view_spec(c, "train", _thumb(c)) for c in cams]
        setup = (specs, trainer.background.detach().cpu().numpy())
        # From a thread: a big camera set fills the pipe until the server reads it.
        threading.Thread(target=_send_quietly, args=(self._setup, setup), daemon=True).start()
        trainer.add_plugin(self)
        return self

    def wait_started(self):
        """Block until the server listens; UserError (one line) if it could not."""
        if self._started:
            return
        t0 = time.monotonic()
        while True:
            try:
                if self._result.poll(0.2):
                    kind, message = self._result.recv()
                    break
            except (EOFError, OSError):  # the server process is gone
                pass
            if not self._proc.is_alive():
                kind, message = "error", "--viewer: the viewer server process exited"
                break
            if time.monotonic() - t0 > START_TIMEOUT_S:
                kind, message = "error", "--viewer: the viewer server did not start"
                break
        if kind != "ready":
            self.close()
            raise UserError(message)
        self._started = True
        if not self.quiet:
            print(f"Viewer: http://{self.host}:{self.port}", flush=True)

    @property
    def clients(self) -> int:
        return int(self.ctl[ch.CLIENTS])

    @property
    def snapshots_sent(self) -> int:
        return int(self.ctl[ch.SENT])

    def close(self):
        self.ctl[ch.STOP] = 1.0
        self.ctl[ch.PAUSE] = 0.0
        if self._proc.is_alive():
            self._proc.join(timeout=10.0)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=5.0)
        self._setup.close()
        self._result.close()
        self.snapshots.close()

    # -- the per-iteration call: must stay cheap ----------------------------------------
    def after_step(self, step):
        self.on_iteration(step.trainer, step.iteration)

    def on_iteration(self, trainer, iteration: int):
        """Publish the iteration's numbers; now and then a snapshot; hold while paused.
        Reads only trainer.gaussians, the last loss and the phase label."""
        ctl = self.ctl
        g = trainer.gaussians
        ctl[ch.ITER] = iteration
        rows = trainer.log.rows
        if rows:
            ctl[ch.LOSS] = float(rows[-1][LOSS_COLUMN])
        ctl[ch.NPOINTS] = g.num_points
        phase = trainer.phase_of(iteration)
        if phase != self._phase:
            self._phase = phase
            ch.set_phase(self.phase_label, phase or "")
        if ctl[ch.PAUSE]:
            self._hold(iteration)
        if ctl[ch.CLIENTS] and self.snapshots.ready():
            now = time.monotonic()
            if now >= self._next_snapshot:
                self.snapshots.write(iteration, g._xyz, g._features_dc, g._opacity,
                                     g._scaling, g._rotation)
                self._next_snapshot = now + self.refresh_s

    def _hold(self, iteration: int):
        """Pause: wait until Resume, or until no browser (or no server) is left."""
        ctl = self.ctl
        ctl[ch.PAUSED_AT] = iteration
        while ctl[ch.PAUSE] and ctl[ch.CLIENTS] and not ctl[ch.STOP] and self._proc.is_alive():
            time.sleep(0.1)
        ctl[ch.PAUSE] = 0.0
        ctl[ch.PAUSED_AT] = -1.0


def _stop(ctl):
    ctl[ch.STOP] = 1.0


def _send_quietly(conn, obj):
    try:
        conn.send(obj)
    except OSError:  # the server is gone: nothing to tell it
        pass


def _serve(*args):
    from viewer.live_server import serve
    serve(*args)


def _thumb(cam, width: int = 160) -> np.ndarray:
    img = cam.original_image
    step = max(1, int(np.ceil(img.shape[2] / width)))
    return to_uint8_hwc(img[:, ::step, ::step])
