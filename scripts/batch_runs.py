"""Runner behind scripts/mipnerf360.sh: train -> render -> metrics for every (scene, variant).

    bash scripts/mipnerf360.sh --data /data/360_v2 --out runs/ablation1 [--scenes "garden bonsai"]
        [--variants "fastgs guided"] [--gpus 0,1 | --jobs N]
        [--slurm [--partition p] [--account a] [--gres gpu:1|none] [--cpus_per_task N]
                 [--time 12:00:00] [--mem 32G] [--job_name name]]
        [--dry_run] [-- <extra train.py flags>]

Each run lives in <out>/<scene>/<variant>/ (the reference output layout plus run.log with the
three commands' output and run.json with the run's status and timings). A run whose
results.json holds ours_<iterations> is finished and skipped, so a batch can be re-run after an
interruption or a failure. A failed run is reported and the batch goes on; the exit status is
0 only when every run succeeded (or was already finished), 1 otherwise, 2 for bad flags.

Inside a SLURM allocation (SLURM_CPUS_PER_TASK set) each command gets OMP_NUM_THREADS of that
value unless it is set already, so torch uses the CPUs the task was given, not every core.

This file imports nothing heavy (no torch): it only builds command lines and schedules them.
SLURM submission lives in scripts/slurm_submit.py.
"""
import argparse
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from slurm_submit import (SlurmError, add_flags as add_slurm_flags, array_spec,  # noqa: F401
                          check_flags, submit)

PROG = "mipnerf360.sh"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The reference codebase trains the outdoor scenes on images_4 and the indoor ones on images_2.
OUTDOOR = ("bicycle", "flowers", "garden", "stump", "treehill")
INDOOR = ("room", "counter", "kitchen", "bonsai")
MIPNERF360 = OUTDOOR + INDOOR

# Named flag sets of the ablations. "guided" is filled in by variant_flags(): it depends on
# whether a Qwen3-VL model is configured.
VARIANTS = {
    "fastgs": ["--strategy", "fastgs"],
    "fastgs_random": ["--strategy", "fastgs", "--random_init", "100"],
    "guided": ["--strategy", "fastgs", "--random_init", "100"],
    "3dgs": ["--strategy", "3dgs"],
    "3dgs_random": ["--strategy", "3dgs", "--random_init", "100"],
}
DEFAULT_VARIANTS = ("fastgs", "fastgs_random", "guided", "3dgs")
DEFAULT_ITERATIONS = 30_000  # train.py's default, as the reference

# Files a previous, unfinished attempt may have left that would mix with a new attempt's:
# training_log.csv is appended to, results.json / per_view.json are merged into.
STALE = ("training_log.csv", "results.json", "per_view.json", "run.json")


class UserError(Exception):
    """Bad flags or paths: reported as one line, exit status 2."""


def variant_flags(name: str) -> list:
    flags = list(VARIANTS[name])
    if name == "guided":
        # The method proper uses Qwen3-VL; without a model the error-map proposer stands in.
        qwen = os.environ.get("QWEN_MODEL_PATH", "")
        flags += (["--region_proposer", "qwen", "--qwen_model_path", qwen] if qwen
                  else ["--region_proposer", "error"])
    return flags


def scene_flags(name: str, folder: str) -> list:
    """Image folder / background of a scene, as the reference's full_eval.py."""
    if name in OUTDOOR:
        return ["-i", "images_4"]
    if name in INDOOR:
        return ["-i", "images_2"]
    if os.path.isfile(os.path.join(folder, "transforms_train.json")):
        return ["--white_background"]  # Blender / NeRF-synthetic: no image folder flag
    # Other COLMAP captures: half resolution like the indoor scenes, full size if that is all.
    return ["-i", "images_2" if os.path.isdir(os.path.join(folder, "images_2")) else "images"]


@dataclass
class Job:
    index: int
    scene: str
    variant: str
    run_dir: str
    iteration: int
    commands: list = field(default_factory=list)  # [(tool name, argv)], run in order

    @property
    def name(self):
        return f"{self.scene}/{self.variant}"


def build_jobs(args) -> list:
    py = sys.executable
    jobs = []
    for scene in args.scenes:
        src = os.path.join(args.data, scene)
        for variant in args.variants:
            run_dir = os.path.join(args.out, scene, variant)
            it = str(args.iterations)
            # --test_iterations -1: no evaluation during training (the batch scores at the end),
            # as the reference's full_eval.py. The user's extra flags come last and so win.
            train = ([py, "train.py", "-s", src, "-m", run_dir, "--eval"]
                     + scene_flags(scene, src) + variant_flags(variant)
                     + ([] if args.iterations_given else ["--iterations", it])
                     + ["--test_iterations", "-1", "--save_iterations", it, "--quiet"]
                     + args.extra)
            render = [py, "render.py", "-m", run_dir, "--iteration", it, "--skip_train",
                      "--quiet"]
            metrics = [py, "metrics.py", "-m", run_dir, "--iteration", it]
            jobs.append(Job(len(jobs), scene, variant, run_dir, args.iterations,
                            [("train.py", train), ("render.py", render),
                             ("metrics.py", metrics)]))
    return jobs


def is_finished(job: Job) -> bool:
    """Finished = metrics.py wrote this run's iteration (it writes results.json atomically)."""
    try:
        with open(os.path.join(job.run_dir, "results.json")) as f:
            return f"ours_{job.iteration}" in json.load(f)
    except (OSError, ValueError):
        return False


def write_json(path: str, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f.read()[-20000:].splitlines() if l.strip()]
    except OSError:
        return ""
    # tqdm bars redraw with \r; the last segment is what the terminal showed.
    return lines[-1].split("\r")[-1] if lines else ""


def run_job(job: Job, env: dict) -> dict:
    """Run one (scene, variant) to the end or to its first failing command."""
    os.makedirs(job.run_dir, exist_ok=True)
    for name in STALE:
        try:
            os.remove(os.path.join(job.run_dir, name))
        except FileNotFoundError:
            pass
    log_path = os.path.join(job.run_dir, "run.log")
    status = {"scene": job.scene, "variant": job.variant, "iteration": job.iteration,
              "commands": [shlex.join(argv) for _, argv in job.commands],
              "gpu": env.get("CUDA_VISIBLE_DEVICES"), "status": "running"}
    write_json(os.path.join(job.run_dir, "run.json"), status)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        for tool, argv in job.commands:
            log.write(f"$ {shlex.join(argv)}\n")
            log.flush()
            t = time.perf_counter()
            rc = subprocess.run(argv, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT).returncode
            status[f"{tool[:-3]}_s"] = round(time.perf_counter() - t, 2)
            if rc != 0:
                status.update(status="failed", failed=tool, returncode=rc)
                break
    status["total_s"] = round(time.perf_counter() - t0, 2)
    if status["status"] == "running":  # every command exited 0
        if is_finished(job):
            status["status"] = "done"
        else:
            status.update(status="failed", failed="metrics.py (no results.json entry)")
    if status["status"] == "failed":
        status["error"] = last_line(log_path)
    write_json(os.path.join(job.run_dir, "run.json"), status)
    return status


def report(job: Job, status: dict, total: int) -> str:
    head = f"[{job.index + 1}/{total}] {job.name}"
    if status["status"] == "skipped":
        return f"{head}: skipped, finished earlier (results.json has ours_{job.iteration})"
    if status["status"] == "done":
        return (f"{head}: ok, train {status['train_s']:.0f} s, total {status['total_s']:.0f} s"
                f" ({job.run_dir})")
    return (f"{head}: FAILED in {status['failed']} (exit {status.get('returncode', '?')}): "
            f"{status.get('error') or 'no output'} (log: {os.path.join(job.run_dir, 'run.log')})")


def run_local(jobs: list, slots: list, env: dict, total: int) -> int:
    """Run the jobs, one per slot at a time. A slot is a CUDA_VISIBLE_DEVICES value (--gpus)
    or None (--jobs: the environment as it is). Returns the number of runs per status."""
    free = queue.Queue()
    for s in slots:
        free.put(s)
    lock, stop = threading.Lock(), threading.Event()
    counts = {"done": 0, "skipped": 0, "failed": 0}

    def one(job):
        if is_finished(job):
            status = {"status": "skipped"}
        else:
            slot = free.get()  # blocks until a GPU (or a --jobs slot) is free
            try:
                if stop.is_set():  # Ctrl-C: start nothing new
                    return
                job_env = dict(env) if slot is None else dict(env, CUDA_VISIBLE_DEVICES=slot)
                with lock:
                    where = "" if slot is None else f" on GPU {slot}"
                    print(f"[{job.index + 1}/{total}] {job.name}: started{where}", flush=True)
                try:
                    status = run_job(job, job_env)
                except OSError as e:  # e.g. an unwritable run folder: this run fails alone
                    status = {"status": "failed", "failed": "setup", "error": str(e)}
            finally:
                free.put(slot)
        with lock:
            counts[status["status"]] += 1
            print(report(job, status, total), flush=True)

    pool = ThreadPoolExecutor(max_workers=len(slots))
    futures = [pool.submit(one, j) for j in jobs]
    try:
        for f in futures:
            f.result()
    except KeyboardInterrupt:
        # The running commands got the terminal's SIGINT too; let them end, queue no more.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return counts


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise UserError(message)


def parse_args(argv: list):
    # Everything after the first "--" is passed to train.py untouched.
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = _Parser(prog=PROG, description="Train, render and score scenes x variants.")
    ap.add_argument("--data", required=True, help="folder holding one folder per scene")
    ap.add_argument("--out", required=True, help="batch output folder: <out>/<scene>/<variant>/")
    ap.add_argument("--scenes", default=" ".join(MIPNERF360),
                    help="space-separated scene folder names (default: the 9 Mip-NeRF 360 scenes)")
    ap.add_argument("--variants", default=" ".join(DEFAULT_VARIANTS),
                    help=f"space-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--gpus", default="", help="comma-separated GPU ids: one run per GPU at a time")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time without --gpus")
    ap.add_argument("--slurm", action="store_true", help="submit one SLURM array job instead")
    add_slurm_flags(ap)
    ap.add_argument("--dry_run", action="store_true",
                    help="print the commands (or the sbatch script) and run nothing")
    ap.add_argument("--task", type=int, default=None, help=argparse.SUPPRESS)  # one SLURM task
    args = ap.parse_args(argv)
    args.extra = extra
    args.scenes = args.scenes.split()
    args.variants = args.variants.split()
    args.gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
    # The iteration count decides what "finished" means, so read it from the train.py flags.
    it = argparse.ArgumentParser(add_help=False)
    it.add_argument("--iterations", type=int, default=None)
    args.iterations = it.parse_known_args(extra)[0].iterations
    args.iterations_given = args.iterations is not None
    if not args.iterations_given:
        args.iterations = DEFAULT_ITERATIONS
    check_args(args)
    args.data, args.out = os.path.abspath(args.data), os.path.abspath(args.out)
    return args


def check_args(args):
    if not os.path.isdir(args.data):
        raise UserError(f"--data: folder not found: {args.data}")
    if not args.variants:
        raise UserError("--variants: no variant given")
    for v in args.variants:
        if v not in VARIANTS:
            raise UserError(f"--variants: unknown variant {v!r} (known: {', '.join(VARIANTS)})")
    if not args.scenes:
        raise UserError("--scenes: no scene given")
    for s in args.scenes:
        if not os.path.isdir(os.path.join(args.data, s)):
            raise UserError(f"--scenes: no folder {os.path.join(args.data, s)} "
                            f"(pick scenes with --scenes \"a b\")")
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    if args.gpus and args.jobs != 1:
        raise UserError("--jobs and --gpus exclude each other (--gpus runs one job per GPU)")
    if args.iterations < 1:
        raise UserError("--iterations (after --) must be at least 1")
    check_flags(args)
    if args.slurm and (args.gpus or args.jobs != 1):
        raise UserError("--slurm schedules the runs itself: drop --gpus / --jobs")


def task_env(environ) -> dict:
    """The commands' environment: a SLURM task's CPU count bounds torch's threads."""
    env = dict(environ)
    cpus = env.get("SLURM_CPUS_PER_TASK", "")
    if cpus.isdigit() and int(cpus) > 0 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = cpus
    return env


def dry_run_local(jobs, slots):
    where = (f"one at a time on each of GPUs {','.join(slots)}" if slots[0] is not None
             else f"{len(slots)} at a time")
    print(f"# {len(jobs)} runs, {where}")
    for j in jobs:
        if is_finished(j):
            print(f"# {j.index + 1}. {j.name}: finished, would be skipped")
            continue
        print(f"# {j.index + 1}. {j.name} -> {j.run_dir}/run.log")
        for _, argv in j.commands:
            print(shlex.join(argv))


def main(argv: list) -> int:
    try:
        args = parse_args(argv)
        jobs = build_jobs(args)
        if args.task is not None:  # inside a SLURM array task: run that one job here
            if not 0 <= args.task < len(jobs):
                raise UserError(f"--task {args.task} is outside 0..{len(jobs) - 1}")
            jobs = [jobs[args.task]]
        if args.slurm:
            return submit(jobs, [j for j in jobs if not is_finished(j)], args, PROG)
    except (UserError, SlurmError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    slots = args.gpus or [None] * args.jobs
    if args.dry_run:
        dry_run_local(jobs, slots)
        return 0
    total = len(build_jobs(args)) if args.task is not None else len(jobs)
    t0 = time.perf_counter()
    try:
        counts = run_local(jobs, slots, task_env(os.environ), total)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    print(f"{PROG}: {len(jobs) - counts['failed']} of {len(jobs)} runs finished "
          f"({counts['skipped']} earlier), {counts['failed']} failed, in "
          f"{time.perf_counter() - t0:.0f} s; summary: python scripts/summarize.py "
          f"{shlex.quote(args.out)}", flush=True)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
