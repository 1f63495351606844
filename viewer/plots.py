"""The Gaussian count over iterations with the phase bands, as an image for the side panel."""
import csv
import io
from typing import List, Optional, Sequence, Tuple

import numpy as np

PHASE_COLOURS = {"phase1": "#c6dbef", "phase2": "#c7e9c0", "phase3": "#fdd0a2",
                 "refine": "#e0e0e0"}


def read_counts(log_path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(iterations, Gaussian counts) from training_log.csv; empty arrays when unreadable."""
    its, counts = [], []
    try:
        with open(log_path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    its.append(int(row["iteration"]))
                    counts.append(int(row["gaussians"]))
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError:
        pass
    return np.asarray(its), np.asarray(counts)


def count_plot(iterations: np.ndarray, counts: np.ndarray,
               bands: Sequence[Tuple[str, int, int]], marks: Sequence[int] = (),
               current: Optional[int] = None, size=(4.8, 2.4)) -> np.ndarray:
    """HxWx3 uint8: counts over iterations, shaded (name, start, end) bands, thin lines at
    the analyses (`marks`) and a thick one at `current`."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    seen: List[str] = []
    for name, start, end in bands:
        colour = PHASE_COLOURS.get(name, "#eeeeee")
        ax.axvspan(start, end, color=colour, alpha=0.8, lw=0,
                   label=None if name in seen else name)
        seen.append(name)
    for m in marks:
        ax.axvline(m, color="#888888", lw=0.6, ls=":")
    if len(iterations):
        ax.plot(iterations, counts, color="#1f3b73", lw=1.2)
    if current is not None:
        ax.axvline(current, color="#d62728", lw=1.6)
    ax.set_xlabel("iteration", fontsize=8)
    ax.set_ylabel("Gaussians", fontsize=8)
    ax.tick_params(labelsize=7)
    if seen:
        ax.legend(fontsize=6, loc="upper left", frameon=False, ncol=4)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    from PIL import Image
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))
