"""Guards of statemachine/relay.asl.json that no other workflow test exercises (issue 12, item 1).

Each test fails when its guard is removed or changed; the unit tier's are in tests/unit/test_unit_guards.py.
Faults are injected below moto's DynamoDB and SQS APIs (DynamoDBBackend, SQSBackend), so the
workflow's own service integrations meet them the way they would meet DynamoDB and SQS.
"""

import inspect
import json

import pytest
from moto.dynamodb.exceptions import DynamodbException
from moto.dynamodb.models import DynamoDBBackend
from moto.sqs.models import SQSBackend
from test_fault_matrix import THROTTLED, _throttle
from workflow_helpers import (
    HAPPY_PATH,
    chat_of,
    deliver_again,
    executions_for,
    make_update,
    mark,
    post,
    settle,
    take_dead_letters,
    update_id_of,
)

from tgrelay_local.history import state_path

INTERNAL_ERROR = "DynamoDB.InternalServerError"
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"
OTHER_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tgrelay-Relay:someone-else"
QUIET_END = "ClaimedByAnotherExecution"
# Each test starts and ends with an empty dead-letter queue, whatever the test did (conftest.py).
pytestmark = pytest.mark.usefixtures("empty_dead_letter_queue")


def _applied_then_lost(monkeypatch, update_id: int) -> list[str]:
    """ClaimUpdate's first PutItem of this update is applied to the table, and then its answer is
    lost: DynamoDB answers InternalServerError (a 500), as it may after a write it did make. Once."""
    original = DynamoDBBackend.put_item
    signature = inspect.signature(original)
    pk = {"S": f"update#{update_id}"}
    lost: list[str] = []

    def put_item(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if not lost and signature.bind(self, *args, **kwargs).arguments["item_attrs"].get("pk") == pk:
            lost.append(INTERNAL_ERROR)
            raise DynamodbException(
                "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error", code=500
            )
        return result

    monkeypatch.setattr(DynamoDBBackend, "put_item", put_item)
    return lost


def _dead_letter_sends(monkeypatch, relay) -> list[dict]:
    """Every SendMessage that reaches the dead-letter queue, as SQS receives it (below moto's API)."""
    queue_name = relay.dead_letter_queue_url.rsplit("/", 1)[1]
    original = SQSBackend.send_message
    signature = inspect.signature(original)
    sends: list[dict] = []

    def send_message(self, *args, **kwargs):
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments["queue_name"] == queue_name:
            sends.append(
                {
                    "deduplication_id": arguments.get("deduplication_id"),
                    "group_id": arguments.get("group_id"),
                    "update_id": json.loads(arguments["message_body"])["update_id"],
                }
            )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SQSBackend, "send_message", send_message)
    return sends


def _execution_name(execution: dict) -> str:
    return execution["executionArn"].rsplit(":", 1)[1]


# -- ClaimUpdate: "... OR execution = :execution" ----------------------------------------------------


def test_a_claim_applied_but_unanswered_is_taken_again_by_its_retry(relay, monkeypatch):
    """The PutItem went through but its answer was lost; ClaimUpdate retries it and meets its own
    claim. Without the clause that lets this very execution take it again, the retry ends in
    AlreadyHandled and the update is never answered."""
    update = make_update(text="my claim, my answer lost")
    update_id, since = update["update_id"], mark(relay)
    lost = _applied_then_lost(monkeypatch, update_id)

    assert post(relay, update).status_code == 200
    (execution,) = settle(relay, since)

    assert lost == [INTERNAL_ERROR]
    steps = state_path(relay.history(execution["executionArn"]))
    assert [step.state for step in steps] == HAPPY_PATH
    assert steps[1].retries == [INTERNAL_ERROR]  # steps[0]: CheckEnvelope
    assert execution["status"] == "SUCCEEDED"
    assert [message["text"] for message in relay.telegram.sent_messages(chat_of(update))] == [
        "echo: my claim, my answer lost"
    ]
    claim = relay.claim(update_id)
    assert claim["status"] == "DONE" and claim["execution"] == execution["executionArn"]


# -- RecordFailure: "attribute_not_exists(pk) OR execution = :execution" --------------------------


def _claim_throttled_for_good(relay, since: int, throttled: list) -> tuple[dict, list]:
    """The one execution since `since`, whose ClaimUpdate was throttled on every attempt: (it, its steps)."""
    (execution,) = settle(relay, since)
    steps = state_path(relay.history(execution["executionArn"]))
    assert throttled and steps[1].failures == [THROTTLED] * len(throttled)
    return execution, steps


def _ends_quietly(relay, execution: dict, steps: list) -> None:
    """RecordFailure met the claim, its condition turned it away, and the execution ended there:
    no apology, no hand-on, no dead letter (issue 14, finding 1)."""
    assert [step.state for step in steps][-2:] == ["RecordFailure", QUIET_END]
    (record_failure,) = [step for step in steps if step.state == "RecordFailure"]
    assert record_failure.failures == [CONDITION_FAILED]
    assert execution["status"] == "SUCCEEDED"
    assert take_dead_letters(relay) == []


def test_record_failure_leaves_a_claim_another_execution_holds_alone(relay, monkeypatch):
    """ClaimUpdate fails for good (throttled on every attempt) while another execution holds the
    claim: RecordFailure must not mark that claim FAILED under this execution (the answer in
    progress would lose its claim), and this execution must not apologise or dead-letter the update
    the other one is answering."""
    update = make_update(text="claim held by another")
    update_id, since = update["update_id"], mark(relay)
    foreign = {
        "pk": {"S": f"update#{update_id}"},
        "status": {"S": "IN_PROGRESS"},
        "execution": {"S": OTHER_EXECUTION},
        "claimed_at": {"S": "2026-01-01T00:00:00Z"},
        "expires_at": {"N": "1900000000"},
    }
    relay.dynamodb.put_item(TableName=relay.table_name, Item=foreign)
    throttled = _throttle(monkeypatch, update_id, "ClaimUpdate", None)

    post(relay, update)
    execution, steps = _claim_throttled_for_good(relay, since, throttled)

    stored = relay.dynamodb.get_item(TableName=relay.table_name, Key={"pk": foreign["pk"]}, ConsistentRead=True)["Item"]
    assert stored == foreign
    _ends_quietly(relay, execution, steps)
    assert relay.telegram.sent_messages(chat_of(update)) == [], "no apology for a message another execution answers"


def test_a_copy_meeting_a_finished_claim_it_cannot_write_ends_quietly(relay, monkeypatch):
    """The update is answered; a later copy of it (SQS delivered it again) cannot write its claim
    (throttled for good): one reply in the chat, no apology, no dead letter, the claim still the
    first execution's DONE."""
    update = make_update(text="answered, then a copy")
    update_id, since = update["update_id"], mark(relay)
    post(relay, update)
    (first,) = settle(relay, since)
    assert first["status"] == "SUCCEEDED"

    since = mark(relay)
    throttled = _throttle(monkeypatch, update_id, "ClaimUpdate", None)
    deliver_again(relay, first, "copy")
    execution, steps = _claim_throttled_for_good(relay, since, throttled)

    _ends_quietly(relay, execution, steps)
    assert [message["text"] for message in relay.telegram.sent_messages(chat_of(update))] == [
        "echo: answered, then a copy"
    ]
    claim = relay.claim(update_id)
    assert claim["status"] == "DONE" and claim["execution"] == first["executionArn"]


# -- SendToDeadLetterQueue: "MessageDeduplicationId.$": "$$.Execution.Name" ------------------------


def _fail_every_time(relay, update: dict) -> None:
    relay.agent.add_fault({"status": 400, "count": None, "match": {"update_id": update["update_id"]}})


def test_the_dead_letter_is_deduplicated_by_the_execution_name(relay, monkeypatch):
    update = make_update(text="dead letter id")
    since = mark(relay)
    sends = _dead_letter_sends(monkeypatch, relay)
    _fail_every_time(relay, update)

    post(relay, update)
    (execution,) = settle(relay, since)

    assert execution["status"] == "FAILED"
    assert sends == [
        {
            "deduplication_id": _execution_name(execution),
            "group_id": json.loads(execution["input"])[0]["group_id"],
            "update_id": update["update_id"],
        }
    ]


def test_an_update_failing_again_after_a_replay_is_dead_lettered_again(relay, monkeypatch):
    """Fail, replay, fail again, well within SQS's 5-minute deduplication window: two dead letters.
    With an id derived from the update (the same for both executions) SQS would drop the second
    message as a duplicate and the update would be lost. moto remembers a deduplication id only
    while its message is in the queue, so the first dead letter stays there during the replay (the
    update is sent to the updates queue again instead of moved), standing in for SQS's 5-minute memory."""
    update = make_update(text="fails twice")
    update_id, since = update["update_id"], mark(relay)
    sends = _dead_letter_sends(monkeypatch, relay)
    _fail_every_time(relay, update)

    post(relay, update)
    (first,) = settle(relay, since)
    deliver_again(relay, first, "replayed")
    settle(relay, since)
    first, second = executions_for(relay, update_id, since=since)

    assert first["status"] == second["status"] == "FAILED"
    # The behaviour first: both failures are parked (SQS keeps a message whose id it has not seen).
    dead = take_dead_letters(relay)
    assert [update_id_of(message) for message in dead] == [update_id, update_id]
    names = [_execution_name(first), _execution_name(second)]
    assert [send["deduplication_id"] for send in sends] == names
    assert [message["Attributes"]["MessageDeduplicationId"] for message in dead] == names
    assert [message["MessageAttributes"]["execution"]["StringValue"] for message in dead] == [
        first["executionArn"],
        second["executionArn"],
    ]


# -- CheckEnvelope: what is not an envelope is dead-lettered with the reason -------------------------

NOT_ENVELOPES = {
    "not-json": "hello from the console",
    "update-id-quoted": '{"update_id": "918273001", "chat_id": 918273001, "expires_at": 1900000000}',
    "no-update-id": '{"chat_id": 918273002, "expires_at": 1900000000, "text": "edited by hand"}',
    "not-an-object": "[918273003]",
}


@pytest.mark.parametrize("body", list(NOT_ENVELOPES.values()), ids=list(NOT_ENVELOPES))
def test_a_message_that_is_not_an_envelope_is_dead_lettered_with_the_reason(relay, body):
    """A message sent to the updates queue by hand (or a dead letter edited before its replay) that
    is not an envelope: on AWS its first path read would fail the execution with States.Runtime,
    which no Catch takes, after the pipe deleted the message. It must be parked with the reason."""
    since = mark(relay)
    relay.sqs.send_message(
        QueueUrl=relay.pipe.queue_url, MessageBody=body, MessageGroupId="by-hand", MessageDeduplicationId=str(since)
    )
    (execution,) = settle(relay, since)

    assert [step.state for step in state_path(relay.history(execution["executionArn"]))] == [
        "CheckEnvelope",
        "DeadLetterNotAnEnvelope",
        "NotAnEnvelope",
    ]
    assert (execution["status"], execution["error"]) == ("FAILED", "NotAnEnvelope")
    (dead,) = take_dead_letters(relay)
    assert json.loads(dead["Body"]) == json.loads(execution["input"]), "the record as the pipe passed it"
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes["error"] == "NotAnEnvelope"
    assert "not an envelope" in attributes["cause"]
    assert attributes["execution"] == execution["executionArn"]
    assert relay.claim(918273001) is None and relay.telegram.sent_messages(918273001) == []
