"""A program's process around its one library call: its log levels, Ctrl-C, and the one line
it ends with on an error the user can fix (`cli.py`'s two programs).

    status = run_program(command, args)   # 0; 2 after "error: ..."; 130 after Ctrl-C

Log levels: the library's INFO lines (DEBUG with `-v`, none with `-q`), other libraries'
warnings only (their INFO lines with `-v`: tf.distribute's "Reduce to ..." twice an epoch, JAX's
"Unable to initialize backend 'tpu'"). TensorFlow's logger has a handler of its own, which
printed each of its lines a second time: it is removed, so ours prints them once.
"""

import contextlib
import logging
import signal
import sys
import threading

from .errors import SegmentError

__all__ = ["interrupted", "one_line", "run_program"]


def run_program(command, args):
    """Run `command(args)` as a program, `args` holding its `quiet` and `verbose` flags.

    Returns:
        The exit status: 0; 2 after one line `error: ...` on stderr for what the user can fix
        (`SegmentError`, `OSError`, `ValueError`); 130 after Ctrl-C, also where TensorFlow
        turned the interruption into another exception (it does while it traces a function).
        Any other exception propagates with its traceback.
    """
    with _program_logging(args), _ctrl_c_noted() as ctrl_c:
        try:
            command(args)
        except KeyboardInterrupt:
            return interrupted()
        except Exception as error:
            if ctrl_c:
                return interrupted()
            if not isinstance(error, (SegmentError, OSError, ValueError)):
                raise
            print(f"error: {one_line(error)}", file=sys.stderr)
            return 2
    return 0


def interrupted():
    """Say on stderr that the program was interrupted; return its exit status, 130."""
    print("interrupted: nothing more was written", file=sys.stderr)
    return 130


def one_line(error):
    """`error`'s message on one line (its type's name where it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


@contextlib.contextmanager
def _program_logging(args):
    """The log levels of the module docstring; the library's own level restored after."""
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=logging.INFO if args.verbose else max(level, logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    ours = logging.getLogger("segment")
    previous = ours.level
    ours.setLevel(level)
    logging.getLogger("tensorflow").handlers.clear()
    try:
        yield
    finally:
        ours.setLevel(previous)


@contextlib.contextmanager
def _ctrl_c_noted():
    """A list that gets an item when Ctrl-C (SIGINT) arrives, which still raises
    KeyboardInterrupt. Where Python's own handler is not the one in place (a process started
    with SIGINT ignored, as `nohup` and `&` in a script do, or a caller's handler) and outside
    the main thread, SIGINT is left as it is and the list stays empty."""
    seen = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield seen
        return

    def note(signum, frame):
        seen.append(signum)
        signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt

    signal.signal(signal.SIGINT, note)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
