"""The viewer without a browser: splat conversion, subset choice, the server's host/port
rules, the live hook (snapshots, pause, closed tabs) and what a guided run records for it.
The browser itself: tests/test_viewer_browser.py."""
import math
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


@pytest.mark.skipif(not __import__("os").path.exists("/proc/net/tcp"), reason="needs /proc/net")
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


def test_live_hook_snapshots_only_for_a_browser_and_pause_never_outlives_the_tab():
    from viewer.live import LiveViewer
    lv = LiveViewer("127.0.0.1", free_port(), refresh_s=0.2, quiet=True)
    tr = FakeTrainer()
    try:
        lv.attach(tr)
        assert tr.plugins == [lv]
        t0 = time.perf_counter()
        for it in range(1, 201):
            tr.log.rows.append([it, f"{1.0 / it:.6f}"] + [""] * 6)
            lv(tr, it)
        per_call = (time.perf_counter() - t0) / 200
        assert lv.snapshots_sent == 0 and lv._slot is None  # nobody watching: no copies
        assert per_call < 2e-3, per_call
        assert lv.iteration == 200 and lv.loss == "0.005000" and lv.num_points == 500

        lv._clients = 1     # as if a tab were open
        lv(tr, 201)
        assert wait_for(lambda: lv.snapshots_sent == 1)
        assert lv._splats is not None and len(lv._splats.buffer) == 500
        # The snapshot is a copy: training may change the tensors at once.
        tr.gaussians._xyz.data.add_(1.0)

        # Pause holds the hook until Resume ...
        lv._toggle_pause()
        done = threading.Event()
        threading.Thread(target=lambda: (lv(tr, 202), done.set()), daemon=True).start()
        assert wait_for(lambda: lv.paused_at == 202)
        assert not done.wait(0.5)
        lv._toggle_pause()
        assert done.wait(5.0) and lv.paused_at is None
        # ... or until the last tab is gone.
        lv._toggle_pause()
        done.clear()
        threading.Thread(target=lambda: (lv(tr, 203), done.set()), daemon=True).start()
        assert wait_for(lambda: lv.paused_at == 203)
        lv._count_clients()  # no client is really connected: the "tab" closed
        assert done.wait(5.0) and not lv.pause_requested
    finally:
        lv.close()


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
