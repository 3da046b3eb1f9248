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


def test_a_failed_init_is_answered_as_the_python_runtime_answers_it(monkeypatch):
    from tgrelay_local.engine import init_function
    from tgrelay_local.moto_seams import LocalFunction

    assert init_function("tgrelay.no_such_module", "handler")[2]["errorType"] == "Runtime.ImportModuleError"
    import tgrelay.register_webhook

    given = {name: "x" for name in tgrelay.register_webhook.SETTINGS.required}
    with installed(), running_as(given):
        module, handler, error = init_function("tgrelay.register_webhook", "no_such_handler")
    assert (handler, error["errorType"]) == (None, "Runtime.HandlerNotFound")
    assert error["errorMessage"] == "Handler 'no_such_handler' missing on module 'tgrelay.register_webhook'"
    with installed(), running_as({}):  # an environment without the module's settings
        module, handler, error = init_function("tgrelay.send_reply", "handler")
    assert error["errorType"] == "ConfigurationError" and "TABLE_NAME" in error["errorMessage"]

    function = LocalFunction("f", "arn", None, 128, 3, {}, init_error=error)
    answers = [function.invoke({}) for _ in range(3)]
    assert answers[0] == answers[2]  # the same payload every time, not a growing traceback
    assert answers[0]["FunctionError"] == "Unhandled"
    assert answers[0]["Payload"]["requestId"] == ""  # Lambda sends no request id for an init error
