"""The operator commands against a running local stack, through its AWS endpoint — the same
boto3 calls they make against a deployed stack."""

import json

import pytest
from workflow_helpers import chat_of, executions_for, make_update

from tgrelay_local.cli import main
from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay


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
    assert f"update {update['update_id']}  AgentRejected" in listing
    (failed,) = executions_for(relay, update["update_id"])
    assert failed["executionArn"] in listing

    assert main(["history", failed["executionArn"], "--local", relay.aws_endpoint]) == 0
    history = capsys.readouterr().out
    assert history.startswith("FAILED")
    states = [line.split()[0] for line in history.splitlines()[2:]]
    assert states == [
        "Parse",
        "ClaimUpdate",
        "CallAgent",
        "RecordFailure",
        "ApologizeToUser",
        "SendToDeadLetterQueue",
        "Failed",
    ]
    assert "caught AgentRejected" in history

    assert main(["replay", "--local", relay.aws_endpoint]) == 0
    assert "moved 1 message(s)" in capsys.readouterr().out
    relay.wait_idle()
    replayed = executions_for(relay, update["update_id"])[-1]
    assert replayed["status"] == "SUCCEEDED"
    texts = [message["text"] for message in relay.telegram.sent_messages(chat_of(update))]
    assert texts[-1] == "echo: please fail"
    assert main(["dlq", "--local", relay.aws_endpoint]) == 0
    assert "0 message(s)" in capsys.readouterr().out


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
    assert definition["StartAt"] == "Parse"


def test_replay_releases_a_claim_its_failed_execution_left_in_progress(relay, capsys):
    update = make_update(text="compensation gave up")
    relay.agent.add_fault({"status": 400, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()
    (failed,) = executions_for(relay, update["update_id"])
    # As if RecordFailure had run out of retries: the claim still says IN_PROGRESS.
    relay.dynamodb.update_item(
        TableName=relay.table_name,
        Key={"pk": {"S": f"update#{update['update_id']}"}},
        UpdateExpression="SET #status = :in_progress",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":in_progress": {"S": "IN_PROGRESS"}},
    )
    capsys.readouterr()

    assert main(["replay", "--local", relay.aws_endpoint]) == 0
    assert "released 1 claim(s)" in capsys.readouterr().out
    relay.wait_idle()
    replayed = executions_for(relay, update["update_id"])[-1]
    assert replayed["executionArn"] != failed["executionArn"]
    assert replayed["status"] == "SUCCEEDED"
    assert relay.claim(update["update_id"])["status"] == "DONE"
    assert relay.telegram.sent_messages(chat_of(update))[-1]["text"] == "echo: compensation gave up"
