"""File-system helpers shared by the CLIs."""
import os
import re

# Iteration folders written by training (point_cloud/iteration_N) and render.py (ours_N).
_ITER_DIR = re.compile(r"^(?:iteration|ours)_(\d+)$")


def mkdir_p(path: str):
    """Create `path` and its parents; an existing folder is fine."""
    os.makedirs(path, exist_ok=True)


def searchForMaxIteration(folder: str):
    """Largest N among entries of `folder` named `iteration_N` or `ours_N`.

    Other names (`iteration_final`, `.DS_Store`, `ours_7000.bak`) are ignored. Returns None
    when the folder is missing or holds no such entry, so callers can say what they were
    looking for in their own words."""
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    iters = [int(m.group(1)) for m in map(_ITER_DIR.match, names) if m]
    return max(iters) if iters else None
