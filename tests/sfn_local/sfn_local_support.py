"""Shared by the Step Functions Local tier (test_sfn_local.py, needs Docker) and its
Docker-free checks (test_mock_config.py):

- the mock file and the state machine it is for;
- the definition as deployed: relay.asl.json with DefinitionSubstitutions resolved from
  template.yaml the way the local engine resolves them, every resource bound to a fake name;
- the expected outcome of every test case (one table, asserted against AWS's interpreter
  when Docker exists and against a model of Retry/Catch everywhere);
- the `scenario` markers of the local-engine workflow tests;
- the probe for a Docker engine, and the skip reason when none answers.
"""

import ast
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tgrelay_local.pipe import apply_input_template
from tgrelay_local.retry_plan import load_asl, retrier_for, retry_waits
from tgrelay_local.template import ROOT, Template

HERE = Path(__file__).resolve().parent
MOCK_CONFIG = HERE / "MockConfigFile.json"
WORKFLOW_TESTS = HERE.parent / "workflow"
PIPE_INPUT = ROOT / "events" / "aws" / "pipe_input.json"

# Where AWS documents it for the Docker image; SFN_MOCK_CONFIG names it.
MOCK_CONFIG_IN_CONTAINER = "/home/StepFunctionsLocal/MockConfigFile.json"
IMAGE = os.environ.get("TGRELAY_SFN_LOCAL_IMAGE", "amazon/aws-stepfunctions-local:latest")
PORT = 8083
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "tgrelay-sfn-local"

HAPPY_PATH = ("CheckEnvelope", "ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply", "MarkDone")
FLOOD_ROUND = ("FloodWaitedBefore", "FirstFloodWait", "AddFloodWait", "WithinFloodWaitBound", "FloodWait", "SendReply")


@dataclass(frozen=True)
class Scenario:
    status: str
    path: tuple[str, ...]
    retried: dict[str, tuple[str, ...]] = field(default_factory=dict)  # state -> errors it retried
    caught: dict[str, str] = field(default_factory=dict)  # state -> error it left through a Catch
    error: str | None = None  # the execution's error when it FAILED


# The expected outcome of every test case in MockConfigFile.json (a test keeps the two in step).
SCENARIOS = {
    "HappyPath": Scenario("SUCCEEDED", HAPPY_PATH),
    "Duplicate": Scenario(
        "SUCCEEDED",
        ("CheckEnvelope", "ClaimUpdate", "AlreadyHandled"),
        caught={"ClaimUpdate": "DynamoDB.ConditionalCheckFailedException"},
    ),
    "AgentRetriesThenSuccess": Scenario(
        "SUCCEEDED", HAPPY_PATH, retried={"CallAgent": ("AgentUnavailable", "AgentUnavailable")}
    ),
    "AgentTerminalFailure": Scenario(
        "FAILED",
        (
            "CheckEnvelope",
            "ClaimUpdate",
            "WaitForTurn",
            "CallAgent",
            "RecordFailure",
            "ApologizeToUser",
            "HandOnTurn",
            "SendToDeadLetterQueue",
            "Failed",
        ),
        caught={"CallAgent": "AgentRejected"},
        error="AgentRejected",
    ),
    # The flood wait: Telegram's retry_after (30 s in the mocked Cause) waited by FloodWait, then sent.
    "TelegramRateLimitThenSuccess": Scenario(
        "SUCCEEDED",
        (*HAPPY_PATH[:5], *FLOOD_ROUND, "MarkDone"),
        caught={"SendReply": "TelegramRateLimited"},
    ),
    "BlockedUser": Scenario(
        "SUCCEEDED",
        ("CheckEnvelope", "ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply", "MarkUndeliverable"),
        caught={"SendReply": "RecipientUnavailable"},
    ),
}


def load_mock_config() -> dict:
    return json.loads(MOCK_CONFIG.read_text())


def mock_test_cases() -> dict[str, dict[str, str]]:
    """Test case name -> {state: mocked response name}, for the template's state machine."""
    name, _ = state_machine()
    return load_mock_config()["StateMachines"][name]["TestCases"]


def state_machine(template: Template | None = None) -> tuple[str, dict]:
    """The template's state machine: (logical id, properties). The logical id is the name it
    gets in Step Functions Local, and so the key of MockConfigFile.json's StateMachines."""
    return (template or Template()).resource("AWS::Serverless::StateMachine")


def bind_fake_resources(template: Template) -> Template:
    """Give every resource of the template a name and ARN, as a deployment would."""
    for logical_id, resource in template.doc["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        name = f"{STACK}-{logical_id}"
        if kind == "AWS::SQS::Queue":
            name += ".fifo" if props.get("FifoQueue") else ""
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            template.bind(logical_id, url, Arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}", QueueName=name)
        elif kind == "AWS::DynamoDB::Table":
            template.bind(logical_id, name, Arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
        elif kind == "AWS::Serverless::Function":
            template.bind(logical_id, name, Arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
        else:
            service = kind.split("::")[1].lower()
            template.bind(logical_id, name, Arn=f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}")
    return template


def deployed_definition() -> tuple[str, str, Template]:
    """(state machine name, the ASL with DefinitionSubstitutions resolved, the bound template).

    Resolved as the local engine does (engine.LocalRelay._create_state_machine): the
    template's DefinitionSubstitutions, each `${Key}` replaced by its resolved value."""
    template = bind_fake_resources(Template())
    name, props = state_machine(template)
    definition = (ROOT / props["DefinitionUri"]).read_text()
    for key, value in template.resolve(props.get("DefinitionSubstitutions", {})).items():
        definition = definition.replace("${" + key + "}", str(value))
    return name, definition, template


def execution_input(update_id: int, template: Template | None = None) -> tuple[list, dict, dict]:
    """What the pipe gives an execution for `update_id`: (the execution's input, the envelope, the SQS
    record it came from). The record is events/aws/pipe_input.json's; the input is that array of one
    record under the pipe's InputTemplate from template.yaml, as the local engine's pipe applies it."""
    (record,) = json.loads(PIPE_INPUT.read_text())
    envelope = json.loads(record["body"])
    envelope["update_id"] = update_id
    record["body"] = json.dumps(envelope)
    record["attributes"]["MessageDeduplicationId"] = str(update_id)
    _, pipe = (template or Template()).resource("AWS::Pipes::Pipe")
    input_template = pipe["TargetParameters"].get("InputTemplate")
    item = record if input_template is None else apply_input_template(input_template, record)
    return [item], envelope, record


def mocked_response(response_name: str, invocation: int, responses: dict | None = None) -> dict:
    """The entry ({"Return": ...} or {"Throw": ...}) of a mocked response for one invocation
    (0 is the first attempt, 1 the first retry; keys are "N" or an inclusive range "N-M")."""
    responses = load_mock_config()["MockedResponses"] if responses is None else responses
    for key, entry in responses[response_name].items():
        first, _, last = key.partition("-")
        if int(first) <= invocation <= int(last or first):
            return entry
    raise LookupError(f"{response_name} has no response for invocation {invocation}: the execution would fail")


def longest_wait(asl: dict | None = None) -> float:
    """The longest time any test case spends in Retry waits (at the top of the jitter range) and
    flood waits (the retry_after of each TelegramRateLimited its mocks throw)."""
    asl = asl or load_asl()
    totals = [0.0]
    for case, scenario in SCENARIOS.items():
        total = 0.0
        for state, errors in scenario.retried.items():
            for error in set(errors):
                total += sum(retry_waits(retrier_for(asl, state, error))[: errors.count(error)])
        for response in _mocked_responses_of(case):
            for entry in response.values():
                thrown = entry.get("Throw", {})
                if thrown.get("Error") == "TelegramRateLimited":
                    total += int(json.loads(thrown["Cause"])["errorMessage"].split(" ")[4])
        totals.append(total)
    return max(totals)


def _mocked_responses_of(case: str) -> list[dict]:
    config = load_mock_config()
    name, _ = state_machine()
    cases = config["StateMachines"][name]["TestCases"]
    return [config["MockedResponses"][response] for response in cases.get(case, {}).values()]


# -- a model of how the mocks drive the ASL's Retry and Catch -------------------------


@dataclass
class Walk:
    status: str = "RUNNING"
    path: list[str] = field(default_factory=list)
    retried: dict[str, list[str]] = field(default_factory=dict)
    caught: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    invocations: dict[str, int] = field(default_factory=dict)


def _handles(error_equals: list[str], error: str) -> bool:
    return error in error_equals or "States.ALL" in error_equals or "States.TaskFailed" in error_equals


def walk(test_case: dict[str, str], responses: dict, asl: dict | None = None, limit: int = 100) -> Walk:
    """Follow the ASL from StartAt with the test case's mocked responses, applying Retry
    (per retrier, up to MaxAttempts) and Catch in order, as the States Language specifies.
    Control flow only: no data, no waits; a Choice (CheckEnvelope) goes the way of an envelope, its
    last rule, as every case runs on execution_input's envelope. Fails where Step Functions Local would (a Task
    state reached without a mock, an invocation without a response)."""
    asl = asl or load_asl()
    result, caught_errors = Walk(), {}
    flood: dict[str, int] = {}  # $.flood as the flood-wait states compute it (the one data the model keeps)
    name = asl["StartAt"]
    for _ in range(limit):
        state = asl["States"][name]
        result.path.append(name)
        kind = state["Type"]
        if kind == "Succeed":
            result.status = "SUCCEEDED"
            return result
        if kind == "Fail":
            result.status = "FAILED"
            path = state.get("ErrorPath", "")
            result.error = caught_errors.get(path.removesuffix(".Error")) if path else state.get("Error")
            return result
        if kind == "Pass":
            _flood_pass(state, flood, caught_errors)
            next_name = state.get("Next")
        elif kind == "Wait":
            next_name = state["Next"]
        elif kind == "Choice" and name == "CheckEnvelope":
            next_name = state["Choices"][-1]["Next"]  # the scenarios send well-formed envelopes
        elif kind == "Choice":
            next_name = _choose(state, flood)
        elif kind == "Task":
            next_name = _run_task(name, state, test_case, responses, result, caught_errors)
            if result.status == "FAILED":
                return result
        else:
            raise NotImplementedError(f"the model does not know {kind} states ({name})")
        if next_name is None:  # End
            result.status = "SUCCEEDED"
            return result
        name = next_name
    raise RuntimeError(f"more than {limit} transitions: a loop?")


def _run_task(name, state, test_case, responses, result, caught_errors) -> str | None:
    if name not in test_case:
        raise AssertionError(f"{name} is reached but not mocked: Step Functions Local would call the real service")
    retriers = state.get("Retry", [])
    attempts = [0] * len(retriers)
    while True:
        invocation = result.invocations.get(name, 0)
        result.invocations[name] = invocation + 1
        entry = mocked_response(test_case[name], invocation, responses)
        if "Return" in entry:
            return state.get("Next")
        error = entry["Throw"]["Error"]
        index = next((i for i, r in enumerate(retriers) if _handles(r["ErrorEquals"], error)), None)
        if index is not None and attempts[index] < retriers[index].get("MaxAttempts", 3):
            attempts[index] += 1
            result.retried.setdefault(name, []).append(error)
            continue
        catcher = next((c for c in state.get("Catch", []) if _handles(c["ErrorEquals"], error)), None)
        if catcher is None:
            result.status, result.error = "FAILED", error
            return None
        result.caught[name] = error
        caught_errors[catcher.get("ResultPath", "$")] = error
        caught_errors["cause"] = entry["Throw"].get("Cause", "")
        return catcher["Next"]


def _flood_pass(state: dict, flood: dict[str, int], caught_errors: dict) -> None:
    """What FirstFloodWait, NextFloodWait and AddFloodWait compute into $.flood: the waits so far,
    plus the retry_after AddFloodWait reads from the caught error (the fifth word of its message)."""
    if state.get("ResultPath") != "$.flood":
        return
    parameters = state["Parameters"]
    if "waited" in parameters:
        flood["waited"] = parameters["waited"]
    if "retry_after.$" in parameters:
        asked = int(json.loads(caught_errors["cause"])["errorMessage"].split(" ")[4])
        flood["retry_after"], flood["waited"] = asked, flood["waited"] + asked


def _choose(state: dict, flood: dict[str, int]) -> str:
    """A Choice over $.flood (the only data the model keeps): IsPresent and NumericGreaterThan."""
    for rule in state["Choices"]:
        variable = rule["Variable"]
        if variable == "$.flood" and "IsPresent" in rule:
            if bool(flood) == rule["IsPresent"]:
                return rule["Next"]
        elif variable == "$.flood.waited" and "NumericGreaterThan" in rule:
            if flood["waited"] > rule["NumericGreaterThan"]:
                return rule["Next"]
        else:
            raise NotImplementedError(f"the model does not know the Choice rule {rule}")
    return state["Default"]


# -- the local engine's side: scenario markers ----------------------------------------


def scenario_markers(directory: Path = WORKFLOW_TESTS) -> dict[str, list[str]]:
    """Scenario name -> the local-engine tests marked `@pytest.mark.scenario(name)` (read
    from the source, so nothing is imported or run)."""
    found: dict[str, list[str]] = {}
    for path in sorted(directory.glob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        module_names = [
            name
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
            for name in _scenario_names(node.value)
        ]
        functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
        for cls in (node for node in tree.body if isinstance(node, ast.ClassDef) and node.name.startswith("Test")):
            functions += [node for node in cls.body if isinstance(node, ast.FunctionDef)]
        for function in functions:
            if not function.name.startswith("test"):
                continue
            names = module_names + [name for d in function.decorator_list for name in _scenario_names(d)]
            for name in names:
                found.setdefault(name, []).append(f"{path.name}::{function.name}")
    return found


def _scenario_names(expression: ast.expr) -> list[str]:
    items = expression.elts if isinstance(expression, ast.List | ast.Tuple) else [expression]
    names = []
    for item in items:
        if isinstance(item, ast.Call) and ast.unparse(item.func) in ("pytest.mark.scenario", "mark.scenario"):
            (argument,) = item.args
            if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
                raise ValueError(f"scenario marker needs a literal name: {ast.unparse(item)}")
            names.append(argument.value)
    return names


# -- Docker ---------------------------------------------------------------------------

_FROM_TESTCONTAINERS = object()


def docker_skip_reason(host: str | None | object = _FROM_TESTCONTAINERS) -> str | None:
    """None when a Docker engine answers a ping; otherwise why the tier is not run.

    `host` defaults to where testcontainers will look (~/.testcontainers.properties tc.host,
    DOCKER_HOST, the current docker context); None means docker-py's default socket."""
    try:
        import docker
        import requests
        from testcontainers.core.docker_client import get_docker_host
    except ImportError as error:
        return f"the docker/testcontainers Python packages are missing ({error}): Step Functions Local tier not run"
    if host is _FROM_TESTCONTAINERS:
        host = get_docker_host()
    where = host or "DOCKER_HOST unset, default socket unix:///var/run/docker.sock"
    environment = (
        {**os.environ, "DOCKER_HOST": host}
        if host
        else {key: value for key, value in os.environ.items() if key != "DOCKER_HOST"}
    )
    try:
        client = docker.from_env(environment=environment, timeout=10, use_ssh_client=str(host).startswith("ssh://"))
        try:
            client.ping()
        finally:
            client.close()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        return f"no Docker engine answers ({where}: {error}): Step Functions Local tier not run"
    return None
