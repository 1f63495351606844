"""scripts/mipnerf360.sh + scripts/summarize.py on a dataset root of shared captures (symlinks):
a tiny CPU batch runs, a broken scene fails alone, a re-run skips finished runs, the tables
and plots hold the runs' numbers, and --slurm --dry_run prints a valid array script."""
import csv
import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from tests.demo_scenes import REPO, shared_scene

pytestmark = pytest.mark.captures

SCRIPT = os.path.join(REPO, "scripts", "mipnerf360.sh")
# Tiny runs: 30 iterations on images divided by 8 (fern 25x19, lego 50x50).
TINY = ["--", "--iterations", "30", "-r", "8"]
# Guided runs need train.py's --region_proposer (added with semantic/); else a random init.
HAS_GUIDED = "region_proposer" in open(os.path.join(REPO, "arguments", "__init__.py")).read()
SECOND = "guided" if HAS_GUIDED else "fastgs_random"


def batch(*args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable)
    env.pop("QWEN_MODEL_PATH", None)  # guided = the error-map proposer, no model
    return subprocess.run(["bash", SCRIPT, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    shared = shared_scene()
    root = tmp_path_factory.mktemp("mip") / "data"
    root.mkdir()
    for name in ("fern", "lego"):  # a COLMAP and a Blender scene
        (root / name).symlink_to(os.path.join(shared, name))
    broken = root / "broken"  # fern's images with a corrupt COLMAP model
    (broken / "sparse" / "0").mkdir(parents=True)
    (broken / "images_2").symlink_to(os.path.join(shared, "fern", "images_2"))
    (broken / "sparse" / "0" / "cameras.bin").write_bytes(b"\x00garbage" * 10)
    return root


@pytest.fixture(scope="module")
def batches(data):
    """Batch 1: fern, lego, broken x fastgs. Batch 2 (same --out): fern x fastgs + a second
    variant, so fern/fastgs must be skipped. Then summarize.py."""
    out = data.parent / "out"
    first = batch("--data", data, "--out", out, "--scenes", "fern lego broken",
                  "--variants", "fastgs", *TINY)
    results = out / "fern" / "fastgs" / "results.json"
    stamp = results.stat().st_mtime_ns if results.exists() else None
    second = batch("--data", data, "--out", out, "--scenes", "fern",
                   "--variants", f"fastgs {SECOND}", *TINY)
    summary = subprocess.run([sys.executable, "scripts/summarize.py", str(out)], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    return dict(out=out, first=first, second=second, summary=summary, stamp=stamp)


def test_broken_scene_fails_alone(batches):
    r, out = batches["first"], batches["out"]
    assert r.returncode == 1, r.stdout + r.stderr  # nonzero: one run failed
    lines = r.stdout.splitlines()
    assert any(re.search(r"fern/fastgs: ok", l) for l in lines), r.stdout
    assert any(re.search(r"lego/fastgs: ok", l) for l in lines), r.stdout
    failed = [l for l in lines if "broken/fastgs: FAILED" in l]
    assert len(failed) == 1 and "train.py" in failed[0] and "sparse" in failed[0], r.stdout
    assert "2 of 3 runs finished (0 earlier), 1 failed" in r.stdout
    status = json.loads((out / "broken" / "fastgs" / "run.json").read_text())
    assert status["status"] == "failed" and status["failed"] == "train.py"
    assert (out / "broken" / "fastgs" / "run.log").read_text().count("$ ") == 1
    # Scene flags: COLMAP on images_2, Blender with a white background and no -i.
    cmds = {s: json.loads((out / s / "fastgs" / "run.json").read_text())["commands"][0]
            for s in ("fern", "lego")}
    assert "-i images_2" in cmds["fern"] and "--eval" in cmds["fern"]
    assert "--white_background" in cmds["lego"] and " -i " not in cmds["lego"]


def test_rerun_skips_finished_runs(batches):
    r = batches["second"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fern/fastgs: skipped" in r.stdout
    assert f"fern/{SECOND}: ok" in r.stdout
    assert "2 of 2 runs finished (1 earlier), 0 failed" in r.stdout
    results = batches["out"] / "fern" / "fastgs" / "results.json"
    assert results.stat().st_mtime_ns == batches["stamp"]  # untouched


def test_summary_tables_hold_the_runs_numbers(batches):
    r, out = batches["summary"], batches["out"]
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {(row["scene"], row["variant"]): row
            for row in csv.DictReader(open(out / "summary.csv"))}
    for scene, variant in (("fern", "fastgs"), ("lego", "fastgs"), ("fern", SECOND)):
        run = out / scene / variant
        row = rows[(scene, variant)]
        res = json.loads((run / "results.json").read_text())["ours_30"]
        assert row["status"] == "done" and row["iteration"] == "30"
        assert float(row["psnr"]) == pytest.approx(res["PSNR"])
        assert float(row["ssim"]) == pytest.approx(res["SSIM"])
        ply = (run / "point_cloud" / "iteration_30" / "point_cloud.ply").read_bytes()[:2000]
        assert f"element vertex {row['gaussians']}\n".encode() in ply
        last = list(csv.DictReader(open(run / "training_log.csv")))[-1]
        assert float(row["train_s"]) == pytest.approx(float(last["elapsed_s"]))
        # The Markdown table (printed and in summary.md) shows the same PSNR.
        md_row = f"| {scene} | {variant} | {res['PSNR']:.2f} |"
        assert md_row in r.stdout and md_row in (out / "summary.md").read_text()
    assert rows[("broken", "fastgs")]["status"] == "failed"
    assert "broken/fastgs: failed" in r.stdout
    # Means over scenes: fastgs finished on 2 of the 3 scenes.
    mean = rows[("mean (2/3)", "fastgs")]
    want = (float(rows[("fern", "fastgs")]["psnr"]) + float(rows[("lego", "fastgs")]["psnr"])) / 2
    assert float(mean["psnr"]) == pytest.approx(want)


def test_loss_plots_hold_the_curves(batches):
    out = batches["out"]
    with Image.open(out / "loss_fern.png") as im:
        assert im.size[0] > 500 and im.size[1] > 300
        info = json.loads(im.text["Description"])
    assert set(info["curves"]) == {"fastgs", SECOND}
    for variant, curve in info["curves"].items():
        log = list(csv.DictReader(open(out / "fern" / variant / "training_log.csv")))
        assert curve["points"] == len(log) == 30 and curve["last_iteration"] == 30
        assert curve["final_loss"] == pytest.approx(float(log[-1]["loss"]))
    assert info["windows"][0] == ["whole run", 1, 30]
    if HAS_GUIDED:  # phase bands from the guided run's log, one zoom per phase + refinement
        names = [b[0] for b in info["bands"]]
        assert names == ["phase1", "phase2", "phase3", "refine"]
        assert len(info["windows"]) == 5 and info["windows"][-1][0] == "final refinement"
    assert (out / "loss_lego.png").is_file()
    assert not (out / "loss_broken.png").exists()  # no training log, no plot


def test_slurm_dry_run_is_a_valid_array_script(data, batches, tmp_path):
    r = batch("--data", data, "--out", tmp_path / "fresh", "--scenes", "fern lego",
              "--variants", "fastgs 3dgs", "--slurm", "--partition", "debug", "--dry_run", *TINY)
    assert r.returncode == 0, r.stderr
    script = tmp_path / "job.sbatch"
    script.write_text(r.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert '#SBATCH --array="0-3"\n' in r.stdout and '#SBATCH --partition="debug"\n' in r.stdout
    assert r.stdout.count("train.py -s ") == 4
    assert not (tmp_path / "fresh").exists()  # a dry run writes nothing
    # Finished runs are left out of the array; a task runs the same runner as a local batch.
    r = batch("--data", data, "--out", batches["out"], "--scenes", "fern lego",
              "--variants", "fastgs 3dgs", "--slurm", "--dry_run", "--gres", "none", *TINY)
    assert '#SBATCH --array="1,3"\n' in r.stdout and "--gres" not in r.stdout
    script.write_text(r.stdout)
    task = subprocess.run(["bash", str(script)], env=dict(os.environ, SLURM_ARRAY_TASK_ID="0"),
                          capture_output=True, text=True, timeout=120)
    assert task.returncode == 0 and "fern/fastgs: skipped" in task.stdout, task.stdout


@pytest.mark.parametrize("flags, names", [
    (["--data", "/nonexistent/360_v2"], "--data"),
    (["--variants", "fastgs nope"], "--variants"),
    (["--scenes", "fern garden"], "--scenes"),
])
def test_bad_input_is_one_line(data, tmp_path, flags, names):
    args = ["--data", data, "--out", tmp_path / "o", "--scenes", "fern"] + flags
    r = batch(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and names in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def _runner():
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    try:
        import batch_runs
    finally:
        sys.path.pop(0)
    return batch_runs


@pytest.mark.unit
def test_gpu_queue_runs_one_job_per_gpu(tmp_path, monkeypatch, capsys):
    """--gpus 0,1: five runs share two GPUs, never two at once on one GPU; finished runs are
    skipped without taking a GPU. (run_job is replaced by a recorder: no training here.)"""
    import threading
    import time

    br = _runner()
    busy, seen, lock = {}, [], threading.Lock()

    def fake_run_job(job, env):
        gpu = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            assert gpu not in busy, f"{job.name} and {busy.get(gpu)} share GPU {gpu}"
            busy[gpu] = job.name
            seen.append((job.name, gpu))
        time.sleep(0.05)
        with lock:
            del busy[gpu]
        return {"status": "failed" if job.scene == "s3" else "done", "train_s": 1.0,
                "total_s": 1.0, "failed": "train.py", "error": "boom"}

    monkeypatch.setattr(br, "run_job", fake_run_job)
    jobs = [br.Job(i, f"s{i}", "fastgs", str(tmp_path / f"s{i}"), 30) for i in range(6)]
    (tmp_path / "s5").mkdir()
    (tmp_path / "s5" / "results.json").write_text('{"ours_30": {"PSNR": 1}}')  # finished
    counts = br.run_local(jobs, ["0", "1"], {}, len(jobs))
    assert counts == {"done": 4, "skipped": 1, "failed": 1}
    assert sorted(n for n, _ in seen) == [f"s{i}/fastgs" for i in range(5)]
    assert {g for _, g in seen} == {"0", "1"}
    out = capsys.readouterr().out
    assert "s5/fastgs: skipped" in out and "s3/fastgs: FAILED in train.py" in out


@pytest.mark.unit
def test_array_spec():
    br = _runner()
    assert br.array_spec([0, 1, 2, 3]) == "0-3"
    assert br.array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert br.array_spec([4]) == "4"


# ------------------------------------------------------------------ SLURM submission (fake sbatch)

FAKE_SBATCH = """#!/bin/bash
# Records each submission; checks every #SBATCH line is one option with one (quoted) value, as
# sbatch reads it; fails like sbatch on a GPU-less cluster when FAKE_NO_GPUS is set.
script="${@: -1}"
echo "$@" >> "$SBATCH_CALLS"
python3 - "$script" <<'PY' || exit 1
import shlex, sys
for line in open(sys.argv[1]):
    if line.startswith("#SBATCH "):
        words = shlex.split(line[len("#SBATCH "):])
        assert len(words) == 1 and words[0].startswith("--") and "=" in words[0], line
PY
if [ -n "${FAKE_NO_GPUS:-}" ] && grep -q -- "--gres" "$script"; then
  echo "sbatch: error: Invalid generic resource (gres) specification" >&2; exit 1
fi
n=$(wc -l < "$SBATCH_CALLS"); echo "$((4000 + n))"
"""


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    data = tmp_path / "my data"
    (data / "fern").mkdir(parents=True)
    (data / "lego").mkdir()
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               SBATCH_CALLS=str(tmp_path / "calls"), PYTHON=sys.executable)

    def submit(*args, **extra_env):
        return subprocess.run(["bash", SCRIPT, "--data", data, *map(str, args)], cwd=REPO,
                              env=dict(env, **extra_env), capture_output=True, text=True,
                              timeout=120)
    return submit, tmp_path


@pytest.mark.e2e
def test_slurm_out_with_spaces_new_flags_and_one_script_per_submission(fake_slurm):
    submit, tmp = fake_slurm
    out = tmp / "runs with space" / "ablation 1"
    flags = ["--out", out, "--scenes", "fern lego", "--variants", "fastgs", "--slurm",
             "--partition", "my part", "--job_name", "abl 1", "--account", "proj-7",
             "--cpus_per_task", "8", "--time", "12:00:00", "--mem", "32G", *TINY]
    for n in (1, 2):
        r = submit(*flags)
        assert r.returncode == 0, r.stderr
        assert f"Submitted batch job {4000 + n}" in r.stdout
    scripts = sorted(os.listdir(out / "slurm"))
    assert scripts == ["batch_4001.sbatch", "batch_4002.sbatch"]  # none overwritten
    text = (out / "slurm" / "batch_4001.sbatch").read_text()
    for line in ('#SBATCH --job-name="abl 1"', '#SBATCH --partition="my part"',
                 f'#SBATCH --output="{out}/slurm/%A_%a.log"', '#SBATCH --account="proj-7"',
                 '#SBATCH --cpus-per-task="8"', '#SBATCH --time="12:00:00"',
                 '#SBATCH --mem="32G"', '#SBATCH --gres="gpu:1"', '#SBATCH --array="0-1"'):
        assert line + "\n" in text, line
    assert subprocess.run(["bash", "-n", str(out / "slurm" / "batch_4001.sbatch")]).returncode == 0


@pytest.mark.e2e
def test_slurm_without_gpus_says_to_pass_gres_none(fake_slurm):
    submit, tmp = fake_slurm
    args = ["--out", tmp / "o", "--scenes", "fern", "--variants", "fastgs", "--slurm", *TINY]
    r = submit(*args, FAKE_NO_GPUS="1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "gres" in r.stderr and "--gres none" in r.stderr
    r = submit(*args[:-len(TINY)], "--gres", "none", *TINY, FAKE_NO_GPUS="1")
    assert r.returncode == 0, r.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("flags, name", [
    (["--cpus_per_task", "4"], "--cpus_per_task needs --slurm"),
    (["--mem", "8G"], "--mem needs --slurm"),
    (["--slurm", "--cpus_per_task", "0"], "--cpus_per_task"),
    (["--slurm", "--job_name", 'a"b'], "--job_name"),
])
def test_bad_slurm_flags_are_one_line(fake_slurm, flags, name):
    submit, tmp = fake_slurm
    r = submit("--out", tmp / "o", "--scenes", "fern", *flags)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and name in r.stderr, r.stderr


@pytest.mark.unit
def test_slurm_task_threads_follow_cpus_per_task():
    br = _runner()
    assert br.task_env({"SLURM_CPUS_PER_TASK": "6"})["OMP_NUM_THREADS"] == "6"
    assert br.task_env({"SLURM_CPUS_PER_TASK": "6", "OMP_NUM_THREADS": "2"})[
        "OMP_NUM_THREADS"] == "2"  # a user's own setting wins
    assert "OMP_NUM_THREADS" not in br.task_env({})
