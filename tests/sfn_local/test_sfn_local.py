"""relay.asl.json run by AWS Step Functions Local, one execution per MockConfigFile.json test
case (`<state machine arn>#<test case>`): status, the path through the states, the retries
and catches, and what the tasks were asked to do, read from the execution history."""

import json

import pytest
from sfn_local_support import SCENARIOS, mock_test_cases, mocked_response

from tgrelay_local.history import state_path

pytestmark = pytest.mark.docker


def scheduled(events: list[dict]) -> dict[str, list[dict]]:
    """State -> the parameters of each task it scheduled (after Parameters were evaluated)."""
    found: dict[str, list[dict]] = {}
    state = None
    for event in sorted(events, key=lambda e: e["id"]):
        if event["type"].endswith("StateEntered"):
            state = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "TaskScheduled":
            found.setdefault(state, []).append(json.loads(event["taskScheduledEventDetails"]["parameters"]))
    return found


def mocked(case: str, state: str, invocation: int = 0) -> dict:
    return mocked_response(mock_test_cases()[case][state], invocation)


@pytest.mark.parametrize("case", sorted(mock_test_cases()))
def test_case_takes_its_path_with_its_retries_and_catches(case, executions):
    run, expected = executions[case], SCENARIOS[case]
    steps = state_path(run["events"])
    assert run["description"]["status"] == expected.status
    assert [step.state for step in steps] == list(expected.path)
    assert {step.state: tuple(step.retries) for step in steps if step.retries} == expected.retried
    caught = {step.state: step.result.removeprefix("caught ") for step in steps if step.result.startswith("caught ")}
    assert caught == expected.caught
    failed = [e["executionFailedEventDetails"] for e in run["events"] if e["type"] == "ExecutionFailed"]
    assert [details["error"] for details in failed] == ([expected.error] if expected.error else [])


def with_merged(envelope: dict, merged: list | None = None) -> dict:
    """The envelope as the states after WaitForTurn see it: its turn's merged messages at "merged"."""
    return {**envelope, "merged": [] if merged is None else merged}


def test_happy_path_tasks_get_the_deployed_names_and_the_update(executions, relay_machine):
    run = executions["HappyPath"]
    template, envelope = relay_machine["template"], run["envelope"]
    tasks = scheduled(run["events"])
    turns_function = template.attributes[("TurnsFunction", "Arn")]

    (claim,) = tasks["ClaimUpdate"]
    assert claim["TableName"] == template.refs["UpdatesTable"]
    assert claim["Item"]["pk"] == {"S": f"update#{envelope['update_id']}"}
    assert claim["Item"]["chat_id"] == {"N": str(envelope["chat_id"])}
    assert claim["Item"]["expires_at"] == {"N": str(envelope["expires_at"])}
    assert claim["Item"]["execution"] == {"S": run["arn"]}

    # The callback: Step Functions Local makes up the task token; the mock's Return is the turn's output.
    (wait,) = tasks["WaitForTurn"]
    assert wait["FunctionName"] == turns_function
    token = wait["Payload"].pop("token")
    assert isinstance(token, str) and token
    assert wait["Payload"] == {"action": "wait", "update": envelope, "execution": run["arn"]}
    merged = mocked("HappyPath", "WaitForTurn")["Return"]

    (call,) = tasks["CallAgent"]
    assert call["FunctionName"] == template.attributes[("CallAgentFunction", "Arn")]
    assert call["Payload"] == {"update": with_merged(envelope, merged), "execution": run["arn"]}

    agent_payload = mocked("HappyPath", "CallAgent")["Return"]["Payload"]
    (send,) = tasks["SendReply"]
    assert send["FunctionName"] == template.attributes[("SendReplyFunction", "Arn")]
    assert send["Payload"]["reply"] == agent_payload  # what the agent function answered, passed on

    chunks = mocked("HappyPath", "SendReply")["Return"]["Payload"]["chunks"]
    (done,) = tasks["MarkDone"]
    assert done["FunctionName"] == turns_function
    assert done["Payload"] == {
        "action": "finish",
        "outcome": "DONE",
        "update": with_merged(envelope, merged),
        "execution": run["arn"],
        "chunks": chunks,
    }
    output = json.loads(run["description"]["output"])
    assert output["delivery"] == {"chunks": chunks}
    assert output["update"] == with_merged(envelope, merged)
    assert output["group_id"] == run["record"]["attributes"]["MessageGroupId"]  # the pipe's InputTemplate
    assert "raw_body" not in output


def test_terminal_failure_releases_the_claim_hands_the_turn_on_and_parks_the_envelope(executions, relay_machine):
    run = executions["AgentTerminalFailure"]
    template, envelope, record = relay_machine["template"], run["envelope"], run["record"]
    thrown = mocked("AgentTerminalFailure", "CallAgent")["Throw"]
    tasks = scheduled(run["events"])
    update = with_merged(envelope, mocked("AgentTerminalFailure", "WaitForTurn")["Return"])

    (release,) = tasks["RecordFailure"]
    assert release["ExpressionAttributeValues"][":error"] == {"S": thrown["Error"]}
    assert release["ExpressionAttributeValues"][":execution"] == {"S": run["arn"]}
    (apology,) = tasks["ApologizeToUser"]
    assert apology["Payload"] == {"update": update, "apology": True}
    (hand_on,) = tasks["HandOnTurn"]
    assert hand_on["FunctionName"] == template.attributes[("TurnsFunction", "Arn")]
    assert hand_on["Payload"] == {
        "action": "finish",
        "outcome": "FAILED",
        "update": update,
        "execution": run["arn"],
        "error": thrown["Error"],
    }

    (dead_letter,) = tasks["SendToDeadLetterQueue"]
    assert dead_letter["QueueUrl"] == template.refs["DeadLetterQueue"]
    # States.JsonToString: the envelope re-serialised, its merged messages with it (replay answers them too).
    assert json.loads(dead_letter["MessageBody"]) == update
    assert dead_letter["MessageGroupId"] == record["attributes"]["MessageGroupId"]
    assert dead_letter["MessageDeduplicationId"] == run["name"]
    attributes = {name: value["StringValue"] for name, value in dead_letter["MessageAttributes"].items()}
    assert attributes == {
        "error": thrown["Error"],
        "cause": f"{thrown['Error']}: {thrown['Cause']}",
        "execution": run["arn"],
        "update_id": str(envelope["update_id"]),
    }
    (failed,) = [e["executionFailedEventDetails"] for e in run["events"] if e["type"] == "ExecutionFailed"]
    assert failed == {"error": thrown["Error"], "cause": thrown["Cause"]}


def test_rate_limited_reply_waits_what_telegram_asked_before_sending_again(executions):
    run = executions["TelegramRateLimitThenSuccess"]
    (wait,) = [step for step in state_path(run["events"]) if step.state == "FloodWait"]
    thrown = mocked("TelegramRateLimitThenSuccess", "SendReply")["Throw"]
    asked = int(json.loads(thrown["Cause"])["errorMessage"].split(" ")[4])  # AddFloodWait's reading
    assert asked == 30
    assert wait.seconds >= asked, "Step Functions Local sent again before Telegram's retry_after"
    assert len(scheduled(run["events"])["SendReply"]) == 2  # the refused attempt and the one after the wait


def test_blocked_user_is_marked_undeliverable_with_telegrams_reason(executions):
    run = executions["BlockedUser"]
    (mark,) = scheduled(run["events"])["MarkUndeliverable"]
    thrown = mocked("BlockedUser", "SendReply")["Throw"]
    assert mark["Payload"]["action"] == "finish"
    assert mark["Payload"]["outcome"] == "UNDELIVERABLE"
    assert mark["Payload"]["reason"] == thrown["Cause"]


def test_duplicate_never_calls_the_agent(executions):
    tasks = scheduled(executions["Duplicate"]["events"])
    assert set(tasks) == {"ClaimUpdate"}
