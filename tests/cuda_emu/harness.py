"""Runs functions in an AddressSanitizer worker process where the emulated CUDA extensions live.

ASan must be the first library of a process to check the memory that torch allocates (tensors
get redzones only when malloc is ASan's), so the emulated kernels cannot run inside pytest's own
process: `call("tests.cuda_emu.emulated", "dist_cuda2", pts)` runs in a long-lived worker
started with LD_PRELOAD=libasan (tests/cuda_emu/worker.py) and returns its pickled result. An
out-of-bounds access aborts the worker; the call then raises EmulatorCrash with ASan's report.
"""
import atexit
import os
import struct
import subprocess
import sys
import tempfile
import pickle

from tests.cuda_emu import build

# Leak checking is for C programs, not a Python interpreter; the rest of ASan stays on.
ASAN_OPTIONS = "detect_leaks=0:abort_on_error=0:print_summary=1:halt_on_error=1"


class EmulatorCrash(RuntimeError):
    """The worker died (a sanitizer error or an emulator abort); the message holds its stderr."""


def unavailable_reason() -> str:
    """Why the emulated tests cannot run here, or '' when they can."""
    if sys.platform != "linux":
        return "the CUDA emulation needs Linux"
    if not build.asan_runtime():
        return (f"no C++ compiler with AddressSanitizer ({build.compiler()} "
                "-print-file-name=libasan.so); install g++")
    return ""


class Worker:
    def __init__(self):
        env = dict(os.environ)
        env["LD_PRELOAD"] = build.asan_runtime()
        env["ASAN_OPTIONS"] = ASAN_OPTIONS
        env.setdefault("MAX_JOBS", str(os.cpu_count() or 1))
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen([sys.executable, "-m", "tests.cuda_emu.worker"],
                                      cwd=str(build.ROOT), env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def stderr_tail(self, n=6000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-n:]

    def call(self, module, function, *args, **kwargs):
        data = pickle.dumps((module, function, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self._proc.stdin.flush()
            head = self._proc.stdout.read(8)
            if len(head) < 8:
                raise EOFError
            ok, value = pickle.loads(self._proc.stdout.read(struct.unpack("<Q", head)[0]))
        except (EOFError, BrokenPipeError):
            self._proc.wait()
            raise EmulatorCrash(f"emulator worker died (exit {self._proc.returncode}) in "
                                f"{function}:\n{self.stderr_tail()}") from None
        if not ok:
            raise RuntimeError(f"{function} failed in the emulator worker:\n{value}")
        return value

    def close(self):
        if self.alive():
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._log.close()


_shared = None


def call(module, function, *args, **kwargs):
    """Runs `module.function(*args, **kwargs)` in the shared worker (restarted if it died)."""
    global _shared
    if _shared is None or not _shared.alive():
        _shared = Worker()
        atexit.register(_shared.close)
    return _shared.call(module, function, *args, **kwargs)
