"""SLURM submission of a batch (scripts/batch_runs.py --slurm): one array job per submission.

The sbatch script is kept as `<out>/slurm/batch_<job id>.sbatch` (one per submission, never
overwritten). Each array task runs batch_runs.py --task i on the compute node. #SBATCH values
are double-quoted, so an --out path with spaces works (sbatch strips the quotes).
"""
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SlurmError(Exception):
    """A flag or sbatch problem, reported by the caller as one line (exit status 2)."""


def add_flags(ap):
    """The SLURM flags of mipnerf360.sh (each needs --slurm)."""
    ap.add_argument("--partition", default="", help="SLURM partition")
    ap.add_argument("--account", default="", help="SLURM account to charge")
    ap.add_argument("--gres", default="gpu:1",
                    help="SLURM --gres of each task (default gpu:1; 'none' on a cluster "
                         "without GPUs)")
    ap.add_argument("--cpus_per_task", type=int, default=None,
                    help="SLURM --cpus-per-task; torch in each task uses that many threads")
    ap.add_argument("--time", default="", help="SLURM --time limit of each task, e.g. 12:00:00")
    ap.add_argument("--mem", default="", help="SLURM --mem of each task, e.g. 32G")
    ap.add_argument("--job_name", default="mipnerf360", help="SLURM job name")


SBATCH_OPTIONS = ("job_name", "partition", "account", "gres", "cpus_per_task", "time", "mem")


def check_flags(args):
    given = [o for o in SBATCH_OPTIONS
             if o not in ("job_name", "gres") and getattr(args, o) not in ("", None)]
    if given and not args.slurm:
        raise SlurmError(f"--{given[0]} needs --slurm")
    if args.cpus_per_task is not None and args.cpus_per_task < 1:
        raise SlurmError("--cpus_per_task must be at least 1")
    for o in SBATCH_OPTIONS + (("out",) if args.slurm else ()):
        value = str(getattr(args, o) or "")
        if '"' in value or "\n" in value or "\r" in value:
            raise SlurmError(f"--{o}: a double quote or a line break cannot go into an "
                             f"#SBATCH line: {value[:80]!r}")
    if not args.job_name.strip():
        raise SlurmError("--job_name is empty")


def array_spec(indices: list) -> str:
    """SLURM --array value: [0,1,2,5,7,8] -> "0-2,5,7-8"."""
    parts, start = [], None
    for i, idx in enumerate(indices):
        if start is None:
            start = idx
        if i + 1 == len(indices) or indices[i + 1] != idx + 1:
            parts.append(str(start) if start == idx else f"{start}-{idx}")
            start = None
    return ",".join(parts)


def directive(option: str, value) -> str:
    """`#SBATCH --option="value"`: sbatch reads a double-quoted value whole (spaces too)."""
    return f'#SBATCH --{option}="{value}"'


def slurm_script(jobs: list, todo: list, args) -> str:
    """One array job; task i runs job i through batch_runs.py (--task i), so a SLURM task
    does exactly what a local batch does for that run: skip if finished, log, run.json."""
    runner = [sys.executable, os.path.join(ROOT, "scripts", "batch_runs.py"),
              "--data", args.data, "--out", args.out, "--scenes", " ".join(args.scenes),
              "--variants", " ".join(args.variants)]
    # --iterations travels inside the extra train.py flags (or is the default).
    extra = shlex.join(["--", *args.extra]) if args.extra else ""
    submitted = {j.index for j in todo}
    lines = ["#!/bin/bash",
             directive("job-name", args.job_name),
             directive("array", array_spec([j.index for j in todo])),
             directive("output", os.path.join(args.out, "slurm", "%A_%a.log"))]
    for option, value in (("gres", "" if args.gres == "none" else args.gres),
                          ("partition", args.partition), ("account", args.account),
                          ("cpus-per-task", args.cpus_per_task or ""), ("time", args.time),
                          ("mem", args.mem)):
        if value != "":
            lines.append(directive(option, value))
    lines.append("# Task index -> (scene, variant); each task runs train.py, render.py, "
                 "metrics.py:")
    for j in jobs:
        mark = "" if j.index in submitted else "   (finished, not submitted)"
        lines.append(f"#   {j.index}: {j.name}{mark}")
        for _, argv in j.commands:
            lines.append(f"#       {shlex.join(argv)}")
    lines += ["set -euo pipefail",
              f"cd {shlex.quote(ROOT)}",
              f'exec {shlex.join(runner)} --task "$SLURM_ARRAY_TASK_ID" {extra}'.rstrip(),
              ""]
    return "\n".join(lines)


GRES_HINT = ("; on a cluster without GPUs pass --gres none (and --cpus_per_task N for the "
             "CPU rasterizer)")


def submit(jobs, todo, args, prog: str) -> int:
    if not todo:
        print(f"{prog}: all {len(jobs)} runs are finished; nothing to submit")
        return 0
    script = slurm_script(jobs, todo, args)
    if args.dry_run:
        print(script, end="")
        return 0
    folder = os.path.join(args.out, "slurm")
    # Named by time until sbatch gives the job id; earlier submissions' scripts are kept.
    path = os.path.join(folder, f"batch_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}.sbatch")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(path, "w") as f:
            f.write(script)
    except OSError as e:
        raise SlurmError(f"--out: cannot write {path}: {e.strerror}") from None
    try:
        r = subprocess.run(["sbatch", "--parsable", path], capture_output=True, text=True)
    except FileNotFoundError:
        raise SlurmError(f"--slurm: sbatch not found on PATH (the script is at {path}; "
                         "--dry_run prints it)") from None
    if r.returncode != 0:
        msg = " ".join((r.stderr or r.stdout).split())
        hint = GRES_HINT if "gres" in msg.lower() and args.gres != "none" else ""
        raise SlurmError(f"--slurm: sbatch {path} failed: {msg}{hint}")
    job_id = r.stdout.strip().split(";")[0]  # --parsable: "id" or "id;cluster"
    if job_id.isdigit():
        kept = os.path.join(folder, f"batch_{job_id}.sbatch")
        os.replace(path, kept)
        path = kept
    print(f"Submitted batch job {job_id}: {len(todo)} tasks, script {path}, logs in {folder}")
    return 0
