"""Scenes for end-to-end tests: tiny procedural ones, made by the same script users run, the
short training flags and in-process training the tests share, and the real captures in
<repo>/../shared/scenes (present in CI, absent from a user's clone)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_SCENES = os.path.join(os.path.dirname(REPO), "shared", "scenes")

# Densification and opacity resets early enough to happen in a run of a few dozen iterations.
TRAIN_FLAGS = ["--eval", "--llffhold", "5", "--densify_from_iter", "10",
               "--densification_interval", "10", "--densify_until_iter", "35",
               "--opacity_reset_interval", "25", "--quiet", "--no_tensorboard"]


def make_scene(out, views: int, width: int, height: int) -> str:
    r = subprocess.run([sys.executable, "scripts/make_demo_scene.py", "--out", str(out),
                        "--views", str(views), "--width", str(width), "--height", str(height)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return str(out)


def train_inprocess(argv):
    """train.py's main in this process (faster than a subprocess; the same code path)."""
    import train
    train.main(argv)


def saved_params(model_dir, it):
    """The Gaussians a run saved at iteration `it` (read_gaussian_ply's dict)."""
    from scene.ply_io import read_gaussian_ply
    return read_gaussian_ply(os.path.join(model_dir, "point_cloud", f"iteration_{it}",
                                          "point_cloud.ply"))


def shared_scene(name=None) -> str:
    """The path of a real capture (or of the captures' folder); skips, saying why, when the
    shared captures are absent."""
    path = SHARED_SCENES if name is None else os.path.join(SHARED_SCENES, name)
    if not os.path.isdir(path):
        pytest.skip(f"shared captures not found at {path} (a user's clone; CI has them)")
    return path
