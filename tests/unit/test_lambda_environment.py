"""The local engine's per-invocation environments (local/tgrelay_local/lambda_environment.py)."""

import os
import threading

from tgrelay_local.lambda_environment import installed, running_as


def test_inside_an_invocation_os_environ_is_that_functions_and_writes_stay_there():
    process = os.environ
    function = {"TABLE_NAME": "updates"}
    with installed():
        with running_as(function):
            assert dict(os.environ) == {"TABLE_NAME": "updates"}
            assert os.getenv("PATH") is None  # not the process's
            os.environ["SET_BY_HANDLER"] = "1"
        assert os.environ.get("TABLE_NAME") is None and "SET_BY_HANDLER" not in os.environ
        assert os.getenv("PATH") == process["PATH"]  # outside: the process's, read and write
    assert function == {"TABLE_NAME": "updates", "SET_BY_HANDLER": "1"}
    assert os.environ is process


def test_a_thread_started_in_an_invocation_keeps_its_environment_and_others_do_not():
    seen = {}

    def read(name):
        seen[name] = os.environ.get("TABLE_NAME")

    with installed():
        with running_as({"TABLE_NAME": "updates"}):
            inside = threading.Thread(target=read, args=("inside",))
            inside.start()
        outside = threading.Thread(target=read, args=("outside",))
        outside.start()
        inside.join()
        outside.join()
    assert seen == {"inside": "updates", "outside": None}


def test_overlapping_engines_install_it_once_and_the_last_one_out_removes_it():
    process, start = os.environ, threading.Thread.start
    first, second = installed(), installed()
    first.__enter__()
    view = os.environ
    second.__enter__()
    assert os.environ is view is not process
    first.__exit__(None, None, None)  # not in the order they came
    assert os.environ is view
    second.__exit__(None, None, None)
    assert os.environ is process and threading.Thread.start is start
