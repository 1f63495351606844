"""The viewer in a real browser: Debian's headless Chromium driven by Playwright (never a
downloaded browser; .ci/run installs chromium). One small guided run, trained here, serves
as the trained model (splats, cameras, click-to-render) and as the guided run (slider); a
two-round recolor edit of it serves as the edit view (round slider)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("viser", reason="viser is not installed (pip install -r requirements.txt)")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -r requirements.txt)")

from tests.demo_scenes import make_scene  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p), None)
pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium executable (apt-get install chromium; .ci/run does)")]
VIEW_W, VIEW_H = 900, 600
PANEL_W = 430           # the GUI panel covers the right of the canvas
GUIDED = ["--eval", "--llffhold", "5", "--random_init", "300", "--iterations", "120",
          "--test_iterations", "999", "--save_iterations", "120", "--region_proposer", "error",
          "--save_region_vis", "--densify_from_iter", "10", "--densification_interval", "10",
          "--densify_until_iter", "80", "--phase1_end", "40", "--phase1_interval", "20",
          "--phase2_start", "40", "--phase2_end", "80", "--phase2_interval", "20",
          "--phase3_start", "80", "--phase3_end", "90", "--phase3_interval", "10",
          "--phase1_max_points", "60", "--phase2_max_points", "60", "--phase3_max_points", "40",
          "--prune_protection", "5", "--quiet", "--no_tensorboard"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=30.0, step=0.1):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            return False
        time.sleep(step)
    return True


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("vscene") / "demo", views=10, width=64, height=48)


@pytest.fixture(scope="module")
def guided_run(scene, tmp_path_factory):
    import train
    m = str(tmp_path_factory.mktemp("vguided") / "m")
    train.main(["-s", scene, "-m", m, *GUIDED])
    return m


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def edit_run(guided_run, tmp_path_factory):
    from tests.test_viewer_edit import make_edit
    return make_edit(guided_run, str(tmp_path_factory.mktemp("vedit") / "edit"))


@pytest.fixture
def opened(guided_run, browser):
    yield from open_in_browser(guided_run, browser)


@pytest.fixture
def opened_edit(edit_run, browser):
    yield from open_in_browser(edit_run, browser)


def open_in_browser(folder, browser):
    """(viewer, page, client) once the browser is connected and has drawn the scene."""
    from viewer.app import open_viewer
    port = free_port()
    v = open_viewer(folder, host="127.0.0.1", port=port, quiet=True)
    page = browser.new_page(viewport={"width": VIEW_W, "height": VIEW_H})
    try:
        page.goto(f"http://127.0.0.1:{port}")
        assert wait_for(lambda: len(v.server.get_clients()) == 1), "browser never connected"
        client = next(iter(v.server.get_clients().values()))
        assert wait_for(lambda: client.camera.image_width > 0)
        page.wait_for_selector("canvas", timeout=30_000)
        time.sleep(3.0)  # first frames of the splat renderer (software WebGL)
        yield v, page, client
    finally:
        page.close()
        v.server.stop()


def shot(page) -> np.ndarray:
    from io import BytesIO
    from PIL import Image
    return np.asarray(Image.open(BytesIO(page.screenshot())).convert("RGB")).astype(np.float32)


def project(client, pts: np.ndarray):
    """World points -> (u, v) viewport pixels and depth, with the client's camera."""
    from viser import transforms as tf
    R = tf.SO3(np.asarray(client.camera.wxyz)).as_matrix()
    pc = (pts - np.asarray(client.camera.position)) @ R   # R^T (p - t), row-wise
    W, H = client.camera.image_width, client.camera.image_height
    f = H / 2 / np.tan(client.camera.fov / 2)
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = f * pc[:, 0] / z + W / 2, f * pc[:, 1] / z + H / 2
    return u * VIEW_W / W, v * VIEW_H / H, z


def in_canvas(u, v, z):
    return (z > 0) & (u > 5) & (u < VIEW_W - PANEL_W) & (v > 5) & (v < VIEW_H - 5)


def set_layers_visible(v, visible: bool):
    for h in v.model.frustums + (v.layer.handles if v.layer else []):
        h.visible = visible


def test_viewer_shows_the_model_and_a_clicked_camera_renders_its_view(opened):
    v, page, client = opened
    with_model = shot(page)
    set_layers_visible(v, False)
    v.model.splats.visible = False
    time.sleep(2.0)
    empty = shot(page)
    v.model.splats.visible = True
    set_layers_visible(v, True)

    a = v.model.arrays
    solid = a.opacities[:, 0] > 0.5
    u, vv, z = project(client, a.centers[solid])
    ok = in_canvas(u, vv, z)
    assert ok.sum() > 50, "the model does not project into the viewport"
    px = np.stack([vv[ok], u[ok]], 1).astype(int)
    where = np.zeros(with_model.shape[:2], bool)
    where[px[:, 0], px[:, 1]] = True
    diff = np.abs(with_model - empty).mean(2)
    background = empty[where].mean(0)
    assert np.abs(empty[where] - background).max() < 30, "background is not empty there"
    assert diff[where].mean() > 20, f"model pixels barely differ ({diff[where].mean():.1f})"
    assert diff[~where].mean() < diff[where].mean() / 2  # the change is where the model is

    # Click a training camera's frustum in the browser (its image plane, at some depth).
    time.sleep(1.0)
    target = None
    for i, spec in enumerate(v.model.views):
        for depth in (0.95, 0.8, 0.65, 0.5):
            p = spec.position + np.asarray(spec.R)[:, 2] * depth * v.model.frustum_scale
            u1, v1, z1 = project(client, p[None])
            if in_canvas(u1, v1, z1)[0]:
                page.mouse.click(float(u1[0]), float(v1[0]))
                if wait_for(lambda: v.model.rendered is not None, timeout=4.0):
                    target = i
                    break
        if target is not None:
            break
    assert target is not None, "no click on a camera frustum reached the viewer"
    got = v.model.rendered
    # The flight's camera update reaches the client state asynchronously (the browser echoes
    # its camera back), so wait for it rather than read it once.
    assert wait_for(lambda: np.allclose(client.camera.position, v.model.views[got].position,
                                        atol=1e-3), timeout=10.0), \
        (client.camera.position, v.model.views[got].position)
    assert len(v.model.panel.images) == 2 and "PSNR" in v.model.panel.text.content
    page.get_by_text("Our render").wait_for(timeout=15_000)
    page.get_by_text("PSNR").first.wait_for(timeout=15_000)
    ours, photo, psnr = v.model.model.render_view(got)
    assert ours.shape == photo.shape and 10 < psnr < 60
    assert f"{psnr:.2f} dB" in v.model.panel.text.content


def test_guided_run_slider_changes_the_highlighted_gaussians(opened):
    v, page, client = opened
    regions = v.layer
    assert v.kind == "guided" and len(regions.analyses) >= 3 and regions.current == 0

    def highlighted_points():
        pts = [h for h in regions.handles if hasattr(h, "points")]
        return pts[0].points.copy() if pts else np.zeros((0, 3))

    before_pts, before_n = highlighted_points(), regions.highlighted
    assert before_n > 0 and len(before_pts) == before_n
    v.model.splats.visible = False   # the highlights alone, so the pixels tell
    time.sleep(1.5)
    before = shot(page)
    thumb = page.get_by_role("slider").first
    thumb.focus()
    thumb.press("ArrowRight")
    assert wait_for(lambda: regions.current == 1, timeout=15.0), "slider did not reach the server"
    after_pts = highlighted_points()
    assert regions.highlighted == len(after_pts)
    assert (len(after_pts) != len(before_pts)
            or not np.allclose(np.sort(after_pts, 0), np.sort(before_pts, 0)))
    time.sleep(2.0)
    after = shot(page)
    assert np.abs(after - before).mean(2)[:, :VIEW_W - PANEL_W].mean() > 0.5
    page.get_by_text(f"Iteration {regions.analyses[1].iteration}").wait_for(timeout=10_000)


def test_edit_round_slider_changes_the_shown_snapshot(opened_edit):
    v, page, client = opened_edit
    layer = v.layer
    assert v.kind == "edit" and layer.current == 2 and layer.highlighted > 0
    run = layer.run
    round2 = v.model.arrays

    def shots():
        """(with the splats, the highlights and frustums alone)"""
        time.sleep(1.5)
        full = shot(page)
        v.model.splats.visible = False
        time.sleep(1.5)
        layers = shot(page)
        v.model.splats.visible = True
        return full, layers

    before, before_layers = shots()
    thumb = page.get_by_role("slider").first
    thumb.focus()
    for want in (1, 0):
        thumb.press("ArrowLeft")
        assert wait_for(lambda: layer.current == want, timeout=15.0), \
            f"slider did not reach round {want}"
    # Round 0 is the input model: its splats, no RoI highlight, no edited views.
    shown = v.model.arrays
    g0 = run.gaussians(0)
    assert shown.total == g0.num_points and shown is not round2
    np.testing.assert_allclose(shown.centers, g0._xyz.detach().numpy()[shown.rows], atol=1e-6)
    assert layer.highlighted == 0 and not layer.handles
    page.get_by_text("input model").first.wait_for(timeout=10_000)
    after, after_layers = shots()
    canvas = (slice(None), slice(0, VIEW_W - PANEL_W))
    assert np.abs(after - before).mean(2)[canvas].mean() > 0.5   # the edited splats changed
    # Round 2's magenta RoI points are gone from the canvas.
    magenta = lambda im: ((im[..., 0] > 180) & (im[..., 1] < 120) & (im[..., 2] > 140)).sum()
    assert magenta(before_layers[canvas]) > 20, magenta(before_layers[canvas])
    assert magenta(after_layers[canvas]) < magenta(before_layers[canvas]) / 4


def test_live_run_streams_to_the_browser_and_pause_holds_training(scene, browser, tmp_path):
    """train.py --viewer in its own process: the panel follows the run, the splats arrive,
    Pause holds training until Resume, and closing the tab while paused resumes it."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.Popen(
        [sys.executable, "train.py", "-s", scene, "-m", str(tmp_path / "m"), "--iterations",
         "30000", "--save_iterations", "30000", "--test_iterations", "99999", "--viewer",
         "--viewer_port", str(port), "--viewer_refresh", "0.5", "--disable_viewer", "--quiet",
         "--no_tensorboard"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)

    def listening():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return True
        except OSError:
            return False

    def panel(page):
        return " ".join(page.inner_text("body").split())

    def numbers(page, pattern):
        m = re.search(pattern, panel(page))
        return int(m.group(1).replace(",", "")) if m else None

    page = None
    try:
        assert wait_for(listening, timeout=90.0), "the live viewer never listened"
        page = browser.new_page(viewport={"width": VIEW_W, "height": VIEW_H})
        page.goto(f"http://127.0.0.1:{port}")
        assert wait_for(lambda: numbers(page, r"training: iteration (\d+)") is not None,
                        timeout=60.0), panel(page)
        assert wait_for(lambda: "splats from iteration" in panel(page), timeout=60.0)
        assert re.search(r"[\d,]+ Gaussians, phase", panel(page))
        first = numbers(page, r"training: iteration (\d+)")
        assert wait_for(lambda: (numbers(page, r"training: iteration (\d+)") or 0) > first,
                        timeout=30.0), "training does not advance in the panel"

        page.get_by_role("button", name="Pause training").click()
        assert wait_for(lambda: numbers(page, r"paused at iteration (\d+)") is not None,
                        timeout=30.0), panel(page)
        held = numbers(page, r"paused at iteration (\d+)")
        time.sleep(2.0)
        assert numbers(page, r"paused at iteration (\d+)") == held  # training is held
        assert numbers(page, r"iteration (\d+), loss") == held
        page.get_by_role("button", name="Resume training").click()
        assert wait_for(lambda: (numbers(page, r"training: iteration (\d+)") or 0) > held,
                        timeout=30.0), panel(page)

        # Paused, then the tab closes: training goes on by itself.
        page.get_by_role("button", name="Pause training").click()
        assert wait_for(lambda: numbers(page, r"paused at iteration (\d+)") is not None,
                        timeout=30.0)
        held = numbers(page, r"paused at iteration (\d+)")
        page.close()
        page = browser.new_page(viewport={"width": VIEW_W, "height": VIEW_H})
        page.goto(f"http://127.0.0.1:{port}")
        assert wait_for(lambda: (numbers(page, r"training: iteration (\d+)") or 0) > held,
                        timeout=60.0), panel(page)
        assert run.poll() is None
    finally:
        if page is not None:
            page.close()
        run.send_signal(signal.SIGINT)
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
    assert run.returncode == 130, run.stderr.read()
    assert wait_for(lambda: not listening(), timeout=15.0), "the viewer outlived the run"
