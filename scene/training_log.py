"""Append-only training_log.csv, buffered so a long run does not write every iteration."""
import csv
import os

from utils.io_utils import atomic_path, guarded_write

COLUMNS = ["iteration", "loss", "l1", "ssim", "psnr", "gaussians", "elapsed_s", "phase"]


class TrainingLog:
    """COLUMNS, then one `term_<name>` column per named loss term. A log that already exists
    (a resumed run) keeps its own header, and rows fill the columns it has."""

    def __init__(self, model_path: str, flush_every: int = 100, terms=()):
        self.path = os.path.join(model_path, "training_log.csv")
        self.rows = []
        self.flush_every = flush_every
        self.columns = COLUMNS + [f"term_{name}" for name in terms]
        if os.path.exists(self.path):
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                self.columns = header
        else:
            with guarded_write(self.path), open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)

    def add(self, **row):
        self.rows.append([row.get(c, "") for c in self.columns])

    def maybe_flush(self):
        """Write buffered rows once enough have accumulated (call at the end of an iteration,
        after set_last, so an evaluated row is complete when written)."""
        if len(self.rows) >= self.flush_every:
            self.flush()

    def set_last(self, **values):
        """Fill columns of the last row (e.g. psnr after an evaluation)."""
        if self.rows:
            for k, v in values.items():
                self.rows[-1][self.columns.index(k)] = v

    def flush(self):
        if not self.rows:
            return
        with guarded_write(self.path), open(self.path, "a", newline="") as f:
            csv.writer(f).writerows(self.rows)
        self.rows = []


def truncate_log(path: str, last_iteration: int):
    """Keep the header and rows up to `last_iteration` of a training log: a resumed run
    re-logs the iterations after its checkpoint (a run killed after a flush but before the
    checkpoint that followed would otherwise leave them twice)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit()
                       and int(r[0]) <= last_iteration]
    if len(keep) != len(rows):
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows(keep)
