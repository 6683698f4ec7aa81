"""`import segment` turns TensorFlow's oneDNN kernels on, keeps TensorFlow's start-up quiet and
leaves JAX unloaded."""

import importlib.util
import os
import subprocess
import sys

import pytest

CHECK = ("import os, sys, segment; from tensorflow.python.util import _pywrap_util_port as port; "
         "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled()); "
         "print('still here', file=sys.stderr)")
# TensorFlow loads without JAX; tf.lite's converter of JAX functions still gets JAX's jit.
JAX_DEFERRED = ("; jax_loaded = 'jax' in sys.modules; from tensorflow.lite.python import lite; "
                "print(jax_loaded, lite._jit(lambda x: x + 1)(1), 'jax' in sys.modules)")


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
    jax_installed = importlib.util.find_spec("jax") is not None
    done = run_python(CHECK + (JAX_DEFERRED if jax_installed else ""), **environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected.split() + (["False", "2", "True"] if jax_installed
                                                      else [])
    # TensorFlow's oneDNN notice is hidden at log level 2, and stderr works after the import.
    assert done.stderr == "still here\n"


def test_start_up_notice_shows_when_the_log_level_allows_info():
    done = run_python("import segment", TF_CPP_MIN_LOG_LEVEL="0")
    assert done.returncode == 0
    assert "oneDNN custom operations are on" in done.stderr
