"""Which training views a round edits, and in which order.

* Candidates: views that see the RoI (coverage above MIN_COVERAGE), or every view when the
  RoI is the whole image or nothing sees it.
* k = ceil(--edit_fraction * candidates). Most of the k are picked by priority: RoI coverage
  (normalised), plus the view's RoI residual at the end of the previous round (normalised), so
  views the model still gets wrong go first; views with no residual yet get a neutral 0.5.
* The rest (--off_axis_fraction of k) are picked for viewpoint diversity: farthest-point
  sampling of viewing directions towards the RoI centre, so the edit is seen from around the
  object and not only from where it looks biggest.
"""
import math
from typing import Dict, List, Optional

import numpy as np

MIN_COVERAGE = 1e-3      # mean RoI visibility below which a view does not see the RoI
NEUTRAL_RESIDUAL = 0.5   # normalised residual prior for views not edited last round


def select_views(coverage: np.ndarray, directions: np.ndarray, fraction: float,
                 off_axis_fraction: float = 0.25,
                 residuals: Optional[Dict[int, float]] = None) -> List[dict]:
    """Returns [{"view", "reason", "coverage", "residual", "priority"}] in editing order.

    coverage: (V,) mean RoI visibility per view; directions: (V,3) unit vectors from the RoI
    centre to each camera; residuals: view -> RoI residual measured last round.
    """
    n = len(coverage)
    cand = [i for i in range(n) if coverage[i] > MIN_COVERAGE] or list(range(n))
    k = max(1, int(math.ceil(fraction * len(cand) - 1e-9)))
    residuals = residuals or {}
    cov = np.asarray(coverage, dtype=np.float64)
    cov_n = cov / cov[cand].max() if cov[cand].max() > 0 else np.zeros(n)
    res_max = max([residuals[i] for i in cand if i in residuals] or [0.0])
    res_n = {i: (residuals[i] / res_max if res_max > 0 else 0.0) if i in residuals
             else NEUTRAL_RESIDUAL for i in cand}
    priority = {i: float(cov_n[i] + res_n[i]) for i in cand}
    # Highest priority first; the view index breaks ties so the order is reproducible.
    ranked = sorted(cand, key=lambda i: (-priority[i], i))
    n_off = int(round(off_axis_fraction * k)) if k >= 3 else 0
    chosen = ranked[:k - n_off]
    reasons = {i: "priority" for i in chosen}
    rest = [i for i in ranked if i not in reasons]
    dirs = np.asarray(directions, dtype=np.float64)
    for _ in range(n_off):
        if not rest:
            break
        # Largest angle to the nearest already chosen direction.
        sims = np.array([max(float(dirs[i] @ dirs[j]) for j in chosen) for i in rest])
        pick = rest[int(np.argmin(sims))]
        chosen.append(pick)
        reasons[pick] = "off_axis"
        rest.remove(pick)
    return [{"view": i, "reason": reasons[i], "coverage": float(cov[i]),
             "residual": residuals.get(i), "priority": priority[i]} for i in chosen]


def view_directions(cameras, centre) -> np.ndarray:
    """(V,3) unit vectors from `centre` (3,) to each camera centre."""
    c = np.asarray(centre, dtype=np.float64).reshape(3)
    out = []
    for cam in cameras:
        d = cam.camera_center.detach().cpu().double().numpy() - c
        out.append(d / max(np.linalg.norm(d), 1e-12))
    return np.stack(out) if out else np.zeros((0, 3))
