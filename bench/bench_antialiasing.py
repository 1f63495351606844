"""`--antialiasing` on and off on a shared capture, scored at the training resolution and
rendered smaller (`render.py -r 2`, `-r 4` on the same models: the zoom-out case the 2D mip
filter is for); one markdown table.

    python bench/bench_antialiasing.py --out bench_out/aa [--scene juicebox_table] \
        [--iterations 3000] [--threads 1]

Runs `<out>/noaa` and `<out>/aa` (trained in parallel unless already there); render.py
overwrites `test/ours_N/` at each resolution, so metrics.py runs right after each render.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = os.path.join(os.path.dirname(ROOT), "shared", "scenes")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out/aa")
    ap.add_argument("--scene", default="juicebox_table")
    ap.add_argument("--scenes_dir", default=SCENES)
    ap.add_argument("--images", default="images_2")
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--resolutions", nargs="+", default=["-1", "2", "4"],
                    help="render.py -r values (-1 = as trained)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    py, env = sys.executable, dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    it = args.iterations
    models = {"noaa": [], "aa": ["--antialiasing"]}
    procs = []
    for name, extra in models.items():
        m = os.path.join(out, name)
        if os.path.isfile(os.path.join(m, "point_cloud", f"iteration_{it}", "point_cloud.ply")):
            continue
        cmd = [py, "train.py", "-s", os.path.join(args.scenes_dir, args.scene), "-m", m, "-i",
               args.images, "--eval", "--iterations", str(it), "--test_iterations", str(it),
               "--save_iterations", str(it), "--seed", str(args.seed), "--quiet",
               "--no_tensorboard", *extra]
        os.makedirs(out, exist_ok=True)
        procs.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(m + ".log", "w"),
                                             stderr=subprocess.STDOUT)))
    for name, p in procs:
        if p.wait() != 0:
            sys.exit(f"training {name} failed: see {os.path.join(out, name)}.log")
    table = {}
    for name in models:
        m = os.path.join(out, name)
        for r in args.resolutions:
            subprocess.run([py, "render.py", "-m", m, "--skip_train", "--quiet", "-r", r],
                           check=True, cwd=ROOT, env=env)
            subprocess.run([py, "metrics.py", "-m", m], check=True, cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL)
            res = json.load(open(os.path.join(m, "results.json")))[f"ours_{it}"]
            table[name, r] = (res["PSNR"], res["SSIM"])
    print(f"| {args.scene} ({args.images}, {it} it), test views | "
          + " | ".join(f"PSNR / SSIM at -r {r}" for r in args.resolutions) + " |")
    print("|---|" + "---|" * len(args.resolutions))
    for name in models:
        print(f"| {'--antialiasing' if name == 'aa' else 'without'} | "
              + " | ".join(f"{table[name, r][0]:.2f} / {table[name, r][1]:.4f}"
                           for r in args.resolutions) + " |")


if __name__ == "__main__":
    main()
