"""Default Adam vs --optimizer_type sparse_adam: same scenes, iterations, seed and machine;
prints one markdown table (training seconds per iteration, test PSNR, SSIM, Gaussians).

Each run is bench_scenes.py's train + render + metrics into `<out>/<scene>_<optimizer>`;
seconds per iteration are the training loop's own clock (training_log.csv elapsed_s at the
last iteration over the iterations), so scene loading is not counted.

    OMP_NUM_THREADS=1 python bench/bench_optimizers.py --out bench_out --iterations 3000 \
        --scenes juicebox_table beer_can
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_scenes import SCENES, bench_one, thread_env  # noqa: E402

OPTIMIZERS = ("default", "sparse_adam")


def seconds_per_iteration(model_dir: str) -> float:
    with open(os.path.join(model_dir, "training_log.csv")) as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["elapsed_s"]) / int(rows[-1]["iteration"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--scenes", nargs="+", default=["juicebox_table", "beer_can"])
    ap.add_argument("--scenes_dir", default=SCENES)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--extra", default="", help="more train.py flags for every run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", default="images_2", help="image folder of COLMAP scenes")
    ap.add_argument("--lego_full", action="store_true")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.scenes_dir):
        sys.exit(f"--scenes_dir: {args.scenes_dir} does not exist")
    env = thread_env(args.threads)
    print("| scene | optimizer | iterations | s/it | test PSNR | SSIM | Gaussians |")
    print("|---|---|---|---|---|---|---|")
    base_extra = args.extra
    for name in args.scenes:
        for kind in OPTIMIZERS:
            args.tag = f"_{kind}"
            args.extra = f"--optimizer_type {kind} {base_extra}".strip()
            r = bench_one(name, args, env)
            spi = seconds_per_iteration(os.path.join(os.path.abspath(args.out), name + args.tag))
            print(f"| {name} | {kind} | {args.iterations} | {spi:.3f} | {r['psnr']:.2f} | "
                  f"{r['ssim']:.4f} | {r['gaussians']} |", flush=True)


if __name__ == "__main__":
    main()
