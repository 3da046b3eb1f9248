"""The local engine patches three names inside moto (local/tgrelay_local/moto_seams.py).
If a moto upgrade moves one, these fail before any workflow test can mislead."""

import gc
import inspect
import json
import types
from importlib.metadata import version

from moto.stepfunctions.parser.asl.component.component import Component
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

from tgrelay_local import moto_seams
from tgrelay_local.clock import RetryClock
from tgrelay_local.template import ROOT


def test_powertools_metrics_go_to_the_stream_the_engine_gives(capsys):
    import io

    from aws_lambda_powertools import Metrics, single_metric
    from aws_lambda_powertools.metrics import MetricUnit

    from tgrelay_local.engine import metrics_to

    log = io.StringIO()
    with metrics_to(log):
        metrics = Metrics(namespace="seam-test", service="seam")
        metrics.add_metric(name="Flushed", unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()
        with single_metric(name="Single", unit=MetricUnit.Count, value=1, namespace="seam-test"):
            pass
    names = [json.loads(line)["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for line in log.getvalue().split()]
    assert names == ["Flushed", "Single"]
    assert capsys.readouterr().out == ""


def test_moto_is_the_pinned_version():
    # pyproject.toml pins moto; the seams were checked against this version.
    assert version("moto") == "5.2.5"


def test_every_seam_still_exists():
    for module, name in moto_seams.SEAMS:
        assert hasattr(module, name), f"moto moved {module.__name__}.{name}"


def test_lambda_seam_has_the_signature_the_engine_replaces_it_with():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    parameters = list(inspect.signature(lambda_eval_utils._invoke_lambda_function).parameters)
    assert parameters == ["parameters", "region", "state_credentials"]
    # ...and the integration still calls it by module-level name, so the patch takes effect.
    assert "_invoke_lambda_function(" in inspect.getsource(lambda_eval_utils.execute_lambda_function_integration)


def test_retry_waits_and_jitter_go_through_the_patched_names():
    from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl, retrier_decl

    assert "time.sleep(" in inspect.getsource(retrier_decl)
    assert "random.uniform(" in inspect.getsource(jitter_strategy_decl)


def test_a_handler_exception_is_reported_like_the_lambda_runtime():
    class AgentUnavailable(Exception):
        pass

    def handler(event, context):
        raise AgentUnavailable("down")

    function = moto_seams.LocalFunction("f", "arn:aws:lambda:us-east-1:123456789012:function:f", handler, 128, 3, {})
    answer = function.invoke({})
    assert answer["FunctionError"] == "Unhandled"
    assert answer["Payload"]["errorType"] == "AgentUnavailable"
    assert answer["Payload"]["errorMessage"] == "down"


def test_a_result_that_is_not_json_fails_like_the_lambda_runtime():
    function = moto_seams.LocalFunction("f", "arn", lambda event, context: {"when": object()}, 128, 3, {})
    assert function.invoke({})["FunctionError"] == "Unhandled"


def test_a_task_token_sent_while_another_execution_is_still_starting_is_not_an_attribute_error():
    """moto lists an execution as RUNNING before its worker has an environment; the engine's seam
    leaves such executions out, so SendTaskSuccess answers as Step Functions does (InvalidToken for
    a token nobody holds) instead of raising AttributeError into the handler that sent it."""
    from types import SimpleNamespace

    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    starting = SimpleNamespace(status=ExecutionStatus.RUNNING, exec_worker=SimpleNamespace(env=None))
    not_started = SimpleNamespace(status=ExecutionStatus.RUNNING, exec_worker=None)
    backend = SimpleNamespace(state_machines=[SimpleNamespace(executions=[starting, not_started])])

    assert moto_seams.started_executions_only(backend, ExecutionStatus.RUNNING) == []
    with moto_seams.Seams({}, RetryClock("recorded")):
        assert StepFunctionsParserBackend._get_executions(backend, ExecutionStatus.RUNNING) == []
    assert StepFunctionsParserBackend._get_executions(backend, ExecutionStatus.RUNNING) == [starting, not_started]


def test_each_invocation_thread_has_its_own_powertools_metric_sets():
    """Powertools keeps metrics in class-level dicts shared by every Metrics; the engine runs
    invocations as threads of one process, so it gives each thread its own sets (two flushing at
    once crashed a handler)."""
    import threading
    import types

    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    from tgrelay_local.engine import metrics_per_invocation

    handler_module = types.SimpleNamespace(metrics=Metrics(namespace="seam-test", service="seam"))
    seen_by_other_thread: list[list[str]] = []
    with metrics_per_invocation([handler_module]):
        handler_module.metrics.add_metric(name="Mine", unit=MetricUnit.Count, value=1)
        other = threading.Thread(
            target=lambda: seen_by_other_thread.append(list(handler_module.metrics.provider.metric_set))
        )
        other.start()
        other.join()
        mine = list(handler_module.metrics.provider.metric_set)
        handler_module.metrics.clear_metrics()

    assert mine == ["Mine"] and seen_by_other_thread == [[]]


def test_the_definition_is_parsed_once_and_every_heap_key_is_made_before_executions_share_it():
    definition = (ROOT / "statemachine" / "relay.asl.json").read_text()
    program = moto_seams.parsed_program(definition)
    assert moto_seams.parsed_program(definition) is program
    # Retry counters live in each execution's heap under the component's key; a key made lazily by
    # two executions at once could lose one's count. Every object reachable by any reference (not
    # the seam's own walk over attributes) is looked at.
    unmade, pending, seen, components = [], [program], set(), 0
    while pending:
        value = pending.pop()
        if id(value) in seen or isinstance(value, type | types.ModuleType | types.FunctionType | str | bytes):
            continue
        seen.add(id(value))
        if isinstance(value, Component):
            components += 1
            if isinstance(value, EvalComponent) and vars(value).get("_EvalComponent__heap_key") is None:
                unmade.append(type(value).__name__)
        pending.extend(gc.get_referents(value))
    assert components > 100 and unmade == []
