"""Every patch of moto internals the local engine needs, in one place (moto is pinned).

moto 5.2.x carries a port of LocalStack's ASL interpreter. These of its names (SEAMS) are
replaced while the engine runs:

- lambda_eval_utils._invoke_lambda_function: a Lambda task runs the real handler
  in-process and reports an exception the way the Lambda runtime does.
- retrier_decl.time: the sleep between Retry attempts goes through the RetryClock.
- wait_function.WaitFunction._wait_interval: a Wait state's wait (FloodWait) goes through the
  RetryClock too, so a test records it instead of waiting Telegram's retry_after.
- jitter_strategy_decl.random: FULL jitter draws through the RetryClock, so tests
  can pin it.
- execution.Execution.stop: StopExecution ends the execution at once, as on AWS (moto
  says ABORTED only once the state in flight returns), so the rule on its status change
  fires when it would on AWS.
- execution_worker.ExecutionWorker._get_evaluation_entrypoint: the state machine's definition is
  parsed once (ANTLR; a third of the engine's CPU when every execution parsed it again) and the
  program shared by every execution. Its components hold no per-execution state - that lives in
  each execution's Environment, under each component's heap_key - except that lazily made key,
  which is made here, before any execution runs, so two executions never race to make it.
- json_path.parse: a JSONPath ($.update.chat_id) parsed once per path (jsonpath_ng rebuilds its
  parser on every call); the parsed path is only read.
- DynamoHandler.call_action: one DynamoDB request at a time. moto's tables are plain dicts;
  a Query iterating a conversation while another thread adds to it fails with "dictionary
  changed size during iteration". DynamoDB itself serialises per item.

tests/unit/test_moto_seams.py fails loudly if moto moves any of them.
"""

import functools
import json
import logging
import threading
import traceback
import types
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any
from unittest import mock

from moto.dynamodb.responses import DynamoHandler
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl, retrier_decl
from moto.stepfunctions.parser.asl.component.component import Component
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend import execution as execution_backend
from moto.stepfunctions.parser.backend import execution_worker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from tgrelay_local.clock import RetryClock
from tgrelay_local.lambda_environment import running_as
from tgrelay_local.lambda_events import LambdaContext

# (module, attribute) pairs this file replaces; the seam test checks they still exist.
SEAMS = (
    (lambda_eval_utils, "_invoke_lambda_function"),
    (retrier_decl, "time"),
    (wait_function.WaitFunction, "_wait_interval"),
    (jitter_strategy_decl, "random"),
    (execution_backend.Execution, "stop"),
    (DynamoHandler, "call_action"),
    (execution_worker.ExecutionWorker, "_get_evaluation_entrypoint"),
    (json_path, "parse"),
    (StepFunctionsParserBackend, "_get_executions"),
)

Handler = Callable[[dict, Any], Any]


class LocalFunction:
    """A Lambda function of the template, run in this process with its own environment variables
    (lambda_environment.py). `init_error`: the error payload of a failed init (engine.init_function,
    e.g. ConfigurationError naming a variable the template does not give it), the answer to every
    invocation, with an empty requestId as Lambda gives it."""

    def __init__(
        self,
        name: str,
        arn: str,
        handler: Handler | None,
        memory_mb: int,
        timeout_s: int,
        environment: dict[str, str],
        init_error: dict | None = None,
    ):
        self.name, self.arn, self.handler = name, arn, handler
        self.memory_mb, self.timeout_s = memory_mb, timeout_s
        self.environment = environment
        self.init_error = init_error

    def invoke(self, event: dict) -> dict:
        """What lambda:Invoke answers: the result, or FunctionError 'Unhandled' with errorType (the
        exception's class name, as the Python runtime reports it; an init error the same way)."""
        if self.init_error is not None or self.handler is None:
            payload = self.init_error or {"errorType": "Runtime.HandlerNotFound", "errorMessage": "no handler"}
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "ExecutedVersion": "$LATEST",
                "Payload": {**payload, "requestId": ""},
            }
        context = LambdaContext(self.name, self.arn, self.memory_mb, self.timeout_s)
        try:
            with running_as(self.environment):
                # The runtime serialises the result: a handler returning something odd fails here too.
                payload = json.loads(json.dumps(self.handler(event, context)))
        except Exception as error:
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "ExecutedVersion": "$LATEST",
                "Payload": {
                    "errorMessage": str(error),
                    "errorType": type(error).__name__,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                },
            }
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": payload}


_all_executions = StepFunctionsParserBackend._get_executions


def started_executions_only(backend: StepFunctionsParserBackend, execution_status: Any = None) -> list:
    """moto's execution list for SendTaskSuccess/Failure/Heartbeat and map runs, without executions
    whose worker has not set up its environment yet. moto marks an execution RUNNING before its
    worker thread sets `exec_worker.env`; a SendTaskSuccess for another execution's token in that
    moment raised AttributeError ('NoneType' object has no attribute 'callback_pool_manager') into
    the calling handler, a failure no Retry names (seen under load). Such an execution holds no task
    token yet, so leaving it out changes no answer; Step Functions itself has no such moment."""
    executions = _all_executions(backend, execution_status)
    return [e for e in executions if e.exec_worker is not None and e.exec_worker.env is not None]


_parse_lock = threading.Lock()


def parsed_program(definition: str) -> EvalComponent:
    """The program of a state machine definition, parsed once and shared by its executions, with
    every component's heap_key made now (EvalComponent makes it on first use, unlocked). One parse
    at a time: executions starting together would each parse and run a program of their own."""
    with _parse_lock:
        return _parse(definition)


@functools.lru_cache(maxsize=16)
def _parse(definition: str) -> EvalComponent:
    program = AmazonStateLanguageParser.parse(definition)[0]
    seen: set[int] = set()
    pending: list[Any] = [program]
    while pending:
        value = pending.pop()
        if isinstance(value, list | tuple):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, Component) and id(value) not in seen:
            seen.add(id(value))
            if isinstance(value, EvalComponent):
                value.heap_key  # noqa: B018 (made now, before executions share it)
            pending.extend(vars(value).values())
    return program


def _shared_program(worker: execution_worker.ExecutionWorker) -> EvalComponent:
    return parsed_program(worker._evaluation_details.state_machine_details.definition)


class Seams:
    """Installs the patches; `functions` maps function ARN and name to LocalFunction."""

    def __init__(self, functions: dict[str, LocalFunction], clock: RetryClock):
        self.functions = functions
        self.clock = clock
        self.invocations: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def __enter__(self) -> "Seams":
        self._stack.enter_context(mock.patch.object(lambda_eval_utils, "_invoke_lambda_function", self._invoke))
        self._stack.enter_context(
            mock.patch.object(retrier_decl, "time", types.SimpleNamespace(sleep=self.clock.sleep))
        )
        self._stack.enter_context(
            mock.patch.object(jitter_strategy_decl, "random", types.SimpleNamespace(uniform=self.clock.uniform))
        )
        clock = self.clock

        def wait_interval(function, env, wait_seconds: int) -> None:
            clock.wait_state(wait_seconds, env.program_state_event)

        self._stack.enter_context(mock.patch.object(wait_function.WaitFunction, "_wait_interval", wait_interval))
        original_stop = execution_backend.Execution.stop

        def stop_at_once(execution, stop_date, error, cause):
            original_stop(execution, stop_date=stop_date, error=error, cause=cause)
            execution.exec_status, execution.stop_date = ExecutionStatus.ABORTED, stop_date

        self._stack.enter_context(mock.patch.object(execution_backend.Execution, "stop", stop_at_once))
        original_call_action = DynamoHandler.call_action
        dynamodb_lock = threading.RLock()

        def one_request_at_a_time(handler):
            with dynamodb_lock:
                return original_call_action(handler)

        self._stack.enter_context(mock.patch.object(DynamoHandler, "call_action", one_request_at_a_time))
        self._stack.enter_context(
            mock.patch.object(execution_worker.ExecutionWorker, "_get_evaluation_entrypoint", _shared_program)
        )
        self._stack.enter_context(
            mock.patch.object(json_path, "parse", functools.lru_cache(maxsize=1024)(json_path.parse))
        )
        self._stack.enter_context(
            mock.patch.object(StepFunctionsParserBackend, "_get_executions", started_executions_only)
        )
        # The interpreter logs every caught task error at ERROR with its whole state; that is
        # what Retry and Catch are for, and execution history already shows it.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def _invoke(self, parameters: dict, region: str, state_credentials: Any) -> dict:
        name = parameters["FunctionName"]
        raw = parameters.get("Payload") or b"{}"
        event = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        function = self.functions[name]
        with self._lock:
            self.invocations.append((function.name, event))
        return function.invoke(event)
