"""What the training process and the live viewer's server process share.

A `Control` block of numbers (lock-free shared doubles: each slot has one writer) and the
Gaussian snapshot, a float32 (N, 14) array in a shared-memory segment. The trainer writes a
snapshot only when the server has taken the previous one (ACK == SEQ), so neither side ever
waits for the other; a bigger model gets a new, larger segment (generation GEN), and the
server opens it when it sees the new generation.
"""
import secrets
from multiprocessing import shared_memory
from typing import Optional, Tuple

import numpy as np
import torch

# Control slots; the comment names the only writer.
ITER, LOSS, NPOINTS = 0, 1, 2          # trainer: the latest iteration's numbers
CLIENTS = 3                            # server: connected browsers
PAUSE = 4                              # server sets (button), either clears
PAUSED_AT = 5                          # trainer: iteration held at, -1 when running
SEQ, N, SNAP_ITER, GEN = 6, 7, 8, 9    # trainer: the snapshot on offer
ACK = 10                               # server: the last SEQ it copied out
SENT = 11                              # server: snapshots shown in the browser
STOP = 12                              # trainer: the run is over
SLOTS = 13
PHASE_BYTES = 64
COLUMNS = 14                           # xyz 3, f_dc 3, opacity logit 1, log scales 3, quat 4
SPLITS = (3, 6, 7, 10, 14)


def new_control(ctx):
    """(numbers, phase label) as shared arrays of the multiprocessing context `ctx`."""
    ctl = ctx.RawArray("d", SLOTS)
    ctl[PAUSED_AT] = -1.0
    ctl[LOSS] = float("nan")
    return ctl, ctx.RawArray("c", PHASE_BYTES)


def set_phase(label_array, label: str):
    label_array.value = label.encode()[:PHASE_BYTES - 1]


class SnapshotWriter:
    """The trainer's side: copies the Gaussian parameters into shared memory."""

    def __init__(self, ctl):
        self.ctl = ctl
        self.prefix = f"gs_live_{secrets.token_hex(4)}"
        self.shm: Optional[shared_memory.SharedMemory] = None
        self.capacity = 0

    def ready(self) -> bool:
        return self.ctl[ACK] == self.ctl[SEQ]

    @torch.no_grad()
    def write(self, iteration: int, xyz, f_dc, opacity, scaling, rotation):
        """Copy one snapshot (call only when ready())."""
        n = xyz.shape[0]
        if n > self.capacity:
            self._grow(n)
        buf = torch.from_numpy(np.ndarray((self.capacity, COLUMNS), np.float32,
                                          buffer=self.shm.buf))[:n]
        lo = 0
        for hi, t in zip(SPLITS, (xyz, f_dc, opacity, scaling, rotation)):
            buf[:, lo:hi].copy_(t.detach().reshape(n, hi - lo))
            lo = hi
        del buf  # no view may outlive the segment
        self.ctl[N] = n
        self.ctl[SNAP_ITER] = iteration
        self.ctl[SEQ] = self.ctl[SEQ] + 1    # last: the server reads once SEQ moves

    def _grow(self, n: int):
        old = self.shm
        self.capacity = max(n + n // 2, 1024)
        gen = int(self.ctl[GEN]) + 1
        self.shm = shared_memory.SharedMemory(f"{self.prefix}_{gen}", create=True,
                                              size=self.capacity * COLUMNS * 4)
        self.ctl[GEN] = gen
        if old is not None:  # the server has copied out of it (ready()) and maps the new one
            old.close()
            old.unlink()

    def close(self):
        if self.shm is not None:
            self.shm.close()
            self.shm.unlink()
            self.shm = None


class SnapshotReader:
    """The server's side: a copy of the snapshot on offer, if there is a new one."""

    def __init__(self, ctl, prefix: str):
        self.ctl, self.prefix = ctl, prefix
        self.shm: Optional[shared_memory.SharedMemory] = None
        self.gen = 0

    def take(self) -> Optional[Tuple[int, np.ndarray]]:
        seq = self.ctl[SEQ]
        if seq == self.ctl[ACK]:
            return None
        gen, n = int(self.ctl[GEN]), int(self.ctl[N])
        if gen != self.gen:
            self.close()
            self.shm = shared_memory.SharedMemory(f"{self.prefix}_{gen}")
            self.gen = gen
        view = np.ndarray((n, COLUMNS), np.float32, buffer=self.shm.buf)
        data = view.copy()
        del view
        iteration = int(self.ctl[SNAP_ITER])
        self.ctl[ACK] = seq      # the trainer may write the next one now
        return iteration, data

    def close(self):
        if self.shm is not None:
            self.shm.close()
            self.shm = None


def split_columns(data: np.ndarray):
    """(xyz, f_dc, opacity logit, log scales, quaternions) tensors of a snapshot."""
    t = torch.from_numpy(data)
    lo, out = 0, []
    for hi in SPLITS:
        out.append(t[:, lo:hi])
        lo = hi
    return out
