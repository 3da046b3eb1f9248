"""Everything about the Step Functions Local tier that can be checked without Docker: the
mock file against the ASL and the template, every test case walked through the ASL's
Retry/Catch, one scenario list for both engines, the definition it creates, and the skip."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from sfn_local_support import (
    HAPPY_PATH,
    SCENARIOS,
    deployed_definition,
    docker_skip_reason,
    execution_input,
    load_mock_config,
    mock_test_cases,
    scenario_markers,
    state_machine,
    walk,
)

from tgrelay_local.retry_plan import load_asl
from tgrelay_local.template import ROOT, Template

CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"


@pytest.fixture(scope="module")
def config() -> dict:
    return load_mock_config()


@pytest.fixture(scope="module")
def asl() -> dict:
    return load_asl()


def used_responses(config: dict) -> list[tuple[str, str, str]]:
    """(test case, state, mocked response name) for every mock of every test case."""
    return [
        (case, state, response)
        for machine in config["StateMachines"].values()
        for case, mocks in machine["TestCases"].items()
        for state, response in mocks.items()
    ]


def invocation_range(key: str) -> range:
    first, _, last = key.partition("-")
    return range(int(first), int(last or first) + 1)


def test_mock_file_is_for_the_templates_state_machine_only(config):
    assert set(config) == {"StateMachines", "MockedResponses"}
    logical_id, _ = state_machine()
    assert list(config["StateMachines"]) == [logical_id]
    assert list(config["StateMachines"][logical_id]) == ["TestCases"]
    assert deployed_definition()[0] == logical_id  # the name the tier creates it under


def test_test_cases_are_the_scenario_table(config):
    assert set(mock_test_cases()) == set(SCENARIOS)
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", case) for case in SCENARIOS)  # safe after '#' in an ARN


def test_mocked_states_exist_in_the_asl_and_are_tasks(config, asl):
    for case, state, _ in used_responses(config):
        assert state in asl["States"], f"{case} mocks {state}, which relay.asl.json does not have"
        assert asl["States"][state]["Type"] == "Task", f"{case} mocks {state}, which is not a Task"


def test_every_mocked_response_is_defined_used_and_well_formed(config):
    responses = config["MockedResponses"]
    used = {response for _, _, response in used_responses(config)}
    assert used - set(responses) == set(), "test cases name undefined responses"
    assert set(responses) - used == set(), "responses no test case uses"
    for name, entries in responses.items():
        covered = [n for key in entries for n in invocation_range(key)]
        # AWS: every invocation needs a response, numbered consecutively from 0.
        assert sorted(covered) == list(range(len(covered))), f"{name}: invocations {sorted(covered)}"
        for key, entry in entries.items():
            assert len(entry) == 1 and set(entry) <= {"Return", "Throw"}, f"{name}[{key}]: one Return or Throw"
            if "Throw" in entry:
                throw = entry["Throw"]
                assert set(throw) == {"Error", "Cause"}, f"{name}[{key}]"
                assert all(isinstance(throw[field], str) and throw[field] for field in throw), f"{name}[{key}]"


def test_thrown_errors_are_named_by_the_states_retry_or_catch(config, asl):
    """Named explicitly: a misspelt error would otherwise be caught by States.ALL and the
    test case would take the generic failure path instead of the one it is about."""
    for case, state, response in used_responses(config):
        handled = {
            error
            for rule in asl["States"][state].get("Retry", []) + asl["States"][state].get("Catch", [])
            for error in rule["ErrorEquals"]
        } - {"States.ALL", "States.TaskFailed"}
        for entry in config["MockedResponses"][response].values():
            if "Throw" in entry:
                error = entry["Throw"]["Error"]
                assert error in handled, f"{case}: {state} does not name {error} (it names {sorted(handled)})"


def test_returns_carry_what_the_states_read_from_them(config, asl):
    """ResultSelector paths must resolve in the mocked result (Step Functions fails the
    state otherwise), and a lambda:invoke result looks like one."""
    for case, state, response in used_responses(config):
        task = asl["States"][state]
        for key, entry in config["MockedResponses"][response].items():
            if "Return" not in entry:
                continue
            result = entry["Return"]
            if task["Resource"] == "arn:aws:states:::lambda:invoke":
                assert result.get("StatusCode") == 200 and "Payload" in result, f"{response}[{key}]"
            if task["Resource"] == CALLBACK:
                # A mocked callback returns what SendTaskSuccess would carry (Step Functions Local makes up
                # the token): for WaitForTurn, the envelopes merged into the turn, a list at $.update.merged.
                assert task["ResultPath"] == "$.update.merged"
                assert isinstance(result, list), f"{response}[{key}]: WaitForTurn's output is a list"
                assert all(isinstance(merged, dict) and "update_id" in merged for merged in result), response
            for selector in task.get("ResultSelector", {}).values():
                value = result
                for part in selector.removeprefix("$.").split("."):
                    assert isinstance(value, dict) and part in value, f"{case}: {state} reads {selector}"
                    value = value[part]


@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_case_drives_the_asl_along_its_expected_path(case, config, asl):
    """The same expectations test_sfn_local.py asserts on AWS's interpreter, checked here
    against a model of Retry and Catch: the mocks, the ASL and the table agree."""
    mocks = mock_test_cases()[case]
    result = walk(mocks, config["MockedResponses"], asl)
    expected = SCENARIOS[case]
    assert (result.status, result.path, result.error) == (expected.status, list(expected.path), expected.error)
    assert {state: tuple(errors) for state, errors in result.retried.items()} == expected.retried
    assert result.caught == expected.caught
    # Every state the case mocks is reached, and uses every response it was given.
    for state, response in mocks.items():
        defined = sum(len(invocation_range(key)) for key in config["MockedResponses"][response])
        assert result.invocations.get(state, 0) == defined, f"{case}: {state} used {result.invocations.get(state)}"


def test_every_case_past_the_claim_waits_for_its_turn_and_hands_it_on(asl):
    for case, mocks in mock_test_cases().items():
        path = SCENARIOS[case].path
        if len(path) <= 3:
            assert path == ("CheckEnvelope", "ClaimUpdate", "AlreadyHandled"), case
            continue
        assert path[:3] == HAPPY_PATH[:3], f"{case}: no turn is taken"
        assert asl["States"]["WaitForTurn"]["Resource"] == CALLBACK and "WaitForTurn" in mocks, case
        assert {"MarkDone", "MarkUndeliverable", "HandOnTurn"} & set(path), f"{case} ends without handing the turn on"


def test_the_model_follows_a_merged_message_and_a_lost_turn(config, asl):
    """The two ways WaitForTurn and the turn's holders leave the straight path, on the model only
    (a MockConfigFile test case needs a local-engine scenario marker too)."""
    responses = json.loads(json.dumps(config["MockedResponses"]))
    responses["MergedIntoEarlier"] = {
        "0": {"Throw": {"Error": "MergedIntoTurn", "Cause": "answered in the turn of update 918273600"}}
    }
    merged = walk({"ClaimUpdate": "ClaimTaken", "WaitForTurn": "MergedIntoEarlier"}, responses, asl)
    assert (merged.status, merged.path) == (
        "SUCCEEDED",
        ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "MergedIntoTurn"],
    )
    assert merged.caught == {"WaitForTurn": "MergedIntoTurn"}

    responses["TurnGrantedTwice"] = {"0-1": responses["TurnGranted"]["0"]}
    responses["TurnLostOnceThenAnswers"] = {
        "0": {"Throw": {"Error": "TurnLost", "Cause": "this execution no longer holds its conversation's turn"}},
        "1": responses["AgentAnswers"]["0"],
    }
    lost = dict(mock_test_cases()["HappyPath"], WaitForTurn="TurnGrantedTwice", CallAgent="TurnLostOnceThenAnswers")
    result = walk(lost, responses, asl)
    assert result.status == "SUCCEEDED"
    assert result.path == ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "CallAgent", *HAPPY_PATH[2:]]
    assert result.caught == {"CallAgent": "TurnLost"} and result.retried == {}
    assert result.invocations["WaitForTurn"] == 2


def test_the_execution_input_is_the_pipes_input_template():
    records, envelope, record = execution_input(918_273_699)
    assert records == [{"update": envelope, "group_id": record["attributes"]["MessageGroupId"]}]
    assert json.loads(record["body"]) == envelope and envelope["update_id"] == 918_273_699
    _, pipe = Template().resource("AWS::Pipes::Pipe")
    assert "<$.body>" in pipe["TargetParameters"]["InputTemplate"]  # read from template.yaml, not written here


def test_the_model_fails_where_step_functions_local_would(config, asl):
    happy = dict(mock_test_cases()["HappyPath"])
    del happy["SendReply"]
    with pytest.raises(AssertionError, match="SendReply is reached but not mocked"):
        walk(happy, config["MockedResponses"], asl)
    responses = json.loads(json.dumps(config["MockedResponses"]))
    del responses["AgentUnavailableTwiceThenAnswers"]["2"]  # two failures, then nothing
    with pytest.raises(LookupError, match="no response for invocation 2"):
        walk(mock_test_cases()["AgentRetriesThenSuccess"], responses, asl)
    misspelt = json.loads(json.dumps(config["MockedResponses"]))
    misspelt["AgentRejects"]["0"]["Throw"]["Error"] = "AgentRejectedd"
    result = walk(mock_test_cases()["AgentTerminalFailure"], misspelt, asl)
    assert result.error == "AgentRejectedd"  # caught by States.ALL: same path, wrong error


def test_every_scenario_runs_on_both_engines():
    on_sfn_local = set(mock_test_cases())
    on_local_engine = scenario_markers()
    only_sfn_local = sorted(on_sfn_local - set(on_local_engine))
    only_local = {name: tests for name, tests in on_local_engine.items() if name not in on_sfn_local}
    assert not only_sfn_local and not only_local, (
        f"MockConfigFile.json test cases without a @pytest.mark.scenario local-engine test: {only_sfn_local}; "
        f"scenario markers without a MockConfigFile.json test case: {only_local}"
    )


def test_scenario_markers_are_read_from_decorators_and_pytestmark(tmp_path):
    (tmp_path / "test_example.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from pytest import mark

            pytestmark = [pytest.mark.scenario("Everywhere")]

            @pytest.mark.scenario("One")
            @mark.scenario("Two")
            def test_a(): ...

            @pytest.mark.slow
            def test_b(): ...

            @pytest.mark.scenario("NotATest")
            def helper(): ...
            """
        )
    )
    assert scenario_markers(tmp_path) == {
        "Everywhere": ["test_example.py::test_a", "test_example.py::test_b"],
        "One": ["test_example.py::test_a"],
        "Two": ["test_example.py::test_a"],
    }


def test_scenario_marker_is_registered(pytestconfig):
    assert any(line.startswith("scenario(") for line in pytestconfig.getini("markers"))


def test_definition_is_the_asl_with_the_templates_substitutions(asl):
    _, props = state_machine()
    raw = (ROOT / props["DefinitionUri"]).read_text()
    placeholders = set(re.findall(r"\$\{([^}]+)\}", raw))
    assert placeholders == set(props["DefinitionSubstitutions"])

    name, definition, template = deployed_definition()
    assert "${" not in definition
    resolved = json.loads(definition)
    assert set(resolved["States"]) == set(asl["States"])
    values = template.resolve(props["DefinitionSubstitutions"])
    assert resolved["States"]["ClaimUpdate"]["Parameters"]["TableName"] == values["UpdatesTableName"]
    # Nothing but the placeholders changed.
    for key, value in values.items():
        raw = raw.replace("${" + key + "}", str(value))
    assert json.loads(raw) == resolved


@pytest.mark.parametrize(
    "host",
    ["unix:///nonexistent/tgrelay/docker.sock", "tcp://127.0.0.1:1", "bogus://not-a-docker-host"],
)
def test_unreachable_docker_gives_a_skip_reason_naming_where_it_looked(host):
    reason = docker_skip_reason(host)
    assert reason is not None
    assert reason.startswith(f"no Docker engine answers ({host}: ")
    assert reason.endswith("): Step Functions Local tier not run")


def test_without_docker_the_tier_is_skipped_with_its_reason_not_errored(tmp_path):
    """The whole tier in a fresh pytest, pointed at a socket that does not exist (and a
    HOME without testcontainers properties or docker contexts)."""
    env = {**os.environ, "HOME": str(tmp_path), "DOCKER_HOST": "unix:///nonexistent/tgrelay/docker.sock"}
    env.pop("DOCKER_CONTEXT", None)
    env.pop("TC_HOST", None)
    env.pop("TESTCONTAINERS_HOST_OVERRIDE", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/sfn_local/test_sfn_local.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    (summary,) = re.findall(r"^=* ?(\d+ skipped.*?) ?=*$", output, re.MULTILINE)
    assert re.fullmatch(r"\d+ skipped in [\d.]+s( \(.*\))?", summary), output  # nothing passed, failed or errored
    skipped = int(summary.split()[0])
    assert skipped >= len(SCENARIOS)
    lines = re.findall(r"^SKIPPED \[(\d+)\] tests/sfn_local/\S+:\d+: (.*)$", output, re.MULTILINE)
    assert sum(int(count) for count, _ in lines) == skipped, output
    for _, reason in lines:
        assert reason.startswith("no Docker engine answers (unix:///nonexistent/tgrelay/docker.sock: "), reason
        assert reason.endswith("): Step Functions Local tier not run"), reason


def test_the_model_gives_up_flood_waits_past_the_bound(config, asl):
    """Telegram asking for 1000 s on every send: three flood waits (3000 s), the fourth would pass
    the 3600 s bound, so the update fails with TelegramRateLimited (model only)."""
    responses = json.loads(json.dumps(config["MockedResponses"]))
    cause = {"errorMessage": "Telegram asked to wait 1000 s before sending again", "errorType": "TelegramRateLimited"}
    responses["AlwaysFlooded"] = {"0-9": {"Throw": {"Error": "TelegramRateLimited", "Cause": json.dumps(cause)}}}
    mocks = dict(mock_test_cases()["HappyPath"], SendReply="AlwaysFlooded")
    for state in ("RecordFailure", "ApologizeToUser", "HandOnTurn", "SendToDeadLetterQueue"):
        mocks.setdefault(state, mock_test_cases()["AgentTerminalFailure"][state])

    flooded = walk(mocks, responses, asl)

    assert (flooded.status, flooded.error) == ("FAILED", "TelegramRateLimited")
    assert flooded.path.count("FloodWait") == 3
    assert flooded.invocations["SendReply"] == 4
    assert flooded.path[-5:] == ["RecordFailure", "ApologizeToUser", "HandOnTurn", "SendToDeadLetterQueue", "Failed"]
