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


def test_leaving_puts_the_process_environment_and_thread_start_back():
    process, start = os.environ, threading.Thread.start
    with installed():
        assert os.environ is not process and threading.Thread.start is not start
        with installed():  # nested: reads through the outer view
            with running_as({"TABLE_NAME": "updates"}):
                assert dict(os.environ) == {"TABLE_NAME": "updates"}
            assert os.environ["PATH"] == process["PATH"]
    assert os.environ is process and threading.Thread.start is start


def test_the_view_joins_dicts_as_os_environ_does():
    with installed(), running_as({"TABLE_NAME": "updates"}):
        assert os.environ | {"QUEUE_URL": "q"} == {"TABLE_NAME": "updates", "QUEUE_URL": "q"}
        assert {"TABLE_NAME": "other", "QUEUE_URL": "q"} | os.environ == {"TABLE_NAME": "updates", "QUEUE_URL": "q"}


def test_a_failed_init_is_answered_as_the_python_runtime_answers_it(monkeypatch):
    from tgrelay_local.engine import init_function
    from tgrelay_local.moto_seams import LocalFunction

    assert init_function("tgrelay.no_such_module", "handler")[2]["errorType"] == "Runtime.ImportModuleError"
    import tgrelay.register_webhook

    # The process's environment as the rest: a module imported here keeps what it read at import
    # (Powertools' metrics namespace), and later tests in this process use that module.
    given = {**os.environ, **{name: "x" for name in tgrelay.register_webhook.SETTINGS.required}}
    with installed(), running_as(given):
        module, handler, error = init_function("tgrelay.register_webhook", "no_such_handler")
    assert (handler, error["errorType"]) == (None, "Runtime.HandlerNotFound")
    assert error["errorMessage"] == "Handler 'no_such_handler' missing on module 'tgrelay.register_webhook'"
    without = {name: value for name, value in os.environ.items() if name != "TABLE_NAME"}
    with installed(), running_as(without):  # an environment without a setting the module needs
        module, handler, error = init_function("tgrelay.send_reply", "handler")
    assert error["errorType"] == "ConfigurationError" and "TABLE_NAME" in error["errorMessage"]

    function = LocalFunction("f", "arn", None, 128, 3, {}, init_error=error)
    answers = [function.invoke({}) for _ in range(3)]
    assert answers[0] == answers[2]  # the same payload every time, not a growing traceback
    assert answers[0]["FunctionError"] == "Unhandled"
    assert answers[0]["Payload"]["requestId"] == ""  # Lambda sends no request id for an init error
