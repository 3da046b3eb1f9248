"""The operator commands against a running local stack, through its AWS endpoint — the same
boto3 calls they make against a deployed stack."""

import json

import pytest
from test_turn_taking import hold_answer
from workflow_helpers import (
    AGENT_FAILURE_PATH,
    HAPPY_PATH,
    chat_of,
    envelope_of,
    executions_for,
    make_update,
    path_of,
    wait_for,
)

from tgrelay_local.cli import EXIT_FAILED, EXIT_NOTHING_TO_DO, main
from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay, take_messages


@pytest.fixture(scope="module")
def relay():
    with LocalRelay(clock=RetryClock("recorded", jitter=1.0), aws_port=0) as engine:
        yield engine


def test_dlq_lists_replay_moves_and_history_shows_the_path(relay, capsys):
    update = make_update(text="please fail")
    relay.agent.add_fault({"status": 400, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()
    capsys.readouterr()

    assert main(["dlq", "--local", relay.aws_endpoint]) == 0
    listing = capsys.readouterr().out
    assert "1 message(s) in the dead-letter queue" in listing
    # The entry's heading line shows the error attribute, and only it (the cause starts with the
    # same word, so a substring match would pass showing the cause too).
    assert f"update {update['update_id']}  AgentRejected" in listing.splitlines()
    assert "merged into its turn" not in listing  # nothing was
    # The cause as the Lambda error's message, not its JSON with the stack trace.
    (cause,) = [line for line in listing.splitlines() if line.startswith("  cause: ")]
    assert cause == '  cause: AgentRejected: agent server answered 400: {"error": "injected 400"}'
    (failed,) = executions_for(relay, update["update_id"])
    assert failed["executionArn"] in listing

    assert main(["history", failed["executionArn"], "--local", relay.aws_endpoint]) == 0
    history = capsys.readouterr().out
    assert history.startswith("FAILED")
    states = [line.split()[0] for line in history.splitlines()[2:]]
    assert states == AGENT_FAILURE_PATH
    assert "caught AgentRejected" in history

    assert main(["replay", "--local", relay.aws_endpoint]) == 0
    assert "moved 1 message(s)" in capsys.readouterr().out
    relay.wait_idle()
    replayed = executions_for(relay, update["update_id"])[-1]
    assert replayed["status"] == "SUCCEEDED" and path_of(relay, replayed) == HAPPY_PATH
    # The dead letter's body is the envelope re-serialised by the workflow: the replay runs on it.
    assert envelope_of(replayed) == {**envelope_of(failed), "merged": []}
    texts = [message["text"] for message in relay.telegram.sent_messages(chat_of(update))]
    assert texts == [relay.template.parameters["ApologyText"], "echo: please fail"]
    # Nothing left: both commands say so and exit EXIT_NOTHING_TO_DO, not success or failure.
    assert main(["dlq", "--local", relay.aws_endpoint]) == EXIT_NOTHING_TO_DO
    assert f"the local stack tgrelay-local at {relay.aws_endpoint}: 0 message(s)" in capsys.readouterr().out
    assert main(["replay", "--local", relay.aws_endpoint]) == EXIT_NOTHING_TO_DO
    assert "the dead-letter queue is empty; nothing to replay" in capsys.readouterr().out


def test_an_execution_that_does_not_exist_is_one_line(relay, capsys):
    arn = relay.state_machine_arn.replace(":stateMachine:", ":execution:") + ":no-such-execution"
    assert main(["history", arn, "--local", relay.aws_endpoint]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert (
        captured.err
        == f"tgrelay history: no execution {arn} in the local stack tgrelay-local at {relay.aws_endpoint}\n"
    )


def test_the_local_aws_endpoint_serves_the_engines_resources(relay):
    import boto3

    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=relay.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    names = [machine["stateMachineArn"] for machine in sfn.list_state_machines()["stateMachines"]]
    assert relay.state_machine_arn in names
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=relay.state_machine_arn)["definition"])
    assert definition["StartAt"] == "CheckEnvelope"


def set_claim_in_progress(relay, update_id: int) -> None:
    """What a claim looks like when its execution's compensation gave up: still IN_PROGRESS."""
    relay.dynamodb.update_item(
        TableName=relay.table_name,
        Key={"pk": {"S": f"update#{update_id}"}},
        UpdateExpression="SET #status = :in_progress",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":in_progress": {"S": "IN_PROGRESS"}},
    )


def test_replay_releases_a_claim_its_failed_execution_left_in_progress(relay, capsys):
    update = make_update(text="compensation gave up")
    relay.agent.add_fault({"status": 400, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()
    (failed,) = executions_for(relay, update["update_id"])
    # As if RecordFailure had run out of retries: the claim still says IN_PROGRESS.
    set_claim_in_progress(relay, update["update_id"])
    capsys.readouterr()

    assert main(["replay", "--local", relay.aws_endpoint]) == 0
    assert "released 1 claim(s)" in capsys.readouterr().out
    relay.wait_idle()
    replayed = executions_for(relay, update["update_id"])[-1]
    assert replayed["executionArn"] != failed["executionArn"]
    assert replayed["status"] == "SUCCEEDED" and path_of(relay, replayed) == HAPPY_PATH
    assert relay.claim(update["update_id"])["status"] == "DONE"
    assert relay.telegram.sent_messages(chat_of(update))[-1]["text"] == "echo: compensation gave up"


def test_replay_of_a_failed_merged_turn_releases_every_claim_and_answers_it_once(relay, capsys, monkeypatch):
    """A turn that carried a message merged into it fails and parks one dead letter for both; its
    compensation gave up (both claims still IN_PROGRESS under the parked execution). `replay`
    releases both claims, and the replay answers both messages in one turn, once."""
    busy = make_update(text="keeps the turn")
    chat = chat_of(busy)
    head = make_update(text="rejected question", chat_id=chat)
    rider = make_update(text="and a follow-up", chat_id=chat)
    # busy's answer is held until both others wait: no race with a fixed delay under load.
    release = hold_answer(relay, monkeypatch, busy["update_id"])
    relay.agent.add_fault({"status": 400, "match": {"update_id": head["update_id"]}})
    relay.post_update(busy)
    # busy holds the chat's turn, in CallAgent.
    wait_for(lambda: [c for c in relay.agent.calls_snapshot() if c["request"]["update_id"] == busy["update_id"]])
    relay.post_update(head)
    relay.post_update(rider)
    # Both wait for the turn when busy's ends: head takes it, rider rides along.
    wait_for(
        lambda: [relay.turn_statuses(f"telegram:{chat}").get(u["update_id"]) for u in (head, rider)] == ["WAITING"] * 2
    )
    release.set()
    relay.wait_idle()

    (failed,) = executions_for(relay, head["update_id"])
    assert failed["status"] == "FAILED" and path_of(relay, failed) == AGENT_FAILURE_PATH
    (merged,) = executions_for(relay, rider["update_id"])
    assert path_of(relay, merged) == ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "MergedIntoTurn"]
    (dead,) = relay.dead_letters()
    assert json.loads(dead["Body"])["merged"] == [envelope_of(merged)]
    # As if RecordFailure and HandOnTurn had run out of retries: both claims still IN_PROGRESS,
    # held by the parked execution (the grant handed rider's claim to it).
    for update in (head, rider):
        assert relay.claim(update["update_id"])["execution"] == failed["executionArn"]
        set_claim_in_progress(relay, update["update_id"])
    capsys.readouterr()

    assert main(["dlq", "--local", relay.aws_endpoint]) == 0
    assert f"merged into its turn: {rider['update_id']}" in capsys.readouterr().out
    assert main(["replay", "--local", relay.aws_endpoint]) == 0
    assert "released 2 claim(s)" in capsys.readouterr().out
    relay.wait_idle()

    replayed = executions_for(relay, head["update_id"])[-1]
    assert replayed["status"] == "SUCCEEDED" and path_of(relay, replayed) == HAPPY_PATH
    # Answered in head's turn, not by an execution of its own.
    assert [e["executionArn"] for e in executions_for(relay, rider["update_id"])] == [merged["executionArn"]]
    texts = [message["text"] for message in relay.telegram.sent_messages(chat)]
    apology = relay.template.parameters["ApologyText"]
    assert texts == ["echo: keeps the turn", apology, "echo: rejected question\nand a follow-up"]
    assert [relay.claim(u["update_id"])["status"] for u in (head, rider)] == ["DONE", "DONE"]
    assert relay.dead_letters() == []


def test_dlq_shows_the_error_attribute_not_the_cause(relay, capsys):
    """An entry whose cause does not start with its error's name: `dlq` heads it with the error
    attribute exactly, and shows the cause on its own line."""
    update_id = make_update()["update_id"]
    cause = "the agent server answered 400: the request named no user"
    relay.sqs.send_message(
        QueueUrl=relay.dead_letter_queue_url,
        MessageBody=json.dumps({"update_id": update_id, "merged": []}),
        MessageGroupId="dlq-error-column",
        MessageDeduplicationId=f"dlq-error-column-{update_id}",
        MessageAttributes={
            "error": {"DataType": "String", "StringValue": "AgentRejected"},
            "cause": {"DataType": "String", "StringValue": cause},
            "execution": {"DataType": "String", "StringValue": "arn:aws:states:us-east-1:123456789012:execution:x:y"},
        },
    )
    capsys.readouterr()
    try:
        assert main(["dlq", "--local", relay.aws_endpoint]) == 0
        lines = capsys.readouterr().out.splitlines()
    finally:
        list(take_messages(relay.sqs, relay.dead_letter_queue_url))

    assert f"update {update_id}  AgentRejected" in lines
    heading = lines.index(f"update {update_id}  AgentRejected")
    assert lines[heading + 1] == f"  cause: {cause}"
