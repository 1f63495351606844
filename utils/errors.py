"""User-facing errors: anything a user can cause ends as one clear line, not a traceback."""
import signal
import sys
from contextlib import contextmanager

MAX_MESSAGE = 300  # characters of one error line; longer messages are elided in the middle


class UserError(Exception):
    """A problem with the user's input (file, flag, data). The message is shown as-is."""


def elide(value, limit: int = 60) -> str:
    """`value` as one line of at most `limit` characters: str() of it (repr() for str, so
    quotes and control characters show), with the middle replaced by '...' when too long.
    For echoing user data (names, values, keys) into a message."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an int beyond Python's str() digit limit
        text = f"<integer of {int(value).bit_length()} bits>"
    return _cut(text.replace("\n", " ").replace("\r", " "), limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = (limit - 3) * 2 // 3
    return text[:head] + "..." + text[len(text) - (limit - 3 - head):]


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """A message flattened to one line of at most `limit` characters (elided in the middle)."""
    return _cut(" ".join(str(message).split()), limit)


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
        print(one_line(f"{prog}: error: {e}"), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
