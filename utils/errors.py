"""User-facing errors: anything a user can cause ends as one clear line, not a traceback."""
import signal
import sys
from contextlib import contextmanager


class UserError(Exception):
    """A problem with the user's input (file, flag, data). The message is shown as-is."""


@contextmanager
def user_errors_exit(prog: str):
    """Turn UserError (and KeyboardInterrupt) into a one-line message and exit code."""
    try:
        # Past a file-size limit (ulimit -f) a write then fails with EFBIG, which the
        # atomic writers report naming the file, instead of the signal killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except (AttributeError, ValueError):  # no SIGXFSZ (Windows), or not the main thread
        pass
    try:
        yield
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
