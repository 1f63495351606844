"""The viewer without a browser: splat conversion, subset choice, the server's host/port
rules, the live viewer (its server process, the shared-memory snapshots, pause, closed tabs,
a killed run) and what a guided run records for it.
The browser itself: tests/test_viewer_browser.py."""
import math
import os
import socket
import threading
import time

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.unit

pytest.importorskip("viser", reason="viser is not installed (pip install -r requirements.txt)")

from utils.errors import UserError  # noqa: E402
from viewer.splats import select_rows, splat_arrays  # noqa: E402


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quat_to_matrix64(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_splat_covariances_colours_opacities_match_float64():
    g = torch.Generator().manual_seed(0)
    n = 64
    xyz = torch.randn(n, 3, generator=g)
    f_dc = torch.randn(n, 1, 3, generator=g)
    logit = torch.randn(n, 1, generator=g) * 3
    # extreme anisotropy (1e4 between axes) and unnormalised quaternions
    log_s = torch.stack([torch.full((n,), -7.0), torch.randn(n, generator=g) - 3,
                         torch.full((n,), 2.2)], 1)
    rot = torch.randn(n, 4, generator=g) * 5
    a = splat_arrays(xyz, f_dc, logit, log_s, rot, max_splats=0)
    for i in range(n):
        R = quat_to_matrix64(rot[i].double().numpy())
        S = np.diag(np.exp(log_s[i].double().numpy()))
        want = R @ S @ S @ R.T
        np.testing.assert_allclose(a.covariances[i], want, rtol=1e-4,
                                   atol=1e-6 * np.abs(want).max())
    rgb = np.clip(0.5 + 0.28209479177387814 * f_dc.double().numpy().reshape(-1, 3), 0, 1)
    np.testing.assert_allclose(a.rgbs, rgb, atol=1e-6)
    np.testing.assert_allclose(a.opacities[:, 0], 1 / (1 + np.exp(-logit.double().numpy()[:, 0])),
                               atol=1e-6)
    assert not a.subset and a.note() == f"{n} Gaussians"


def test_subset_keeps_the_opaque_and_large_ones_and_says_so():
    n = 1000
    opacity = torch.full((n, 1), 0.05)
    log_s = torch.full((n, 3), -5.0)
    big = torch.arange(0, n, 10)           # 100 opaque, large Gaussians
    opacity[big] = 0.9
    log_s[big] = -2.0
    faint_large = torch.arange(5, n, 10)    # large but nearly transparent
    log_s[faint_large] = -2.0
    opacity[faint_large] = 0.001
    rows = select_rows(opacity, log_s, 100)
    assert rows.tolist() == big.tolist()
    logit = torch.log(opacity / (1 - opacity))
    a = splat_arrays(torch.zeros(n, 3), torch.zeros(n, 1, 3), logit, log_s,
                     torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), max_splats=100)
    assert a.subset and len(a.centers) == 100 and a.rows.tolist() == big.tolist()
    assert "100 of 1,000 Gaussians shown" in a.note() and "--max_splats" in a.note()
    assert len(select_rows(opacity, log_s, 0)) == n  # 0 = everything


def listening_addresses(port: int):
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp{,6})."""
    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                out.append(addr)
    return out


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs /proc/net")
def test_server_listens_only_on_the_host_and_a_taken_port_is_one_line():
    from viewer.server import open_server
    port = free_port()
    server = open_server("127.0.0.1", port, quiet=True)
    try:
        assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1 only
        with pytest.raises(UserError) as e:
            open_server("127.0.0.1", port, port_flag="--viewer_port", quiet=True)
        msg = str(e.value)
        assert "\n" not in msg and f"--viewer_port {port}" in msg and "in use" in msg
    finally:
        server.stop()
    with pytest.raises(UserError, match="--host no.such.host.invalid"):
        open_server("no.such.host.invalid", port, quiet=True)
    with pytest.raises(UserError, match="--port 70000"):
        open_server("127.0.0.1", 70000, quiet=True)


def test_view_cli_bad_inputs_are_one_line(tmp_path, capsys):
    import view
    for argv, want in ((["-m", str(tmp_path / "missing")], "no such folder"),
                       (["-m", str(tmp_path)], "neither a train.py output folder"),
                       (["-m", str(tmp_path), "--max_splats", "-1"], "--max_splats: must be an integer in [0,")):
        with pytest.raises(SystemExit) as e:
            view.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and want in err, err


class FakeLog:
    def __init__(self):
        self.rows = []


class FakeTrainer:
    """What the live hook reads: gaussians, log rows, phase_of, scene cameras, background."""

    def __init__(self, n=500):
        from scene.gaussian_model import GaussianModel
        self.gaussians = GaussianModel(0)
        g = torch.Generator().manual_seed(1)
        self.gaussians._set_params({
            "xyz": torch.randn(n, 3, generator=g), "f_dc": torch.randn(n, 1, 3, generator=g),
            "f_rest": torch.zeros(n, 0, 3), "opacity": torch.zeros(n, 1),
            "scaling": torch.full((n, 3), -3.0), "rotation": torch.tensor([[1.0, 0, 0, 0]])
            .repeat(n, 1)})
        self.log = FakeLog()
        self.phase_of = lambda it: "phase1"
        self.plugins = []
        self.add_plugin = self.plugins.append
        self.background = torch.zeros(3)

        class Scene:
            def getTrainCameras(self):
                return []
        self.scene = Scene()


def wait_for(cond, timeout=20.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            return False
        time.sleep(0.05)
    return True


def browser_tab(port: int):
    """A websocket connection as viser's browser client opens it: viser counts a client
    from its first camera message."""
    import msgspec
    import viser
    from viser._messages import ViewerCameraMessage
    from websockets.sync.client import connect
    ws = connect(f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"],
                 max_size=None)
    cam = ViewerCameraMessage((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, -3.0), 1.0, 0.01, 100.0, 480,
                              640, (0.0, 0.0, 0.0), (0.0, -1.0, 0.0))
    ws.send(msgspec.msgpack.encode(cam.as_serializable_dict()))
    return ws


def test_snapshot_channel_round_trip_and_growth():
    import multiprocessing as mp
    from viewer import live_channel as ch
    ctl, _ = ch.new_control(mp.get_context("spawn"))
    w = ch.SnapshotWriter(ctl)
    r = ch.SnapshotReader(ctl, w.prefix)
    try:
        assert r.take() is None and w.ready()
        for it, n in ((5, 10), (6, 2000), (7, 30)):   # the second one needs a bigger segment
            g = torch.Generator().manual_seed(it)
            parts = [torch.randn(n, 3, generator=g), torch.randn(n, 1, 3, generator=g),
                     torch.randn(n, 1, generator=g), torch.randn(n, 3, generator=g),
                     torch.randn(n, 4, generator=g)]
            w.write(it, *parts)
            assert not w.ready()           # the server has not taken it yet
            got_it, data = r.take()
            assert got_it == it and data.shape == (n, 14) and w.ready()
            for a, b in zip(ch.split_columns(data), parts):
                np.testing.assert_array_equal(a.numpy(), b.reshape(n, -1).numpy())
            assert r.take() is None
        assert ctl[ch.GEN] == 2
    finally:
        r.close()
        w.close()
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(w.prefix)]


def test_live_viewer_runs_the_server_in_a_child_process_and_never_holds_training():
    from viewer import live_channel as ch
    from viewer.live import LiveViewer
    port = free_port()
    lv = LiveViewer("127.0.0.1", port, refresh_s=0.2, quiet=True)
    tr = FakeTrainer()
    try:
        lv.attach(tr)
        assert tr.plugins == [lv]
        # The server listens in the child process, on the host asked for only.
        assert listening_addresses(port) == ["0100007F"]
        assert lv._proc.pid != os.getpid() and lv._proc.is_alive()
        import threading as th
        assert [t.name for t in th.enumerate() if "viser" in t.name.lower()] == []
        t0 = time.perf_counter()
        for it in range(1, 201):
            tr.log.rows.append([it, f"{1.0 / it:.6f}"] + [""] * 6)
            lv.on_iteration(tr, it)
        per_call = (time.perf_counter() - t0) / 200
        assert lv.ctl[ch.SEQ] == 0          # nobody watching: no copies
        assert per_call < 1e-3, per_call
        assert lv.ctl[ch.ITER] == 200 and lv.ctl[ch.LOSS] == 0.005 and lv.ctl[ch.NPOINTS] == 500
        assert lv.phase_label.value == b"phase1"

        tab = browser_tab(port)
        assert wait_for(lambda: lv.clients == 1), "the tab never counted"
        lv.on_iteration(tr, 201)
        assert lv.ctl[ch.SEQ] == 1 and lv.ctl[ch.SNAP_ITER] == 201
        assert wait_for(lambda: lv.snapshots_sent == 1), "the server never showed the snapshot"
        lv.on_iteration(tr, 202)             # within refresh_s: no new copy
        assert lv.ctl[ch.SEQ] == 1
        time.sleep(0.25)
        lv.on_iteration(tr, 203)
        assert lv.ctl[ch.SEQ] == 2 and wait_for(lambda: lv.snapshots_sent == 2)

        # Pause (the button sets PAUSE in the server) holds the call until Resume ...
        done = threading.Event()
        lv.ctl[ch.PAUSE] = 1.0
        threading.Thread(target=lambda: (lv.on_iteration(tr, 204), done.set()),
                         daemon=True).start()
        assert wait_for(lambda: lv.ctl[ch.PAUSED_AT] == 204)
        assert not done.wait(0.5)
        lv.ctl[ch.PAUSE] = 0.0
        assert done.wait(5.0) and lv.ctl[ch.PAUSED_AT] == -1
        # ... or until the last tab closes.
        done.clear()
        lv.ctl[ch.PAUSE] = 1.0
        threading.Thread(target=lambda: (lv.on_iteration(tr, 205), done.set()),
                         daemon=True).start()
        assert wait_for(lambda: lv.ctl[ch.PAUSED_AT] == 205)
        tab.close()
        assert done.wait(10.0) and lv.clients == 0 and not lv.ctl[ch.PAUSE]
        seq = lv.ctl[ch.SEQ]
        time.sleep(0.25)
        lv.on_iteration(tr, 206)
        assert lv.ctl[ch.SEQ] == seq          # the tab is closed: no more copies
    finally:
        lv.close()
    assert not lv._proc.is_alive() and listening_addresses(port) == []
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(lv.snapshots.prefix)]


def test_live_server_exits_when_the_training_process_is_killed(tmp_path):
    """A SIGKILLed run leaves no server listening on the port."""
    import subprocess
    import sys
    port = free_port()
    script = ("import os, sys, time; sys.path.insert(0, %r)\n"
              "from viewer.live import LiveViewer\n"
              "lv = LiveViewer('127.0.0.1', %d, quiet=True); lv.wait_started()\n"
              "print('up', flush=True); time.sleep(600)\n") % (REPO, port)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "up"
        assert listening_addresses(port) == ["0100007F"]
        p.kill()
        p.wait()
        assert wait_for(lambda: listening_addresses(port) == [], timeout=15.0)
    finally:
        p.kill()


def test_train_viewer_port_in_use_is_one_line(tmp_path, capsys):
    import train
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        with pytest.raises(SystemExit) as e:
            train.main(["-s", str(tmp_path), "-m", str(tmp_path / "m"), "--viewer",
                        "--viewer_port", str(port), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"train.py: error: --viewer_port {port}: port already in use on 127.0.0.1 " \
                  f"(pick another with --viewer_port)"


def test_regions_view_reads_a_run_without_added_records(tmp_path):
    """Runs from before added.npz / per-view cameras still open (nothing highlighted)."""
    import json
    from viewer.regions import load_added, read_analyses
    d = tmp_path / "regions" / "iter_000010"
    d.mkdir(parents=True)
    (d / "regions.json").write_text(json.dumps({"iteration": 10, "phase": "phase1",
                                                "views": [{"view": "phase1_0_a"}]}))
    (tmp_path / "regions" / "iter_000020").mkdir()
    (tmp_path / "regions" / "iter_000020" / "regions.json").write_text("{not json")
    got = read_analyses(str(tmp_path))
    assert [a.iteration for a in got] == [10]
    assert load_added(str(d)) is None
    assert math.isfinite(got[0].iteration)


def test_live_viewer_port_taken_after_the_check_is_one_line(monkeypatch):
    """The port taken between our check and the server process's bind: still one line,
    before training starts, and no server process left behind."""
    import viewer.server
    from viewer.live import LiveViewer
    monkeypatch.setattr(viewer.server, "check_port_free", lambda *a, **k: None)
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        lv = LiveViewer("127.0.0.1", port, quiet=True)
        with pytest.raises(UserError) as e:
            lv.wait_started()
    msg = str(e.value)
    assert "\n" not in msg and f"--viewer_port {port}: port already in use" in msg
    assert not lv._proc.is_alive()
