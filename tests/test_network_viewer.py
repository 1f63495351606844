"""The network viewer: the reference's remote-viewer protocol against a real training run."""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from gaussian_renderer.network_gui import (camera_from_message, message_for_camera,
                                           recv_exact, write_message)
from tests.demo_scenes import REPO, make_scene
from tests.tiny import loader_args, param_defaults

pytestmark = pytest.mark.e2e

W, H = 64, 48


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("viewer") / "demo", views=8, width=W, height=H)


def _cameras(scene_dir):
    from scene.dataset_readers import readColmapSceneInfo
    from scene.camera_loading import cameraList_from_camInfos
    si = readColmapSceneInfo(scene_dir, "images", eval=False)
    return cameraList_from_camInfos(si.train_cameras, 1.0, loader_args())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_message_round_trip_gives_back_the_camera(scene):
    cam = _cameras(scene)[2]
    msg = json.loads(json.dumps(message_for_camera(cam)))  # what travels is JSON
    back = camera_from_message(msg)
    assert torch.equal(back.world_view_transform, cam.world_view_transform.float())
    assert torch.equal(back.full_proj_transform, cam.full_proj_transform.float())
    assert torch.allclose(back.camera_center, cam.camera_center.float(), atol=1e-5)
    assert (back.image_width, back.image_height) == (W, H)
    assert camera_from_message({**msg, "resolution_x": 0}) is None


def _ask(conn, msg):
    """One request: the frame (or None) and the source path the server verifies with."""
    write_message(conn, msg)
    n = msg["resolution_x"] * msg["resolution_y"] * 3
    frame = recv_exact(conn, n) if n else None
    length = int.from_bytes(recv_exact(conn, 4), "little")
    return frame, recv_exact(conn, length).decode("ascii")


def _connect(port, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.stderr.read()
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=120)
        except OSError:
            time.sleep(0.2)
            continue
        # Before the run listens, a connect can pick `port` itself as its source port and
        # connect to itself (TCP simultaneous open); such a socket only ever talks to us.
        if conn.getsockname() == conn.getpeername():
            conn.close()
            time.sleep(0.2)
            continue
        return conn
    raise AssertionError("the training run never listened")


def test_viewer_pauses_training_and_gets_the_right_frame(scene, tmp_path):
    port = _free_port()
    model = tmp_path / "m"
    # Long enough that the viewer is connected before the run ends: a run that finishes
    # first closes its listener with our connection still unaccepted (a reset).
    proc = subprocess.Popen(
        [sys.executable, "train.py", "-s", scene, "-m", str(model), "--iterations", "400",
         "--test_iterations", "9999", "--save_iterations", "400", "--quiet", "--no_tensorboard",
         "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        conn = _connect(port, proc)
        cam = _cameras(scene)[1]
        # Paused: however long the viewer holds it, training does not advance.
        for _ in range(5):
            frame, source = _ask(conn, message_for_camera(cam, train=False))
            assert len(frame) == W * H * 3 and source == os.path.abspath(scene)
        time.sleep(2)
        assert proc.poll() is None and not (model / "point_cloud").exists()
        # Resume; after the last iteration the run keeps serving while keep_alive is set.
        ply = model / "point_cloud" / "iteration_400" / "point_cloud.ply"
        t0 = time.time()
        while not ply.exists():
            assert time.time() - t0 < 300 and proc.poll() is None
            _ask(conn, {**message_for_camera(cam, train=True), "resolution_x": 0})
        time.sleep(0.5)  # the PLY is written atomically; training has finished
        msg = message_for_camera(cam, train=True, keep_alive=True)
        frame, _ = _ask(conn, msg)
        frame = np.frombuffer(frame, np.uint8).reshape(H, W, 3)

        from arguments import PipelineParams
        from gaussian_renderer import render
        from scene.gaussian_model import GaussianModel
        g = GaussianModel(3)
        g.load_ply(str(ply))
        with torch.no_grad():
            pipe = param_defaults(PipelineParams)
            want = render(camera_from_message(msg), g, pipe, torch.zeros(3))["render"]
        want = (want.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
        diff = np.abs(frame.astype(int) - want.astype(int))
        assert diff.max() <= 1 and frame.std() > 5, (diff.max(), frame.std())
        # keep_alive false: the run ends.
        _ask(conn, {**msg, "keep_alive": False})
        conn.close()
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    except ConnectionError as e:  # the run hung up: say why it did
        proc.kill()
        raise AssertionError(f"{e!r}; the training run's stderr: {proc.stderr.read()[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_port_in_use_is_one_clear_line(scene, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "train.py", "-s", scene, "-m", str(tmp_path / "m"),
                            "--iterations", "5", "--port", str(port), "--quiet"],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr  # the viewer is optional: the run goes on without it
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--port {port}" in lines[0] and "in use" in lines[0], r.stderr
    assert "without the network viewer" in lines[0]


def test_disable_viewer_does_not_listen(scene, tmp_path, monkeypatch):
    import train
    created = []
    import gaussian_renderer.network_gui as ng
    monkeypatch.setattr(ng.NetworkViewer, "__init__",
                        lambda self, *a, **k: created.append(a) or (_ for _ in ()).throw(
                            AssertionError("listened")))
    train.main(["-s", scene, "-m", str(tmp_path / "m"), "--iterations", "2",
                "--test_iterations", "99", "--quiet", "--no_tensorboard", "--disable_viewer"])
    assert created == []
