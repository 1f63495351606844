"""The phase schedule of semantic guidance.

Published schedule (20k iterations): phase 1 (detail formation) 0-8k, phase 2 (background
completion) 8k-14k, phase 3 (novel-view refinement) 14k-17k, an analysis every 1k, then pruning
and refinement once `prune_protection` (1k) iterations have passed since the last guided
densification. A phase flag left at -1 takes that schedule scaled to `--total_iterations`
(default: `--iterations`), so a 6000-iteration run gets 0-2400 / 2400-4200 / 4200-5100 with an
analysis every 300 (`phase_defaults`, `phase_caps`: arguments/resolve.py applies them before
cfg_args is written).

A phase owns the iterations (start, end]; its analyses run at start + k*interval (k >= 1) up to
end. An analysis that would fall within `settle` (half its phase's interval) iterations after
one of the strategy's opacity resets moves to the end of that window: just after a reset the
model renders almost transparent, so the whole view would look empty (phase 2 then spawned
across entire views at a guessed depth). Everything here is a pure function of the flags and
the strategy's reset iterations, so a run resumed from a checkpoint continues the same
schedule.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

PUBLISHED_TOTAL = 20_000
# name -> (start, end, interval, max_points per view) on the published 20k schedule
PUBLISHED = {
    1: (0, 8_000, 1_000, 2_000),
    2: (8_000, 14_000, 1_000, 8_000),
    3: (14_000, 17_000, 1_000, 4_000),
}
PUBLISHED_PROTECTION = 1_000
PHASE_NAMES = {1: "phase1", 2: "phase2", 3: "phase3"}
SETTLE_FRACTION = 0.5   # of a phase's interval: how long after an opacity reset it waits
REFINE = "refine"


@dataclass(frozen=True)
class Phase:
    index: int
    start: int
    end: int
    interval: int
    max_points: int

    @property
    def name(self) -> str:
        return PHASE_NAMES[self.index]

    @property
    def settle(self) -> int:
        return max(1, round(self.interval * SETTLE_FRACTION))

    def analysis_iterations(self, resets: Sequence[int] = ()) -> List[int]:
        if self.interval <= 0 or self.end <= self.start:
            return []
        out = []
        for it in range(self.start + self.interval, self.end + 1, self.interval):
            for r in resets:
                if r <= it < r + self.settle:
                    it = r + self.settle
            if not out or it > out[-1]:
                out.append(it)
        return out


class PhaseSchedule:
    def __init__(self, phases: List[Phase], prune_protection: int, total: int,
                 resets: Sequence[int] = ()):
        self.phases = [p for p in phases if p.end > p.start and p.interval > 0]
        self.prune_protection = prune_protection
        self.total = total
        self.resets = sorted(resets)
        self._analyses = {}
        for p in self.phases:
            for it in p.analysis_iterations(self.resets):
                if it <= total:
                    self._analyses.setdefault(it, p)  # a shifted one never displaces another

    def analyses_of(self, phase: Phase) -> List[int]:
        return sorted(it for it, p in self._analyses.items() if p is phase)

    @classmethod
    def from_args(cls, args, resets: Sequence[int] = ()) -> "PhaseSchedule":
        """args: a SemanticConfig (semantic/config.py), or flags with the same names, resolved;
        resets: the strategy's opacity-reset iterations (Strategy.opacity_reset_iterations)."""
        phases = [Phase(i, getattr(args, f"phase{i}_start"), getattr(args, f"phase{i}_end"),
                        getattr(args, f"phase{i}_interval"), getattr(args, f"phase{i}_max_points"))
                  for i in (1, 2, 3)]
        return cls(phases, args.prune_protection, args.total_iterations or args.iterations,
                   resets)

    def analysis_at(self, iteration: int) -> Optional[Phase]:
        """The phase whose analysis runs at this iteration, if any."""
        return self._analyses.get(iteration)

    @property
    def last_analysis(self) -> int:
        return max(self._analyses) if self._analyses else 0

    @property
    def completion_window(self) -> Optional[Tuple[int, int]]:
        """Background completion's (start, end]: phase 2's; None when phase 2 is off."""
        spans = [(p.start, p.end) for p in self.phases if p.index == 2]
        return spans[0] if spans else None

    @property
    def refine_start(self) -> int:
        """First iteration of pruning and refinement: protection after the last analysis."""
        if not self._analyses:
            return 0
        return self.last_analysis + self.prune_protection

    def phase_at(self, iteration: int) -> str:
        """training_log.csv's phase column: phase1/2/3, refine after them, "" in a gap."""
        for p in self.phases:
            if p.start < iteration <= p.end:
                return p.name
        if self.phases and iteration > max(p.end for p in self.phases):
            return REFINE
        return ""

    def describe(self) -> str:
        parts = [f"{p.name} ({p.start}, {p.end}] every {p.interval}, <= {p.max_points}/view"
                 for p in self.phases]
        return "; ".join(parts) + f"; refine from {self.refine_start}"


REFERENCE_PIXELS = 1_000_000  # the published caps are for ~1-megapixel training images
CAP_SAMPLE_VIEWS = 32         # caps follow the mean size of the first this many training views


def phase_defaults(args) -> dict:
    """The values of the phase flags left at -1 (and of --total_iterations left at 0): the
    published schedule scaled to the run length. arguments/resolve.py records them in cfg_args.
    (Caps left at -1 depend on the image size: `phase_caps`.)"""
    total = getattr(args, "total_iterations", 0) or args.iterations
    out = {"total_iterations": total}
    scale = total / PUBLISHED_TOTAL
    for i, (start, end, interval, max_points) in PUBLISHED.items():
        for key, value in (("start", start), ("end", end), ("interval", interval)):
            if getattr(args, f"phase{i}_{key}") < 0:
                out[f"phase{i}_{key}"] = max(1, round(value * scale)) if value else 0
    if args.prune_protection < 0:
        out["prune_protection"] = round(PUBLISHED_PROTECTION * scale)
    return out


def phase_caps(args, image_sizes: Sequence[Tuple[int, int]],
               proposer_caps: Optional[dict] = None) -> dict:
    """The values of --phaseN_max_points left at -1: the proposer's own default
    (`proposer_caps`, phase -> cap) or else the published per-view cap scaled by the mean
    image area (`image_sizes`: the training views' (width, height), the first
    CAP_SAMPLE_VIEWS count) over 1 megapixel (never up), as FastGS's pixel-count thresholds.
    A cap counts Gaussians per view; on a 192x108 view 2000 would let one analysis double a
    10k-Gaussian model."""
    sample = list(image_sizes)[:CAP_SAMPLE_VIEWS]
    pixels = sum(w * h for w, h in sample) / max(1, len(sample))
    scale = min(1.0, pixels / REFERENCE_PIXELS) if sample else 1.0
    out = {}
    for i, (_, _, _, max_points) in PUBLISHED.items():
        if getattr(args, f"phase{i}_max_points") < 0:
            own = (proposer_caps or {}).get(i)
            out[f"phase{i}_max_points"] = max(1, round(max_points * scale)) if own is None else own
    return out
