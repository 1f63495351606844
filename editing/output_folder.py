"""Where an edit run starts in its --output folder.

A fresh run starts at round 1 and refuses a folder that already holds complete rounds;
--resume starts after the last round training_state.yaml names; --from_round K discards the
rounds after K (their files, state entries and log rows) and starts after K. In every case
files a killed run left half-written (temporary files, log rows after the last committed
iteration) are removed first. The layout itself is in artifacts.py.
"""
import os
import shutil
from typing import Tuple

from editing import artifacts
from editing.artifacts import Layout
from editing.config import saved_config
from scene.training_log import truncate_log
from utils.errors import UserError
from utils.io_utils import ensure_writable_dir, remove_stale_temps


def check_output(cfg, layout: Layout):
    """Refusals that need no scene, before anything is loaded or written."""
    if cfg.resume and not os.path.isfile(layout.state):
        raise UserError(f"--resume: {cfg.output} holds no edit to resume "
                        "(no training_state.yaml)")
    done = int(artifacts.read_state(layout)["completed_rounds"])
    if not cfg.resume and cfg.from_round is None and done > 0:
        raise UserError(f"--output {cfg.output} already holds {done} edit round(s): "
                        "use --resume, --from_round K or another --output")
    if cfg.from_round is not None and cfg.from_round > done:
        raise UserError(f"--from_round {cfg.from_round}: {cfg.output} has only {done} "
                        "complete round(s)")


def prepare_output(cfg, layout: Layout) -> Tuple[int, dict]:
    """Decide where this run starts (fresh, --resume, --from_round) and tidy the folder; writes
    config.yaml and the (possibly cut back) training state. Returns (the last complete round
    the run starts after, the training state)."""
    ensure_writable_dir(cfg.output)
    # A run killed while saving leaves its temporary files (.tmp_*model_round_NNN.pt).
    remove_stale_temps(cfg.output, recursive=True)
    state = artifacts.read_state(layout)
    done = int(state["completed_rounds"])
    if cfg.from_round is not None:
        start = cfg.from_round
        _discard_rounds_after(layout, state, start, last=max(done, cfg.rounds) + 1)
    else:  # --resume, or a fresh run (check_output refused to overwrite rounds)
        start = done
    # Drop training-log rows of a round that never completed.
    truncate_log(os.path.join(cfg.output, "training_log.csv"), state["iteration"])
    artifacts.write_yaml(layout.config, saved_config(cfg))
    artifacts.write_state(layout, state)
    return start, state


def _discard_rounds_after(layout: Layout, state: dict, k: int, last: int):
    """--from_round K: remove rounds K+1..last from the folder and the state; the latest
    checkpoint becomes round K's (none for K = 0, the trained model)."""
    for r in range(k + 1, last + 1):
        for path in layout.round_files(r):
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    state["rounds"] = [e for e in state["rounds"] if e["round"] <= k]
    state["completed_rounds"] = k
    state["iteration"] = state["rounds"][-1]["last_iteration"] if k else 0
    if k:
        artifacts.copy_atomic(layout.checkpoint(k), layout.latest)
    elif os.path.exists(layout.latest):
        os.remove(layout.latest)
