"""A save that fails (disk full, file-size limit, any OSError) is one line naming the file,
keeps the previous good checkpoint and PLY, and leaves no temporary file and no empty
`point_cloud/iteration_N/` folder.

Three ways to fail a write: a tiny tmpfs that fills up (needs root to mount; skipped with the
reason otherwise), RLIMIT_FSIZE in a subprocess (EFBIG, any user), and writers monkeypatched to
raise ENOSPC (any user, any file system)."""
import errno
import glob
import hashlib
import os
import resource
import subprocess
import sys

import pytest
import torch

from tests.demo_scenes import REPO, make_scene
from utils.errors import UserError

pytestmark = pytest.mark.e2e

FLAGS = ["--iterations", "20", "--checkpoint_iterations", "10", "20", "--save_iterations",
         "10", "20", "--test_iterations", "99", "--quiet", "--no_tensorboard", "--disable_viewer"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene") / "demo", views=5, width=32, height=24)


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _one_line(capsys, code_info):
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code_info.value.code == 2 and len(err) == 1, err
    return err[0]


def _fill(folder):
    """Write into `folder` until its file system is full."""
    with open(os.path.join(folder, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'}); the "
                    "ENOSPC and EFBIG tests below cover the same code")
    yield str(mnt)
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("what", ["ply", "checkpoint"])
def test_disk_full_on_a_real_small_file_system(scene, small_fs, monkeypatch, capsys, what):
    """The disk fills up during training (a hook fills it just before the saves of
    iteration 20): the save of 20 fails naming its file, the saves of 10 are intact."""
    import train
    from scene import Scene
    import scene.trainer as trainer_mod
    model = os.path.join(small_fs, "model")
    good = {}

    def fill_then(real, name):
        def call(*a, **k):
            if any(x == 20 for x in a if isinstance(x, int)):
                for f in ("chkpnt10.pth", "point_cloud/iteration_10/point_cloud.ply"):
                    good[f] = _sha(os.path.join(model, f))
                _fill(small_fs)
            return real(*a, **k)
        return call
    if what == "ply":
        monkeypatch.setattr(Scene, "save", fill_then(Scene.save, "ply"))
        needle = os.path.join("iteration_20", "point_cloud.ply")
    else:
        monkeypatch.setattr(trainer_mod, "save_checkpoint",
                            fill_then(trainer_mod.save_checkpoint, "checkpoint"))
        needle = "chkpnt20.pth"
    with pytest.raises(SystemExit) as e:
        train.main(["-s", scene, "-m", model, *FLAGS])
    line = _one_line(capsys, e)
    assert needle in line and "No space left on device" in line, line
    for f, sha in good.items():
        assert _sha(os.path.join(model, f)) == sha  # the previous good files are intact
    assert glob.glob(os.path.join(model, "**", ".tmp_*"), recursive=True) == []
    if what == "ply":
        assert not os.path.exists(os.path.join(model, "point_cloud", "iteration_20"))


def test_file_size_limit_is_one_line_and_no_empty_folder(scene, tmp_path):
    """ulimit -f: the first Gaussian PLY (iteration 10) is larger than the limit; the smaller
    input.ply, cameras.json and cfg_args are not."""
    model = str(tmp_path / "model")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "train.py", "-s", scene, "-m", model, *FLAGS,
                        "--random_init", "500"],  # input.ply ~14 kB, the Gaussian PLY ~124 kB
                       cwd=REPO, env=env, preexec_fn=limit, capture_output=True, text=True,
                       timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    assert "point_cloud.ply" in lines[0] and "File too large" in lines[0], lines[0]
    assert os.path.isfile(os.path.join(model, "input.ply"))
    assert not os.path.exists(os.path.join(model, "point_cloud", "iteration_10"))
    assert glob.glob(os.path.join(model, "**", ".tmp_*"), recursive=True) == []


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_checkpoint_enospc_keeps_the_previous_one(scene, tmp_path, monkeypatch, capsys):
    import train
    import scene.trainer as trainer_mod
    model = str(tmp_path / "model")
    real = trainer_mod.save_checkpoint
    kept = {}

    def save(path, iteration, *a):
        if iteration == 20:
            kept["sha"] = _sha(os.path.join(model, "chkpnt10.pth"))
            monkeypatch.setattr(torch, "save", _enospc)
        return real(path, iteration, *a)
    monkeypatch.setattr(trainer_mod, "save_checkpoint", save)
    with pytest.raises(SystemExit) as e:
        train.main(["-s", scene, "-m", model, *FLAGS])
    line = _one_line(capsys, e)
    assert "chkpnt20.pth" in line and "No space left on device" in line
    assert _sha(os.path.join(model, "chkpnt10.pth")) == kept["sha"]
    assert not os.path.exists(os.path.join(model, "chkpnt20.pth"))
    assert glob.glob(os.path.join(model, ".tmp_*")) == []


def test_training_log_enospc_names_the_log(tmp_path, monkeypatch):
    from scene.training_log import TrainingLog
    log = TrainingLog(str(tmp_path))
    log.add(iteration=1)
    monkeypatch.setattr("builtins.open", _enospc)
    with pytest.raises(UserError, match="training_log.csv: No space left on device"):
        log.flush()


@pytest.mark.parametrize("writer", ["render_png", "edit_png", "edit_npy", "edit_checkpoint",
                                    "edit_yaml", "ply", "json"])
def test_every_atomic_writer_names_its_file_and_leaves_nothing(tmp_path, monkeypatch, writer):
    """Render outputs and edit round artefacts go through the same atomic writer."""
    import numpy as np
    from PIL import Image
    import render
    from editing import artifacts
    from scene.ply_io import write_point_cloud
    from utils import io_utils
    from utils.image_utils import save_png
    target = tmp_path / "new_folder" / "deeper" / f"file_{writer}"
    monkeypatch.setattr(Image.Image, "save", _enospc)
    monkeypatch.setattr(np, "save", _enospc)
    monkeypatch.setattr(torch, "save", _enospc)
    real_open = open

    def open_enospc(path, mode="r", *a, **k):  # writes of text / PLY bytes
        if "w" in mode and os.path.basename(str(path)).startswith(".tmp_"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, mode, *a, **k)
    monkeypatch.setattr("builtins.open", open_enospc)
    img = torch.zeros(3, 4, 4)
    calls = {
        "render_png": lambda: render.save_png(img, str(target)),
        "edit_png": lambda: save_png(img, str(target)),
        "edit_npy": lambda: artifacts.save_npy(np.zeros(3), str(target)),
        "edit_checkpoint": lambda: io_utils.atomic_torch_save({"a": 1}, str(target)),
        "edit_yaml": lambda: artifacts.write_yaml(str(target), {"a": 1}),
        "ply": lambda: write_point_cloud(str(target), np.zeros((2, 3)), np.zeros((2, 3))),
        "json": lambda: io_utils.atomic_write_json(str(target), {"a": 1}),
    }
    with pytest.raises(UserError) as e:
        calls[writer]()
    assert str(target) in str(e.value) and "No space left on device" in str(e.value)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "new_folder").exists()  # the folders the save made are gone
