"""The programs' process: log levels, one line per error, Ctrl-C however it surfaces."""

import argparse
import logging
import os
import signal
import time

from segment.console import run_program

import pytest


def flags(flag=""):
    return argparse.Namespace(quiet=flag == "-q", verbose=flag == "-v")


@pytest.mark.parametrize("flag, lines", [
    ("", ["INFO segment.workflow: ours", "WARNING tensorflow: its warning"]),
    ("-v", ["DEBUG segment.workflow: our detail", "INFO segment.workflow: ours",
            "INFO jax._src.xla_bridge: its INFO line", "WARNING tensorflow: its warning"]),
    ("-q", ["WARNING tensorflow: its warning"])])
def test_programs_log_our_lines_and_other_libraries_warnings_once(flag, lines, capfd):
    # As in a driver: no handler on the root logger yet, TensorFlow's logger with its own.
    root, ours, tensorflow = (logging.getLogger(name) for name in ("", "segment", "tensorflow"))
    saved = [(logger, logger.handlers[:], logger.level) for logger in (root, tensorflow)]
    root.handlers.clear()
    tensorflow.handlers[:] = [logging.StreamHandler()]
    level = ours.level

    def command(_):
        logging.getLogger("segment.workflow").debug("our detail")
        logging.getLogger("segment.workflow").info("ours")
        logging.getLogger("jax._src.xla_bridge").info("its INFO line")
        tensorflow.warning("its warning")

    try:
        assert run_program(command, flags(flag)) == 0
    finally:
        for logger, handlers, logger_level in saved:
            logger.handlers[:] = handlers
            logger.setLevel(logger_level)
    assert capfd.readouterr().err.splitlines() == lines
    assert ours.level == level  # as the program found it (train_main from a notebook)


@pytest.mark.parametrize("raised, status, message", [
    (ValueError("a size\nof 0"), 2, "error: a size of 0\n"),
    (KeyboardInterrupt(), 130, "interrupted: nothing more was written\n")])
def test_an_error_the_user_can_fix_is_one_line(raised, status, message, capsys):
    def command(_):
        raise raised

    assert run_program(command, flags("-q")) == status
    assert capsys.readouterr().err == message
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_program(lambda _: 1 / 0, flags("-q"))


def test_ctrl_c_that_tensorflow_turned_into_another_error_still_reads_as_interrupted(capsys):
    def command(_):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler runs first
        except KeyboardInterrupt:  # as TensorFlow's tracing does
            raise TypeError("Failed to convert elements of (None, 4, 4, 32) to Tensor") from None

    def handler_in_place(_):
        in_place.append(signal.getsignal(signal.SIGINT))

    in_place = []
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        assert run_program(command, flags("-q")) == 130
        assert capsys.readouterr().err == "interrupted: nothing more was written\n"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # started with `nohup` or `&`: left so
        assert run_program(handler_in_place, flags("-q")) == 0
        assert in_place == [signal.SIG_IGN] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
