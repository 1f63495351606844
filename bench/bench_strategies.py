"""FastGS vs 3DGS side by side: same scenes, iterations and seed, from SfM points and from
`--random_init 100`; prints one markdown table (test PSNR, SSIM, Gaussians, training wall).

Each run is bench_scenes.py's train + render + metrics, with `--strategy` and the init flags
added, into `<out>/<scene>_<strategy>_<init>`.

    python bench/bench_strategies.py --out bench_out --iterations 3000 \
        --scenes juicebox_table beer_can [--inits sfm random100] [--strategies fastgs 3dgs] \
        [--extra "--densify_until_iter 1500"]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_scenes import add_run_args, bench_one, run_env  # noqa: E402
from scene.strategies import STRATEGIES  # noqa: E402

INITS = {"sfm": "", "random100": "--random_init 100"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap, ["juicebox_table", "beer_can"])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                    choices=list(STRATEGIES))
    ap.add_argument("--inits", nargs="+", default=list(INITS), choices=list(INITS))
    args = ap.parse_args(argv)
    env = run_env(args)
    print("| scene | strategy | init | iterations | test PSNR | SSIM | Gaussians | train wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    base_extra = args.extra
    for name in args.scenes:
        for init in args.inits:
            for strategy in args.strategies:
                args.tag = f"_{strategy}_{init}"
                args.extra = f"--strategy {strategy} {INITS[init]} {base_extra}".strip()
                r = bench_one(name, args, env)
                print(f"| {name} | {strategy} | {init} | {args.iterations} | {r['psnr']:.2f} | "
                      f"{r['ssim']:.4f} | {r['gaussians']} | {r['wall']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
