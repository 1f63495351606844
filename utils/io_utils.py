"""Atomic writes: an interrupted or failed save never leaves a half-written file behind.

Every save that matters goes through `atomic_path`: a temporary `.tmp_XXXXXXXX<name>` in the
target folder, then `os.replace`. A failure while writing (disk full, a file-size limit, a
quota: any OSError) becomes one UserError line naming the file; the previous version of the
file is untouched, the temporary file is removed, and folders the save itself created (an
empty `point_cloud/iteration_N/`) are removed again. A SIGKILL can still leave a temporary
file: `remove_stale_temps` is what a resumed run calls to tidy them.
"""
import json
import os
import re
import tempfile
from contextlib import contextmanager

from utils.errors import UserError

TEMP_PREFIX = ".tmp_"
# mkstemp's names: the prefix, 8 random characters, then the target's file name.
_TEMP_NAME = re.compile(r"^\.tmp_[a-z0-9_]{8}.+$")


def _reason(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def _missing_dirs(folder: str) -> list:
    """The folders, innermost first, that os.makedirs(folder) would create."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _remove_empty(folders: list):
    for folder in folders:  # innermost first
        try:
            os.rmdir(folder)
        except OSError:  # not empty (another file landed there) or already gone
            return


@contextmanager
def guarded_write(path: str):
    """Turn an OSError while writing `path` into one line naming it (for appends that are
    not atomic, such as the training log)."""
    try:
        yield
    except OSError as e:
        raise UserError(f"cannot write {path}: {_reason(e)}") from e


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path in the same folder; on success it replaces `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    created = _missing_dirs(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.basename(path))
    except OSError as e:
        _remove_empty(created)
        raise UserError(f"cannot write to {folder}: {_reason(e)}") from e
    os.close(fd)
    done = False
    try:
        with guarded_write(path):
            yield tmp
            # mkstemp creates 0600; give the file the mode a plain open() would have.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        done = True
    finally:
        try:
            if os.path.exists(tmp):
                os.remove(tmp)
        except OSError:
            pass
        if not done:
            _remove_empty(created)


def atomic_write_text(path: str, text: str):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def atomic_write_json(path: str, obj, indent: int = 2):
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_torch_save(obj, path: str):
    import torch
    with atomic_path(path) as tmp:
        # Through a Python file object, a full disk is an OSError (ENOSPC); torch.save to a
        # file name reports it as an opaque "enforce fail" RuntimeError instead.
        with open(tmp, "wb") as f:
            torch.save(obj, f)


def remove_stale_temps(folder: str, recursive: bool = False) -> list:
    """Delete temporary files `atomic_path` left in `folder` (a run killed mid-save); with
    recursive=True also in its sub-folders. Returns the paths removed."""
    removed = []
    walk = os.walk(folder) if recursive else [(folder, [], _listdir(folder))]
    for root, _, files in walk:
        for name in files:
            if _TEMP_NAME.match(name):
                path = os.path.join(root, name)
                try:
                    os.remove(path)
                    removed.append(path)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    raise UserError(f"cannot remove stale temporary file {path}: "
                                    f"{_reason(e)}") from e
    return removed


def _listdir(folder: str) -> list:
    try:
        return [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))]
    except OSError:
        return []


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
