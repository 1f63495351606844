"""SIGKILL in the middle of a save, then resume: no temporary file is left, training_log.csv
is strictly increasing, and the final PLY is byte-identical to an uninterrupted run.

The kill lands inside the write: tests/kill_hook.py makes `os.replace` of the chosen file cut
the temporary file to half its size, announce itself and sleep, as a disk write does when the
process dies in the middle; the test then sends SIGKILL. (edit.py's case is in test_edit_e2e.)
"""
import csv
import filecmp
import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.demo_scenes import REPO, make_scene

pytestmark = pytest.mark.e2e

ITERS = 30
FLAGS = ["--iterations", str(ITERS), "--checkpoint_iterations", "10", "20",
         "--save_iterations", "10", "20", "--test_iterations", "99", "--densify_from_iter", "5",
         "--densification_interval", "5", "--densify_until_iter", "25",
         "--opacity_reset_interval", "15", "--quiet", "--no_tensorboard"]

HOOK = os.path.join(REPO, "tests", "kill_hook.py")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene") / "demo", views=6, width=40, height=30)


@pytest.fixture(scope="module")
def reference(scene, tmp_path_factory):
    """An uninterrupted run with the same flags."""
    import train
    m = str(tmp_path_factory.mktemp("ref") / "model")
    train.main(["-s", scene, "-m", m, *FLAGS])
    return m


def _final_ply(model):
    return os.path.join(model, "point_cloud", f"iteration_{ITERS}", "point_cloud.ply")


def kill_during_save(cli, target, marker, argv):
    """Run `cli` under tests/kill_hook.py; SIGKILL it while `target` is half written."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, HOOK, target, marker, cli, *argv], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not os.path.exists(marker):
        assert p.poll() is None, p.communicate()[1].decode()[-2000:]
        assert time.time() < deadline, "the save never started"
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    assert p.returncode == -signal.SIGKILL


def _temps(model):
    return glob.glob(os.path.join(model, "**", ".tmp_*"), recursive=True)


@pytest.mark.parametrize("target", [
    "chkpnt20.pth",  # the second checkpoint (the log was flushed to 20 just before it)
    os.path.join("iteration_20", "point_cloud.ply"),  # the PLY saved just before it
])
def test_sigkill_during_a_save_then_resume(scene, reference, tmp_path, target):
    import train
    model = str(tmp_path / "model")
    kill_during_save("train", target, str(tmp_path / "writing"),
                     ["-s", scene, "-m", model, *FLAGS])
    left = _temps(model)
    assert left and all(t.endswith(os.path.basename(target)) for t in left), left
    ckpt = os.path.join(model, "chkpnt10.pth")
    assert os.path.isfile(ckpt)
    assert not os.path.exists(os.path.join(model, "chkpnt20.pth"))

    train.main(["-s", scene, "-m", model, "--start_checkpoint", ckpt, *FLAGS])
    assert _temps(model) == []
    with open(os.path.join(model, "training_log.csv"), newline="") as f:
        iters = [int(r["iteration"]) for r in csv.DictReader(f)]
    assert iters == list(range(1, ITERS + 1))  # strictly increasing, none twice, none lost
    assert filecmp.cmp(_final_ply(reference), _final_ply(model), shallow=False)


def test_fresh_start_in_a_used_folder_restarts_the_log(scene, reference, tmp_path):
    """Without --start_checkpoint, a run into a folder that holds an old log starts it over."""
    import shutil
    import train
    model = str(tmp_path / "model")
    shutil.copytree(reference, model)
    open(os.path.join(model, ".tmp_abcd1234chkpnt10.pth"), "w").write("half")
    os.makedirs(os.path.join(model, "point_cloud", "iteration_77"))
    train.main(["-s", scene, "-m", model, "--iterations", "5", "--quiet", "--no_tensorboard",
                "--test_iterations", "99"])
    with open(os.path.join(model, "training_log.csv"), newline="") as f:
        iters = [int(r["iteration"]) for r in csv.DictReader(f)]
    assert iters == [1, 2, 3, 4, 5]
    assert _temps(model) == []
    assert not os.path.exists(os.path.join(model, "point_cloud", "iteration_77"))


def test_resume_past_iterations_or_other_sh_degree_is_refused(scene, reference, tmp_path,
                                                              capsys):
    import train
    ckpt = os.path.join(reference, "chkpnt20.pth")
    for extra, needles in ((["--iterations", "20"], ("--start_checkpoint", "--iterations 20")),
                           (["--iterations", "30", "--sh_degree", "1"],
                            ("--sh_degree 1", "SH degree 3"))):
        model = str(tmp_path / f"m{len(extra)}{extra[-1]}")
        with pytest.raises(SystemExit) as e:
            train.main(["-s", scene, "-m", model, "--start_checkpoint", ckpt, "--quiet",
                        "--no_tensorboard", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1, err
        assert all(n in err[0] for n in needles), err
        assert not os.path.exists(os.path.join(model, "training_log.csv"))
