"""Guided and unguided training over several seeds: mean and spread of the test scores.

    python bench/bench_seed_noise.py --out OUT [--scenes juicebox_table beer_can]
        [--seeds 0 1 2] [--iterations 1200] [--threads 1]

Each run is bench_scenes.py's train + render + metrics, from 100 random points, without and
with semantic guidance (the error proposer: no model needed). OUT/seed_noise.json keeps every
run; the table gives mean +- standard deviation over the seeds. Run it in two trees to tell a
change of behaviour from seed noise (issue 20: the seeded generators that replaced the global
torch RNG in region spawning and depth seeding).
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scenes import SCENES, bench_one, thread_env  # noqa: E402

VARIANTS = {"unguided": "--random_init 100",
            "guided": "--random_init 100 --region_proposer error"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", nargs="+", default=["juicebox_table", "beer_can"])
    ap.add_argument("--scenes_dir", default=SCENES)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=1200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", default="images_2")
    ap.add_argument("--lego_full", action="store_true")
    args = ap.parse_args()
    env = thread_env(args.threads)
    path = os.path.join(args.out, "seed_noise.json")
    runs = json.load(open(path)) if os.path.isfile(path) else {}
    for scene in args.scenes:
        for variant, extra in VARIANTS.items():
            for seed in args.seeds:
                key = f"{scene}/{variant}/{seed}"
                if key in runs:
                    continue
                ns = argparse.Namespace(**vars(args), extra=extra, seed=seed,
                                        tag=f"_{variant}_s{seed}")
                runs[key] = bench_one(scene, ns, env)
                os.makedirs(args.out, exist_ok=True)
                with open(path, "w") as f:
                    json.dump(runs, f, indent=1)
                print(key, f"PSNR {runs[key]['psnr']:.2f}", flush=True)
    print("| scene | variant | test PSNR | SSIM | coverage | Gaussians |")
    print("|---|---|---|---|---|---|")
    for scene in args.scenes:
        for variant in VARIANTS:
            rs = [runs[f"{scene}/{variant}/{s}"] for s in args.seeds]

            def ms(k, fmt):
                vals = [r[k] for r in rs if r.get(k) is not None]
                if not vals:
                    return "n/a"
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                return f"{fmt.format(statistics.mean(vals))} +- {fmt.format(sd)}"
            print(f"| {scene} | {variant} | {ms('psnr', '{:.2f}')} | {ms('ssim', '{:.4f}')} | "
                  f"{ms('coverage', '{:.4f}')} | {ms('gaussians', '{:.0f}')} |")


if __name__ == "__main__":
    main()
