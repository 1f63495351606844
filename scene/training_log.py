"""Append-only training_log.csv, buffered so a long run does not write every iteration."""
import csv
import os

COLUMNS = ["iteration", "loss", "l1", "ssim", "psnr", "gaussians", "elapsed_s", "phase"]


class TrainingLog:
    def __init__(self, model_path: str, flush_every: int = 100):
        self.path = os.path.join(model_path, "training_log.csv")
        self.rows = []
        self.flush_every = flush_every
        if not os.path.exists(self.path):
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)

    def add(self, **row):
        self.rows.append([row.get(c, "") for c in COLUMNS])

    def maybe_flush(self):
        """Write buffered rows once enough have accumulated (call at the end of an iteration,
        after set_last, so an evaluated row is complete when written)."""
        if len(self.rows) >= self.flush_every:
            self.flush()

    def set_last(self, **values):
        """Fill columns of the last row (e.g. psnr after an evaluation)."""
        if self.rows:
            for k, v in values.items():
                self.rows[-1][COLUMNS.index(k)] = v

    def flush(self):
        if not self.rows:
            return
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerows(self.rows)
        self.rows = []
