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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "scenes")
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
    if not os.path.isdir(SHARED):
        pytest.skip(f"shared captures not found at {SHARED} (a user's clone; CI has them)")
    root = tmp_path_factory.mktemp("mip") / "data"
    root.mkdir()
    for name in ("fern", "lego"):  # a COLMAP and a Blender scene
        (root / name).symlink_to(os.path.join(SHARED, name))
    broken = root / "broken"  # fern's images with a corrupt COLMAP model
    (broken / "sparse" / "0").mkdir(parents=True)
    (broken / "images_2").symlink_to(os.path.join(SHARED, "fern", "images_2"))
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
    assert "#SBATCH --array=0-3\n" in r.stdout and "#SBATCH --partition=debug\n" in r.stdout
    assert r.stdout.count("train.py -s ") == 4
    assert not (tmp_path / "fresh").exists()  # a dry run writes nothing
    # Finished runs are left out of the array; a task runs the same runner as a local batch.
    r = batch("--data", data, "--out", batches["out"], "--scenes", "fern lego",
              "--variants", "fastgs 3dgs", "--slurm", "--dry_run", "--gres", "none", *TINY)
    assert "#SBATCH --array=1,3\n" in r.stdout and "--gres" not in r.stdout
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


def test_array_spec():
    br = _runner()
    assert br.array_spec([0, 1, 2, 3]) == "0-3"
    assert br.array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert br.array_spec([4]) == "4"
