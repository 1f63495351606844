"""Tables and training-loss plots of a batch written by scripts/mipnerf360.sh.

    python scripts/summarize.py runs/ablation1 [--smooth N]

Reads every <out>/<scene>/<variant>/ and writes, next to the runs:
  summary.md    Markdown table: test PSNR, SSIM, LPIPS, Gaussians and training time per scene
                and variant, then the mean over scenes per variant (printed too)
  summary.csv   the same numbers at full precision
  loss_<scene>.png  training loss vs iteration of the scene's variants: the whole run, zoomed
                on each phase window of a guided run, and on the final refinement (the `refine`
                phase, or after --densify_until_iter for unguided runs); phase bands shaded.
                The PNG's "Description" text chunk lists the curves and windows drawn.
"""
import argparse
import csv
import json
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_runs import MIPNERF360, VARIANTS  # noqa: E402  (same folder; no torch import)

PROG = "summarize.py"
PHASE_COLORS = {"phase1": "#4e79a7", "phase2": "#59a14f", "phase3": "#f28e2b",
                "refine": "#9c755f"}
PHASE_TITLES = {"phase1": "phase 1 (detail formation)", "phase2": "phase 2 (background)",
                "phase3": "phase 3 (novel views)", "refine": "final refinement"}


def ordered(names, preferred):
    """Known names in their usual order (the Mip-NeRF 360 list, the variant list), then others."""
    known = [n for n in preferred if n in names]
    return known + sorted(n for n in names if n not in preferred)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def gaussians_in(ply):
    """Vertex count from a PLY header (no need to read the body)."""
    try:
        with open(ply, "rb") as f:
            m = re.search(rb"element vertex (\d+)", f.read(4096))
        return int(m.group(1)) if m else None
    except OSError:
        return None


def read_log(run_dir):
    """training_log.csv as arrays: iterations, loss, elapsed seconds, phase names."""
    its, loss, elapsed, phase = [], [], [], []
    try:
        with open(os.path.join(run_dir, "training_log.csv"), newline="") as f:
            for row in csv.DictReader(f):
                try:
                    it, lv = int(row["iteration"]), float(row["loss"])
                except (KeyError, TypeError, ValueError):
                    continue  # a half-written last line of an interrupted run
                its.append(it)
                loss.append(lv)
                elapsed.append(float(row["elapsed_s"]) if row.get("elapsed_s") else math.nan)
                phase.append(row.get("phase") or "")
    except OSError:
        pass
    return np.array(its), np.array(loss), np.array(elapsed), phase


def cfg_value(run_dir, name):
    """An integer flag the run used, from cfg_args (a Namespace repr, as the reference)."""
    try:
        with open(os.path.join(run_dir, "cfg_args")) as f:
            m = re.search(rf"(?<![\w]){name}=(-?\d+)", f.read())
        return int(m.group(1)) if m else None
    except OSError:
        return None


def read_run(out, scene, variant):
    run_dir = os.path.join(out, scene, variant)
    meta = load_json(os.path.join(run_dir, "run.json")) or {}
    results = load_json(os.path.join(run_dir, "results.json")) or {}
    keys = [k for k in results if re.fullmatch(r"ours_\d+", k)]
    iteration = meta.get("iteration")
    if iteration is None and keys:  # a folder scored outside the batch: its last iteration
        iteration = max(int(k[5:]) for k in keys)
    res = results.get(f"ours_{iteration}")
    its, loss, elapsed, phase = read_log(run_dir)
    train_s = elapsed[-1] if len(elapsed) and not math.isnan(elapsed[-1]) else meta.get("train_s")
    status = "done" if res else meta.get("status", "unfinished")
    if status == "done" and not res:
        status = "unfinished"
    return dict(scene=scene, variant=variant, dir=run_dir, status=status, iteration=iteration,
                psnr=res and res.get("PSNR"), ssim=res and res.get("SSIM"),
                lpips=res and res.get("LPIPS"),
                gaussians=gaussians_in(os.path.join(run_dir, "point_cloud",
                                                    f"iteration_{iteration}", "point_cloud.ply")),
                train_s=train_s, error=meta.get("error", ""),
                log=(its, loss, phase), densify_until=cfg_value(run_dir, "densify_until_iter"))


def find_runs(out):
    runs = []
    scenes = [s for s in os.listdir(out) if os.path.isdir(os.path.join(out, s))]
    for scene in ordered(scenes, MIPNERF360):
        sdir = os.path.join(out, scene)
        variants = [v for v in os.listdir(sdir)
                    if any(os.path.exists(os.path.join(sdir, v, f))
                           for f in ("run.json", "results.json", "training_log.csv"))]
        runs += [read_run(out, scene, v) for v in ordered(variants, VARIANTS)]
    return runs


def mean_rows(runs):
    """Per variant, the mean over the scenes where it finished; "mean (k/n)" when some are
    missing, because such a mean is not comparable with a complete one."""
    scenes = {r["scene"] for r in runs}
    rows = []
    for variant in ordered({r["variant"] for r in runs}, VARIANTS):
        done = [r for r in runs if r["variant"] == variant and r["status"] == "done"]
        if not done:
            continue
        row = dict(scene="mean" if len(done) == len(scenes) else f"mean ({len(done)}/{len(scenes)})",
                   variant=variant, status="", iteration="")
        for key in ("psnr", "ssim", "lpips", "gaussians", "train_s"):
            vals = [r[key] for r in done]
            row[key] = None if any(v is None for v in vals) else float(np.mean(vals))
        rows.append(row)
    return rows


def fmt(v, spec, missing="n/a"):
    return missing if v is None else format(v, spec)


def markdown(out, runs, means, plots):
    lines = [f"# Batch {out}", "",
             "| scene | variant | PSNR | SSIM | LPIPS | Gaussians | train (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in [r for r in runs if r["status"] == "done"] + means:
        lines.append(f"| {r['scene']} | {r['variant']} | {fmt(r['psnr'], '.2f')} | "
                     f"{fmt(r['ssim'], '.4f')} | {fmt(r['lpips'], '.4f')} | "
                     f"{fmt(r['gaussians'], '.0f')} | {fmt(r['train_s'], '.1f')} |")
    iters = sorted({r["iteration"] for r in runs if r["status"] == "done"})
    lines += ["", f"Test split, iteration {', '.join(map(str, iters)) or '-'}; train (s) is the "
              "training wall time (last `elapsed_s` of training_log.csv); LPIPS n/a where "
              "metrics.py could not load it."]
    missing = [r for r in runs if r["status"] != "done"]
    if missing:
        lines += ["", "Not finished:"]
        lines += [f"- {r['scene']}/{r['variant']}: {r['status']}"
                  + (f": {r['error']}" if r["error"] else "") for r in missing]
    if plots:
        lines += ["", "Training loss: " + ", ".join(f"[{p}]({p})" for p in plots)]
    return "\n".join(lines) + "\n"


def write_csv(path, runs, means):
    cols = ["scene", "variant", "status", "iteration", "psnr", "ssim", "lpips", "gaussians",
            "train_s"]
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in runs + means:
            w.writerow(["" if r[c] is None else r[c] for c in cols])
    os.replace(tmp, path)


def bands_of(its, phase):
    """Contiguous runs of one non-empty phase name -> [(name, first, last iteration)]."""
    bands, prev = [], None
    for it, p in zip(its, phase):
        if not p:
            continue
        if bands and bands[-1][0] == p and bands[-1][2] == prev:
            bands[-1][2] = int(it)
        else:
            bands.append([p, int(it), int(it)])
        prev = int(it)
    return [tuple(b) for b in bands]


def smooth(y, window):
    """Centred moving average; the ends use the samples there are."""
    if window <= 1 or len(y) < 3:
        return y
    k = np.ones(window)
    return np.convolve(y, k, "same") / np.convolve(np.ones_like(y), k, "same")


def plot_scene(path, scene, scene_runs, smooth_window):
    import matplotlib
    matplotlib.use("Agg")  # files only; no display on a cluster node
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = [r for r in scene_runs if len(r["log"][0])]
    if not curves:
        return False
    bands = []
    for r in curves:  # the schedule of the first guided run (all share --iterations)
        bands = bands_of(r["log"][0], r["log"][2])
        if bands:
            break
    last = max(int(r["log"][0][-1]) for r in curves)
    windows = [("whole run", 1, last)]
    windows += [(PHASE_TITLES.get(n, n), a, b) for n, a, b in bands if n != "refine"]
    refine = [(a, b) for n, a, b in bands if n == "refine"]
    if refine:
        windows.append((PHASE_TITLES["refine"], refine[0][0], refine[-1][1]))
    else:  # unguided: refinement = the iterations after densification stopped
        stops = [r["densify_until"] for r in curves if r["densify_until"] is not None]
        if stops and min(stops) < last:
            windows.append(("final refinement (after densification)", min(stops) + 1, last))

    colors = {v: plt.cm.tab10(i % 10) for i, v in enumerate(ordered(list(VARIANTS), VARIANTS))}
    # The whole run on top across the figure, the zoomed windows side by side below it.
    zooms = max(1, len(windows) - 1)
    fig = plt.figure(figsize=(max(8.0, 3.6 * zooms), 6.4 if len(windows) > 1 else 3.6))
    grid = fig.add_gridspec(2 if len(windows) > 1 else 1, zooms)
    axes = [fig.add_subplot(grid[0, :])] + [fig.add_subplot(grid[1, i])
                                            for i in range(len(windows) - 1)]
    for ax, (title, a, b) in zip(axes, windows):
        lo, hi = math.inf, -math.inf
        for r in curves:
            its, loss, _ = r["log"]
            w = smooth_window or max(1, len(its) // 100)
            ys = smooth(loss, w)
            sel = (its >= a) & (its <= b)
            if not sel.any():
                continue
            c = colors.get(r["variant"], "k")
            ax.plot(its[sel], loss[sel], color=c, alpha=0.2, lw=0.5)
            ax.plot(its[sel], ys[sel], color=c, lw=1.4, label=r["variant"])
            lo, hi = min(lo, ys[sel].min()), max(hi, ys[sel].max())
        for name, s, e in bands:  # shade the phases that overlap this window
            if e >= a and s <= b:
                ax.axvspan(max(s - 0.5, a), min(e + 0.5, b), color=PHASE_COLORS.get(name, "0.8"),
                           alpha=0.12, lw=0, label=name)
        if title == "whole run" and lo > 0 and hi / lo > 5:
            ax.set_yscale("log")  # a long run's loss falls by an order of magnitude early on
        elif math.isfinite(lo):  # zoom y on the smoothed curves; raw noise may leave the frame
            pad = 0.08 * (hi - lo) or 0.05 * abs(hi) or 0.01
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(a, b)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{title}: {a}-{b}", fontsize=9)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.set_ylabel("training loss (L1 + D-SSIM)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))  # one legend entry per variant and phase
    axes[0].legend(seen.values(), seen.keys(), loc="upper right", ncol=min(5, len(seen)),
                   fontsize=8, framealpha=0.8)
    fig.suptitle(f"{scene}: training loss", fontsize=11)
    fig.tight_layout()
    info = {"scene": scene,
            "curves": {r["variant"]: {"points": len(r["log"][0]),
                                      "last_iteration": int(r["log"][0][-1]),
                                      "final_loss": float(r["log"][1][-1])} for r in curves},
            "windows": [[t, a, b] for t, a, b in windows],
            "bands": [list(b) for b in bands]}
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120, metadata={"Description": json.dumps(info)})
    plt.close(fig)
    os.replace(tmp, path)
    return True


def main(argv):
    ap = argparse.ArgumentParser(prog=PROG, description="Tables and loss plots of a batch.")
    ap.add_argument("out", help="the batch folder given to mipnerf360.sh --out")
    ap.add_argument("--smooth", type=int, default=0,
                    help="moving-average window of the loss curves (0 = 1%% of the run)")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.out):
        print(f"{PROG}: error: batch folder not found: {args.out}", file=sys.stderr)
        return 2
    runs = find_runs(args.out)
    if not runs:
        print(f"{PROG}: error: no runs (<scene>/<variant>/ with run.json, results.json or "
              f"training_log.csv) in {args.out}", file=sys.stderr)
        return 2
    means = mean_rows(runs)
    plots = []
    for scene in dict.fromkeys(r["scene"] for r in runs):
        name = f"loss_{scene}.png"
        if plot_scene(os.path.join(args.out, name), scene,
                      [r for r in runs if r["scene"] == scene], args.smooth):
            plots.append(name)
    md = markdown(args.out, runs, means, plots)
    tmp = os.path.join(args.out, "summary.md.tmp")
    with open(tmp, "w") as f:
        f.write(md)
    os.replace(tmp, os.path.join(args.out, "summary.md"))
    write_csv(os.path.join(args.out, "summary.csv"), runs, means)
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
