"""Atomic writes: an interrupted run never leaves a half-written file behind."""
import json
import os
import tempfile
from contextlib import contextmanager

from utils.errors import UserError


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path in the same folder; on success it replaces `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.basename(path))
    except OSError as e:
        raise UserError(f"cannot write to {folder}: {e.strerror}") from e
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str, text: str):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def atomic_write_json(path: str, obj, indent: int = 2):
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_torch_save(obj, path: str):
    import torch
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def ensure_writable_dir(path: str):
    """Create `path` (and parents) or fail with one line naming it."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write_probe")
        with open(probe, "w") as f:
            f.write("")
        os.remove(probe)
    except OSError as e:
        raise UserError(f"output folder {path} is not writable: {e.strerror}") from e
