"""Train, render and score shared captures; print one markdown table row per run.

Each run is `train.py` + `render.py --skip_train` + `metrics.py` in subprocesses, exactly as a
user would type them, so the numbers include everything a user waits for in training.

    python bench/bench_scenes.py --out bench_out --iterations 3000 \
        --scenes juicebox_table beer_can fern lego [--extra "--strategy 3dgs"] [--threads 2]

Scene flags: COLMAP captures use `-i images_2 --eval` (`--images` changes the folder); lego uses `--white_background --eval`
(its test split comes from transforms_test.json) and `-r 2` (200x200) unless --lego_full.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = os.path.join(os.path.dirname(ROOT), "shared", "scenes")


def scene_flags(name: str, args):
    if name == "lego":
        return ["--white_background", "--eval"] + ([] if args.lego_full else ["-r", "2"])
    return ["-i", args.images, "--eval"]


def run(cmd, env, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        f.flush()
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)


def gaussians_in(ply: str) -> int:
    with open(ply, "rb") as f:
        head = f.read(4096).decode("ascii", "replace")
    return int(re.search(r"element vertex (\d+)", head).group(1))


def bench_one(name, args, env):
    out = os.path.join(os.path.abspath(args.out), name + args.tag)
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "bench.log")
    py = sys.executable
    train = [py, "train.py", "-s", os.path.join(args.scenes_dir, name), "-m", out,
             "--iterations", str(args.iterations), "--test_iterations", str(args.iterations),
             "--save_iterations", str(args.iterations), "--seed", str(args.seed), "--quiet",
             "--no_tensorboard"] + scene_flags(name, args) + shlex.split(args.extra)
    t0 = time.perf_counter()
    run(train, env, log)
    wall = time.perf_counter() - t0
    run([py, "render.py", "-m", out, "--skip_train", "--quiet"], env, log)
    run([py, "metrics.py", "-m", out], env, log)
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)[f"ours_{args.iterations}"]
    n = gaussians_in(os.path.join(out, "point_cloud", f"iteration_{args.iterations}",
                                  "point_cloud.ply"))
    return dict(psnr=res["PSNR"], ssim=res["SSIM"], lpips=res.get("LPIPS"), gaussians=n,
                wall=wall, coverage=res.get("Coverage"))


def thread_env(threads: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(threads))


def run_env(args) -> dict:
    """The environment of the benchmark's runs; exits with one line if there are no scenes."""
    if not os.path.isdir(args.scenes_dir):
        sys.exit(f"--scenes_dir: {args.scenes_dir} does not exist")
    return thread_env(args.threads)


def add_run_args(ap, scenes, threads: int = 2):
    """The flags every scene benchmark shares (output, scenes, iterations, seed, threads...)."""
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--scenes", nargs="+", default=scenes)
    ap.add_argument("--scenes_dir", default=SCENES)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--extra", default="", help="more train.py flags for every run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--images", default="images_2", help="image folder of COLMAP scenes")
    ap.add_argument("--lego_full", action="store_true", help="lego at 400x400 instead of 200x200")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--scenes", nargs="+", default=["juicebox_table", "beer_can", "fern", "lego"])
    ap.add_argument("--scenes_dir", default=SCENES)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--extra", default="", help="more train.py flags, e.g. '--strategy 3dgs'")
    ap.add_argument("--tag", default="", help="suffix of each run's output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", default="images_2", help="image folder of COLMAP scenes")
    ap.add_argument("--lego_full", action="store_true", help="lego at 400x400 instead of 200x200")
    args = ap.parse_args()
    if not os.path.isdir(args.scenes_dir):
        sys.exit(f"bench_scenes.py: scenes folder not found: {args.scenes_dir}")
    env = thread_env(args.threads)
    print("| scene | flags | iterations | test PSNR | SSIM | LPIPS | Gaussians | train wall (s) |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.scenes:
        r = bench_one(name, args, env)
        lp = "n/a" if r["lpips"] is None else f"{r['lpips']:.4f}"
        print(f"| {name} | {args.extra or '-'} | {args.iterations} | {r['psnr']:.2f} | "
              f"{r['ssim']:.4f} | {lp} | {r['gaussians']} | {r['wall']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
