"""Tiny procedural scenes for end-to-end tests, made by the same script users run."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_scene(out, views: int, width: int, height: int) -> str:
    r = subprocess.run([sys.executable, "scripts/make_demo_scene.py", "--out", str(out),
                        "--views", str(views), "--width", str(width), "--height", str(height)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return str(out)
