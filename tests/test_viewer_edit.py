"""The edit view without a browser: what viewer/edits.py loads from a real edit.py output
(made here: a tiny trained model, two rounds of the deterministic recolor editor in a RoI
box) and what the round slider shows for each round. The slider in a browser:
tests/test_viewer_browser.py."""
import socket

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("viser", reason="viser is not installed (pip install -r requirements.txt)")

from tests.demo_scenes import make_scene  # noqa: E402

pytestmark = pytest.mark.e2e
W, H = 64, 48
RED = (1.0, 0.15, 0.15)
EDIT = ["--editor", "recolor:" + ",".join(map(str, RED)), "--instruction", "make it red",
        "--rounds", "2", "--round_iters", "30", "--roi_box", "0:18,8,50,40", "--quiet"]


def make_edit(model: str, out: str) -> str:
    import edit
    edit.main(["-m", model, "--output", out, *EDIT])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def edit_run(tmp_path_factory):
    import train
    base = tmp_path_factory.mktemp("vedit")
    scene = make_scene(base / "scene", views=8, width=W, height=H)
    model = str(base / "model")
    train.main(["-s", scene, "-m", model, "--iterations", "150", "--densify_from_iter", "20",
                "--densification_interval", "20", "--densify_until_iter", "100",
                "--test_iterations", "999", "--quiet", "--no_tensorboard"])
    return model, make_edit(model, str(base / "edit"))


def sh0_rgb(g) -> np.ndarray:
    return 0.5 + 0.28209479177387814 * g._features_dc.detach().reshape(-1, 3).numpy()


def test_edit_run_loads_rounds_snapshots_roi_and_images(edit_run):
    from viewer.app import folder_kind
    from viewer.edits import IMAGE_KINDS, EditRun
    model, out = edit_run
    assert folder_kind(out) == "edit" and folder_kind(model) == "model"
    run = EditRun(out)
    assert [r["round"] for r in run.rounds] == [1, 2]
    g0 = run.gaussians(0)
    assert run.input.model_path == model and g0 is run.input.gaussians
    assert run.roi_weights(0) is None
    for r in (1, 2):
        g = run.gaussians(r)
        assert run.gaussians(r) is g                  # loaded once
        w = run.roi_weights(r)
        assert w.shape == (g.num_points,)             # row-aligned with the round's PLY
        roi = w > 0.5
        assert 0 < roi.sum() < g.num_points           # a box: some Gaussians, not all
        views = [int(v) for v in run.rounds[r - 1]["views"]]
        assert views
        for v in views:
            imgs = run.images(r, v)
            assert [label for label, _ in imgs] == [label for _, label in IMAGE_KINDS]
            assert all(im.shape == (H, W, 3) and im.dtype == np.uint8 for _, im in imgs)
            pre, edited, _ = (im.astype(float) for _, im in imgs)
            # The recolor target is redder than the pre-edit render inside the view's RoI
            # mask, and (nearly) the pre-edit render outside it.
            mask = np.asarray(Image.open(run.layout.roi(r, f"mask_view_{v:03d}.png"))
                              .convert("L")) > 127
            assert mask.any()
            redness = lambda im: (im[..., 0] - im[..., 1:].mean(-1))
            assert redness(edited[mask]).mean() > redness(pre[mask]).mean() + 10
            assert np.abs(edited - pre)[~mask].mean() < np.abs(edited - pre)[mask].mean() / 3
        assert run.images(r, 10_000) == []            # a view the round did not edit
    # The edit moved the RoI Gaussians' colour towards red, and left the rest nearly alone.
    g2, w2 = run.gaussians(2), run.roi_weights(2)
    if g2.num_points == g0.num_points:
        d = sh0_rgb(g2) - sh0_rgb(g0)
        roi = w2 > 0.5
        assert (d[roi, 0] - d[roi, 1:].mean(1)).mean() > (d[~roi, 0] - d[~roi, 1:].mean(1)).mean()


def test_edit_view_round_slider_shows_each_rounds_snapshot(edit_run):
    from viewer.app import open_viewer
    from viewer.edits import EditRun
    _, out = edit_run
    run = EditRun(out)
    v = open_viewer(out, port=free_port(), quiet=True)
    try:
        layer = v.layer
        assert v.kind == "edit" and layer.current == 2 and layer.slider.value == 2
        assert layer.slider.max == 2
        for r in (2, 1, 0, 2):
            layer.slider.value = r       # what a browser's slider move does
            assert layer.current == r
            g = run.gaussians(r)
            arrays = v.model.arrays
            assert arrays.total == g.num_points
            np.testing.assert_allclose(arrays.centers,
                                       g._xyz.detach().numpy()[arrays.rows], atol=1e-6)
            assert len(v.model.splats.buffer) == len(arrays.centers)   # what was sent
            if r == 0:
                assert layer.highlighted == 0 and "input model" in layer.summary.content
                continue
            roi = run.roi_weights(r)[arrays.rows] > 0.5
            assert layer.highlighted == roi.sum() > 0
            cloud = next(h for h in layer.handles if hasattr(h, "points"))
            # viser keeps point positions in float16
            np.testing.assert_allclose(cloud.points, arrays.centers[roi], rtol=2e-3, atol=2e-3)
            edited = [h for h in layer.handles if not hasattr(h, "points")]
            assert len(edited) == len(run.rounds[r - 1]["views"])   # a red frustum per view
            assert f"Round {r}" in layer.summary.content
        # Clicking an edited view's frustum shows its three images.
        views = [int(x) for x in run.rounds[1]["views"]]
        layer.on_view(2, views[0], v.model.views[views[0]], None)
        assert [label for label, _ in run.images(2, views[0])] == \
            ["Pre-edit render", "Edited target", "After optimisation"]
        assert len(v.model.panel.images) == 3
        # Highlight off: no RoI points.
        layer.highlight.value = False
        assert layer.current == 2 and layer.highlighted == 0
    finally:
        v.server.stop()
