"""`import segment` turns TensorFlow's oneDNN kernels on and keeps TensorFlow's start-up quiet."""

import os
import subprocess
import sys

import pytest

CHECK = ("import os, sys, segment; from tensorflow.python.util import _pywrap_util_port as port; "
         "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled()); "
         "print('still here', file=sys.stderr)")


def run_python(code, **environment):
    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, **environment}, timeout=120)


@pytest.mark.parametrize("user_setting, expected", [(None, "1 True"), ("0", "0 False")])
def test_onednn_is_on_unless_the_user_turned_it_off(user_setting, expected):
    environment = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    if user_setting is not None:
        environment["TF_ENABLE_ONEDNN_OPTS"] = user_setting
    done = run_python(CHECK, **environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected.split()
    # TensorFlow's oneDNN notice is hidden at log level 2, and stderr works after the import.
    assert done.stderr == "still here\n"


def test_start_up_notice_shows_when_the_log_level_allows_info():
    done = run_python("import segment", TF_CPP_MIN_LOG_LEVEL="0")
    assert done.returncode == 0
    assert "oneDNN custom operations are on" in done.stderr
