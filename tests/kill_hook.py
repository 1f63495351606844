"""Run a CLI so that the save of one file stops half-written until the test kills it:

    python tests/kill_hook.py <path suffix> <marker file> train|edit <CLI args...>

`os.replace` of a file whose path ends with the suffix first cuts the temporary file to half
its size (the part a dying write got to disk), creates the marker, then sleeps; the test
sends SIGKILL once the marker exists."""
import os
import sys
import time

target, marker, cli = sys.argv[1:4]
_real_replace = os.replace


def _replace(src, dst, *a, **k):
    if str(dst).endswith(target):
        size = os.path.getsize(src)
        with open(src, "r+b") as f:
            f.truncate(size // 2)
        open(marker, "w").close()
        time.sleep(600)
    return _real_replace(src, dst, *a, **k)


os.replace = _replace
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
__import__(cli).main(sys.argv[4:])
