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
from run_helpers import executions_of, mark, post, settle, take_dead_letters, update_id_of
from test_fault_matrix import THROTTLED, _throttle
from workflow_helpers import HAPPY_PATH, chat_of, deliver_again, make_update

from tgrelay_local.history import state_path

INTERNAL_ERROR = "DynamoDB.InternalServerError"
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"
OTHER_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tgrelay-Relay:someone-else"


@pytest.fixture(autouse=True)
def empty_dead_letter_queue(relay):
    """Each test starts and ends with an empty dead-letter queue, whatever the test did."""
    take_dead_letters(relay)
    yield
    take_dead_letters(relay)


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
    assert steps[0].retries == [INTERNAL_ERROR]
    assert execution["status"] == "SUCCEEDED"
    assert [message["text"] for message in relay.telegram.sent_messages(chat_of(update))] == [
        "echo: my claim, my answer lost"
    ]
    claim = relay.claim(update_id)
    assert claim["status"] == "DONE" and claim["execution"] == execution["executionArn"]


# -- RecordFailure: "attribute_not_exists(pk) OR execution = :execution" --------------------------


@pytest.mark.parametrize("status", ["IN_PROGRESS", "DONE"], ids=["held", "finished"])
def test_record_failure_leaves_a_claim_of_another_execution_alone(relay, monkeypatch, status):
    """ClaimUpdate fails for good (throttled on every attempt) while another execution holds or has
    finished the claim: RecordFailure must not mark that claim FAILED under this execution (a replay
    would then answer the update a second time, or an answer in progress would lose its claim)."""
    update = make_update(text=f"claim {status.lower()} by another")
    update_id, since = update["update_id"], mark(relay)
    foreign = {
        "pk": {"S": f"update#{update_id}"},
        "status": {"S": status},
        "execution": {"S": OTHER_EXECUTION},
        "claimed_at": {"S": "2026-01-01T00:00:00Z"},
        "expires_at": {"N": "1900000000"},
    }
    relay.dynamodb.put_item(TableName=relay.table_name, Item=foreign)
    throttled = _throttle(monkeypatch, update_id, "ClaimUpdate", None)

    post(relay, update)
    (execution,) = settle(relay, since)

    stored = relay.dynamodb.get_item(TableName=relay.table_name, Key={"pk": foreign["pk"]}, ConsistentRead=True)["Item"]
    assert stored == foreign
    steps = state_path(relay.history(execution["executionArn"]))
    assert throttled and steps[0].failures == [THROTTLED] * len(throttled)
    # RecordFailure did meet the claim, and its condition turned it away.
    (record_failure,) = [step for step in steps if step.state == "RecordFailure"]
    assert record_failure.failures == [CONDITION_FAILED]


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
    first, second = executions_of(relay, since, update_id)

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
