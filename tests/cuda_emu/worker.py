"""Worker process for the emulated CUDA tests (started by harness.py with libasan preloaded).

Reads pickled calls `(module, function, args, kwargs)` on stdin and answers `(ok, value)` on
the original stdout; anything else printed goes to stderr. A sanitizer error kills the process
on purpose: the harness reports its stderr as the test failure.
"""
import importlib
import os
import pickle
import struct
import sys
import traceback


def _read(f):
    head = f.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(f.read(n))


def _write(f, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(struct.pack("<Q", len(data)) + data)
    f.flush()


def main():
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # Compilers and other children of this process must not inherit the ASan preload.
    os.environ.pop("LD_PRELOAD", None)
    requests = sys.stdin.buffer
    while True:
        call = _read(requests)
        if call is None:
            return
        module, function, args, kwargs = call
        if not module.startswith("tests."):
            _write(answers, (False, f"refused: {module} is not a test module"))
            continue
        try:
            value = getattr(importlib.import_module(module), function)(*args, **kwargs)
            _write(answers, (True, value))
        except BaseException:  # reported to the caller, which raises it in the test
            _write(answers, (False, traceback.format_exc()))


if __name__ == "__main__":
    main()
