"""Default Adam vs --optimizer_type sparse_adam: same scenes, iterations, seed and machine;
prints one markdown table (training seconds per iteration, test PSNR, SSIM, Gaussians).

Each run is bench_scenes.py's train + render + metrics into `<out>/<scene>_<optimizer>`;
seconds per iteration are the training loop's own clock (training_log.csv elapsed_s at the
last iteration over the iterations), so scene loading is not counted.

    OMP_NUM_THREADS=1 python bench/bench_optimizers.py --out bench_out --iterations 3000 \
        --scenes juicebox_table beer_can

`--step_only N,FRACTION`: instead, time one optimizer step alone for N Gaussians of which
FRACTION are visible (both optimizers interleaved in one process, CPU time, median of 15;
robust to a shared machine's load, which the training runs' wall times are not).
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_scenes import add_run_args, bench_one, run_env  # noqa: E402

OPTIMIZERS = ("default", "sparse_adam")


def seconds_per_iteration(model_dir: str) -> float:
    with open(os.path.join(model_dir, "training_log.csv")) as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["elapsed_s"]) / int(rows[-1]["iteration"])


def time_steps(n: int, fraction: float, rounds: int = 15):
    import time

    import torch
    from torch import nn

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from scene.sparse_adam import make_optimizer, optimizer_step
    shapes = {"xyz": (3,), "f_dc": (1, 3), "f_rest": (15, 3), "opacity": (1,), "scaling": (3,),
              "rotation": (4,)}
    gen = torch.Generator().manual_seed(0)
    visible = torch.rand(n, generator=gen) < fraction
    times = {}
    opts = {}
    for kind in OPTIMIZERS:
        params = [nn.Parameter(torch.randn((n,) + s, generator=gen)) for s in shapes.values()]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opts[kind] = make_optimizer(kind, [{"params": [p], "lr": 1e-3} for p in params])
        times[kind] = []
    for _ in range(rounds):
        for kind, opt in opts.items():
            t = time.process_time()  # CPU time: less sensitive to a shared machine's load
            optimizer_step(opt, visible)
            times[kind].append(time.process_time() - t)
    return {k: sorted(v)[rounds // 2] for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap, ["juicebox_table", "beer_can"], threads=1)
    ap.add_argument("--step_only", default="", help="N,FRACTION: time one optimizer step only")
    args = ap.parse_args(argv)
    if args.step_only:
        n, fraction = args.step_only.split(",")
        t = time_steps(int(n), float(fraction))
        print(f"{int(n)} Gaussians, {float(fraction):.0%} visible: one step default Adam "
              f"{t['default'] * 1e3:.1f} ms, sparse_adam {t['sparse_adam'] * 1e3:.1f} ms")
        return
    env = run_env(args)
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
