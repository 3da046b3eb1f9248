"""turns.py against moto DynamoDB: one agent turn at a time per conversation, in update_id order.

Step Functions' task-token calls (SendTaskSuccess / SendTaskFailure) are recorded by a stand-in
for tgrelay.clients.stepfunctions, which can also answer as Step Functions does for a token
that no longer waits. Each test plays the parts of the webhook (register_queued), ClaimUpdate
(a claim item) and the executions (wait_for_turn, finish_turn) by hand.
"""

import importlib
import json
import time
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError
from unit_helpers import CLAIMS_TABLE_NAME, DEDUPE_TTL_SECONDS, TURNS_TABLE_NAME, create_table, global_variable
from unit_helpers import update as load_update

from tgrelay import clients, turns, webhook
from tgrelay.errors import ConfigurationError, DependencyUnavailable, TurnLost

CHAT = 284719365
OTHER_CHAT = 5120934471
CONVERSATION = f"telegram:{CHAT}"
LEASE = int(global_variable("TURN_LEASE_SECONDS"))


# --- the stand-ins -----------------------------------------------------------------------------


@dataclass
class StepFunctions:
    """Records SendTaskSuccess / SendTaskFailure; a token in `gone` is refused with that error code."""

    calls: list[dict] = field(default_factory=list)
    gone: dict[str, str] = field(default_factory=dict)

    def send_task_success(self, *, taskToken: str, output: str) -> dict:  # noqa: N803 (boto3's names)
        self.calls.append({"token": taskToken, "success": output})
        return self._answer(taskToken, "SendTaskSuccess")

    def send_task_failure(self, *, taskToken: str, error: str, cause: str) -> dict:  # noqa: N803
        self.calls.append({"token": taskToken, "failure": error, "cause": cause})
        return self._answer(taskToken, "SendTaskFailure")

    def _answer(self, token: str, operation: str) -> dict:
        if token in self.gone:
            raise ClientError({"Error": {"Code": self.gone[token], "Message": "no such task"}}, operation)
        return {}

    def granted(self) -> dict[str, list[dict]]:
        """token -> the merged envelopes its SendTaskSuccess carried."""
        return {call["token"]: json.loads(call["success"]) for call in self.calls if "success" in call}

    def merged(self) -> dict[str, str]:
        """token -> the error of its SendTaskFailure."""
        return {call["token"]: call["failure"] for call in self.calls if "failure" in call}


@pytest.fixture
def sfn(aws, monkeypatch) -> StepFunctions:
    """The moto account (turns table from conftest) + the claims table + recorded task-token calls."""
    create_table(aws.dynamodb, "UpdatesTable", CLAIMS_TABLE_NAME)
    monkeypatch.setenv("TABLE_NAME", CLAIMS_TABLE_NAME)
    recorder = StepFunctions()
    # Undone before the aws fixture's teardown clears clients.stepfunctions' cache.
    with monkeypatch.context() as patch:
        patch.setattr(clients, "stepfunctions", lambda: recorder)
        yield recorder


# --- the parts the webhook, ClaimUpdate and the executions play ---------------------------------


def message(update_id: int, text: str | None = None, *, chat: int = CHAT, received_at: int | None = None) -> dict:
    """An envelope as the webhook makes it, of a private message in `chat`."""
    received_at = int(time.time()) if received_at is None else received_at
    return {
        "v": 1,
        "update_id": update_id,
        "kind": "message",
        "chat_id": chat,
        "chat_type": "private",
        "thread_id": None,
        "message_id": update_id + 1000,
        "sender": {"id": chat, "username": "alice_nowak", "language_code": "en"},
        "text": f"message {update_id}" if text is None else text,
        "received_at": received_at,
        "expires_at": received_at + DEDUPE_TTL_SECONDS,
    }


def execution(update_id: int) -> str:
    return f"arn:aws:states:us-east-1:123456789012:execution:tgrelay-relay:run-{update_id}"


def token(update_id: int, attempt: int = 1) -> str:
    return f"token-{update_id}-{attempt}"


def put_claim(aws, update_id: int, status: str = "IN_PROGRESS", owner: str | None = None, **extra) -> None:
    """The claim ClaimUpdate writes (or a later state of it)."""
    item = {
        "pk": {"S": f"update#{update_id}"},
        "status": {"S": status},
        "execution": {"S": owner or execution(update_id)},
        **extra,
    }
    aws.dynamodb.put_item(TableName=CLAIMS_TABLE_NAME, Item=item)


def claim(aws, update_id: int) -> dict:
    item = aws.dynamodb.get_item(TableName=CLAIMS_TABLE_NAME, Key={"pk": {"S": f"update#{update_id}"}})["Item"]
    return _plain(item)


def arrive(aws, envelope: dict, *, now: int | None = None) -> dict:
    """A message's execution comes to WaitForTurn (claimed first, as ClaimUpdate does)."""
    put_claim(aws, envelope["update_id"])
    return turns.wait_for_turn(envelope, execution(envelope["update_id"]), token(envelope["update_id"]), now=now)


def wait_again(envelope: dict, attempt: int) -> dict:
    """WaitForTurn's Retry after its timeout: the same execution, a new token (no new claim)."""
    return turns.wait_for_turn(envelope, execution(envelope["update_id"]), token(envelope["update_id"], attempt))


def register_and_arrive(aws, *envelopes: dict) -> None:
    """The webhook registers each message, then each execution comes to WaitForTurn, in order."""
    for envelope in envelopes:
        turns.register_queued(envelope)
    for envelope in envelopes:
        arrive(aws, envelope)


def finish(envelope: dict, outcome: str = "DONE", merged: list[dict] | None = None, **options) -> dict:
    """MarkDone / MarkUndeliverable / HandOnTurn of `envelope`'s execution."""
    update = {**envelope, "merged": merged or []}
    return turns.finish_turn(update, execution(envelope["update_id"]), outcome, **options)


def _plain(item: dict) -> dict:
    return {name: int(value["N"]) if "N" in value else value["S"] for name, value in item.items()}


def items(aws, conversation: str = CONVERSATION) -> dict[int, dict]:
    """update_id -> the conversation's turn items, as plain values."""
    answer = aws.dynamodb.query(
        TableName=TURNS_TABLE_NAME,
        KeyConditionExpression="conversation = :c",
        ExpressionAttributeValues={":c": {"S": conversation}},
        ConsistentRead=True,
    )
    return {int(item["update_id"]["N"]): _plain(item) for item in answer["Items"]}


def statuses(aws, conversation: str = CONVERSATION) -> dict[int, str]:
    return {update_id: item["status"] for update_id, item in items(aws, conversation).items()}


# --- the webhook's registration ------------------------------------------------------------------


def test_register_queued_writes_a_queued_item(aws, sfn):
    envelope = message(100, received_at=1763800000)

    turns.register_queued(envelope)

    assert items(aws) == {
        100: {
            "conversation": CONVERSATION,
            "update_id": 100,
            "status": "QUEUED",
            "registered_at": 1763800000,
            "expires_at": 1763800000 + DEDUPE_TTL_SECONDS,
        }
    }
    assert sfn.calls == []


def test_a_redelivered_update_changes_nothing(aws, sfn):
    first, second = message(100), message(101)
    register_and_arrive(aws, first, second)
    before = items(aws)
    assert (before[100]["status"], before[101]["status"]) == ("TURN", "WAITING")

    # Telegram delivers both again (its answer was lost): the webhook registers them again.
    turns.register_queued(first)
    turns.register_queued(second)

    assert items(aws) == before  # the waiting one keeps its token, the holder its turn


# --- WaitForTurn -----------------------------------------------------------------------------------


def test_an_empty_conversation_grants_the_turn_at_once(aws, sfn):
    now = int(time.time())
    turns.register_queued(message(100))

    answer = arrive(aws, message(100), now=now)

    assert answer == {"conversation": CONVERSATION, "status": "WAITING"}
    assert sfn.calls == [{"token": token(100), "success": "[]"}]
    item = items(aws)[100]
    assert (item["status"], item["execution"], item["lease_until"]) == ("TURN", execution(100), now + LEASE)


def test_a_second_message_waits_while_the_first_holds_the_turn(aws, sfn):
    register_and_arrive(aws, message(100), message(101))

    assert sfn.granted() == {token(100): []}
    assert statuses(aws) == {100: "TURN", 101: "WAITING"}
    assert items(aws)[101]["token"] == token(101)


def test_conversations_take_turns_independently(aws, sfn):
    register_and_arrive(aws, message(100), message(101, chat=OTHER_CHAT))

    assert sfn.granted() == {token(100): [], token(101): []}
    assert statuses(aws, f"telegram:{OTHER_CHAT}") == {101: "TURN"}


def test_a_forum_topic_is_a_conversation_of_its_own(aws, sfn):
    in_topic = {**message(101), "chat_type": "supergroup", "thread_id": 7690}
    register_and_arrive(aws, message(100), in_topic)

    assert sfn.granted() == {token(100): [], token(101): []}
    assert statuses(aws, f"telegram:{CHAT}:7690") == {101: "TURN"}


# --- merging --------------------------------------------------------------------------------------


def test_the_waiting_messages_behind_the_next_turn_ride_along(aws, sfn):
    first, head, m1, m2, queued, after = (message(update_id) for update_id in (100, 101, 102, 103, 104, 105))
    register_and_arrive(aws, first, head, m1, m2)
    turns.register_queued(queued)  # its execution has not started yet
    register_and_arrive(aws, after)

    finish(first)

    assert sfn.granted() == {token(100): [], token(101): [m1, m2]}
    assert sfn.merged() == {token(102): "MergedIntoTurn", token(103): "MergedIntoTurn"}
    now = items(aws)
    assert {update_id: (item["status"], item.get("merged_into")) for update_id, item in now.items()} == {
        101: ("TURN", None),
        102: ("MERGED", 101),
        103: ("MERGED", 101),
        104: ("QUEUED", None),  # stops the run: 105 must not overtake it
        105: ("WAITING", None),
    }
    for update_id in (102, 103):
        assert (claim(aws, update_id)["execution"], claim(aws, update_id)["merged_into"]) == (execution(101), 101)
    assert claim(aws, 105)["execution"] == execution(105)


def test_a_turn_carries_at_most_max_turn_messages(aws, sfn):
    waiting = [message(update_id) for update_id in range(101, 101 + turns.MAX_TURN_MESSAGES + 2)]
    register_and_arrive(aws, message(100), *waiting)

    finish(message(100))

    head, *members = waiting[: turns.MAX_TURN_MESSAGES]
    assert sfn.granted()[token(head["update_id"])] == members
    assert set(sfn.merged()) == {token(member["update_id"]) for member in members}
    assert [statuses(aws)[m["update_id"]] for m in waiting[turns.MAX_TURN_MESSAGES :]] == ["WAITING", "WAITING"]


def test_a_turn_carries_at_most_max_turn_text_bytes(aws, sfn):
    per_message = turns.MAX_TURN_TEXT_BYTES // 8
    waiting = [message(update_id, "é" * (per_message // 2)) for update_id in range(101, 111)]
    assert len(waiting[0]["text"].encode()) == per_message
    register_and_arrive(aws, message(100), *waiting)

    finish(message(100))

    # Eight texts fill the turn to exactly MAX_TURN_TEXT_BYTES; the ninth would exceed it.
    head, *members = waiting[:8]
    assert sfn.granted()[token(101)] == members
    assert statuses(aws)[109] == statuses(aws)[110] == "WAITING"


def test_each_mode_answers_one_message_per_turn_in_order(aws, sfn, monkeypatch):
    monkeypatch.setenv("QUEUED_MESSAGES", "each")
    first, second, third = message(100), message(101), message(102)
    register_and_arrive(aws, first, second, third)

    finish(first)
    assert sfn.granted() == {token(100): [], token(101): []}
    assert statuses(aws) == {101: "TURN", 102: "WAITING"}

    finish(second)
    assert sfn.granted() == {token(100): [], token(101): [], token(102): []}
    assert sfn.merged() == {}
    assert [call["token"] for call in sfn.calls] == [token(100), token(101), token(102)]


# --- albums (media_group_id): Telegram sends one message per file ----------------------------------


def album(update_id: int, group: str = "album-1", **options) -> dict:
    return {**message(update_id, "", **options), "media_group_id": group}


def test_an_albums_first_message_waits_for_the_others_registered_behind_it(aws, sfn):
    first, second, third = album(100), album(101), album(102)
    for envelope in (first, second, third):
        turns.register_queued(envelope)  # the webhook registered all three within milliseconds

    arrive(aws, first)
    assert sfn.calls == []  # 101 and 102 are QUEUED: their executions come soon
    arrive(aws, second)
    assert sfn.calls == []
    arrive(aws, third)

    assert sfn.granted() == {token(100): [second, third]}
    assert sfn.merged() == {token(101): "MergedIntoTurn", token(102): "MergedIntoTurn"}


def test_an_album_does_not_wait_for_the_next_message_outside_it(aws, sfn):
    photo, text = album(100), message(101)
    turns.register_queued(photo)
    turns.register_queued(text)

    arrive(aws, photo)

    assert sfn.granted() == {token(100): []}


def test_an_album_message_whose_execution_never_comes_is_waited_for_until_it_is_stale(aws, sfn):
    now = int(time.time())
    first, lost = album(100, received_at=now), album(101, received_at=now)
    turns.register_queued(first)
    turns.register_queued(lost)
    put_claim(aws, 101)

    arrive(aws, first, now=now)
    turns.advance(CONVERSATION, now=now + turns.QUEUED_STALE_SECONDS - 1)
    assert sfn.calls == []

    turns.advance(CONVERSATION, now=now + turns.QUEUED_STALE_SECONDS)
    assert sfn.granted() == {token(100): []}


def test_in_each_mode_an_album_is_one_turn_per_message(aws, sfn, monkeypatch):
    monkeypatch.setenv("QUEUED_MESSAGES", "each")
    first, second = album(100), album(101)
    turns.register_queued(first)
    turns.register_queued(second)

    arrive(aws, first)

    assert sfn.granted() == {token(100): []}


# --- a QUEUED message whose execution has not come -------------------------------------------------


def test_a_queued_head_blocks_until_it_is_stale(aws, sfn):
    now = int(time.time())
    lost = message(100, received_at=now)
    turns.register_queued(lost)
    put_claim(aws, 100)  # its execution claimed it and has not come to WaitForTurn (yet)
    turns.register_queued(message(101, received_at=now))
    arrive(aws, message(101, received_at=now), now=now)

    turns.advance(CONVERSATION, now=now + turns.QUEUED_STALE_SECONDS - 1)
    assert sfn.calls == []
    assert statuses(aws) == {100: "QUEUED", 101: "WAITING"}

    turns.advance(CONVERSATION, now=now + turns.QUEUED_STALE_SECONDS)
    assert sfn.granted() == {token(101): []}
    assert statuses(aws) == {101: "TURN"}  # passed over


@pytest.mark.parametrize("status", ["DONE", "UNDELIVERABLE", "FAILED"])
def test_a_queued_head_already_answered_is_passed_over(aws, sfn, status):
    # A copy Telegram delivered again after the original was done: its execution stops at AlreadyHandled.
    turns.register_queued(message(100))
    put_claim(aws, 100, status)
    turns.register_queued(message(101))

    arrive(aws, message(101))

    assert sfn.granted() == {token(101): []}
    assert statuses(aws) == {101: "TURN"}


# --- leases --------------------------------------------------------------------------------------


def test_a_holder_whose_lease_ran_out_is_released(aws, sfn):
    now = int(time.time())
    turns.register_queued(message(100))
    arrive(aws, message(100), now=now)
    register_and_arrive(aws, message(101))
    lease_until = items(aws)[100]["lease_until"]

    turns.advance(CONVERSATION, now=lease_until - 1)
    assert statuses(aws) == {100: "TURN", 101: "WAITING"}
    assert token(101) not in sfn.granted()

    turns.advance(CONVERSATION, now=lease_until + 1)
    assert statuses(aws) == {101: "TURN"}
    assert sfn.granted()[token(101)] == []


def test_renew_lease_extends_the_holders_lease(aws, sfn):
    now = int(time.time())
    arrive(aws, message(100), now=now - 1000)
    assert items(aws)[100]["lease_until"] == now - 1000 + LEASE

    turns.renew_lease(message(100), execution(100))

    assert items(aws)[100]["lease_until"] >= now + LEASE


def test_renew_lease_raises_turn_lost_for_anyone_but_the_holder(aws, sfn):
    register_and_arrive(aws, message(100), message(101))
    before = items(aws)

    with pytest.raises(TurnLost):
        turns.renew_lease(message(100), execution(999))  # not the holder's execution
    with pytest.raises(TurnLost):
        turns.renew_lease(message(101), execution(101))  # waiting, not granted
    with pytest.raises(TurnLost):
        turns.renew_lease(message(102), execution(102))  # no item at all

    assert items(aws) == before


# --- tokens that no longer wait --------------------------------------------------------------------


def test_a_grant_nobody_takes_is_undone_and_the_execution_registering_again_gets_it(aws, sfn, handler_logs):
    first, head, member = message(100), message(101), message(102)
    register_and_arrive(aws, first, head, member)
    sfn.gone[token(101)] = "TaskTimedOut"  # 101's WaitForTurn timed out just now

    finish(first)  # grants 101 (with 102 merged): nobody takes it, so it is undone

    # 102 was not told it was merged; it got its place back, then the turn (101 registers anew).
    assert token(102) not in sfn.merged()
    assert sfn.granted()[token(102)] == []
    assert statuses(aws) == {102: "TURN"}
    assert claim(aws, 102)["execution"] == execution(102)
    logged = [json.loads(line)["message"] for line in handler_logs() if "no longer waits" in line or "undone" in line]
    assert logged == ["granted turn's token no longer waits", "granted turn not taken; undone"]

    # WaitForTurn's Retry after its timeout: the same execution, a new token; it waits its turn.
    assert wait_again(head, 2) == {"conversation": CONVERSATION, "status": "WAITING"}
    finish(member)
    assert sfn.granted()[token(101, 2)] == []


def test_a_grant_to_a_stopped_execution_does_not_take_the_messages_behind_it_along(aws, sfn):
    first, stopped, behind = message(100), message(101), message(102)
    register_and_arrive(aws, first, stopped, behind)
    sfn.gone[token(101)] = "InvalidToken"  # stopped while it waited; its rule event not yet delivered

    finish(first)

    assert token(102) not in sfn.merged()
    assert sfn.granted()[token(102)] == []
    assert statuses(aws) == {102: "TURN"}
    finish(behind)
    assert claim(aws, 102)["status"] == "DONE"


def test_a_turn_granted_while_the_execution_registers_again_is_delivered_to_its_new_token(aws, sfn):
    first, head, member = message(100), message(101), message(102)
    register_and_arrive(aws, first, head, member)
    finish(first)  # 101's turn, 102 merged
    # 101's WaitForTurn timed out between the grant and the answer, and its Retry registers again.
    assert wait_again(head, 2) == {"conversation": CONVERSATION, "status": "TURN"}
    assert sfn.granted()[token(101, 2)] == [member]
    assert items(aws)[101]["token"] == token(101, 2)
    assert wait_again(member, 2) == {"conversation": CONVERSATION, "status": "MERGED"}
    assert sfn.merged()[token(102, 2)] == "MergedIntoTurn"


def test_a_lost_merged_turn_granted_again_carries_each_merged_message_once(aws, sfn):
    first, head, member = message(100), message(101), message(102)
    register_and_arrive(aws, first, head, member)
    finish(first)  # 101's turn, with 102 merged into it
    lease_until = items(aws)[101]["lease_until"]
    turns.advance(CONVERSATION, now=lease_until + 1)  # its lease ran out: released

    # CallAgent's TurnLost sends it back to WaitForTurn with the merged list of its first grant;
    # that grant's token times out, and WaitForTurn registers once more.
    sfn.gone[token(101, 2)] = "TaskTimedOut"
    turns.wait_for_turn({**head, "merged": [member]}, execution(101), token(101, 2))
    turns.wait_for_turn({**head, "merged": [member]}, execution(101), token(101, 3))

    assert sfn.granted()[token(101, 3)] == [member]


def test_other_step_functions_errors_are_not_swallowed(aws, sfn, lambda_context):
    register_and_arrive(aws, message(100), message(101))
    sfn.gone[token(101)] = "ThrottlingException"
    update = {**message(100), "merged": []}

    with pytest.raises(DependencyUnavailable):
        turns.handler(
            {"action": "finish", "update": update, "execution": execution(100), "outcome": "DONE"}, lambda_context
        )


# --- handing the turn on -----------------------------------------------------------------------------


def test_finish_done_records_every_claim_of_the_turn_and_grants_the_next(aws, sfn):
    first, head, member, after = message(100), message(101), message(102), message(103)
    register_and_arrive(aws, first, head, member)
    finish(first)
    register_and_arrive(aws, after)
    assert statuses(aws) == {101: "TURN", 102: "MERGED", 103: "WAITING"}

    answer = finish(head, merged=[member], chunks=2)

    assert answer == {"conversation": CONVERSATION, "outcome": "DONE", "messages": 2}
    head_claim, member_claim = claim(aws, 101), claim(aws, 102)
    assert (head_claim["status"], head_claim["chunks"]) == ("DONE", 2)
    assert member_claim["status"] == "DONE" and "chunks" not in member_claim
    assert statuses(aws) == {103: "TURN"}
    assert sfn.granted()[token(103)] == []
    calls = len(sfn.calls)

    finish(head, merged=[member], chunks=2)  # the ASL's retry

    assert statuses(aws) == {103: "TURN"}
    assert len(sfn.calls) == calls
    assert claim(aws, 101)["status"] == claim(aws, 102)["status"] == "DONE"


def test_finish_failed_leaves_the_heads_claim_to_record_failure(aws, sfn):
    first, head, member, after = message(100), message(101), message(102), message(103)
    register_and_arrive(aws, first, head, member)
    finish(first)
    register_and_arrive(aws, after)
    # RecordFailure wrote the head's claim (with its error) before HandOnTurn.
    put_claim(aws, 101, "FAILED", error={"S": "AgentRejected"})

    finish(head, "FAILED", merged=[member], reason="AgentRejected")

    assert claim(aws, 101) == {
        "pk": "update#101",
        "status": "FAILED",
        "execution": execution(101),
        "error": "AgentRejected",
    }
    member_claim = claim(aws, 102)
    # Recorded as RecordFailure records the head's: the error in `error`.
    assert (member_claim["status"], member_claim["error"]) == ("FAILED", "AgentRejected")
    assert statuses(aws) == {103: "TURN"}


def test_finish_undeliverable_records_the_reason_on_the_turns_claims(aws, sfn):
    first, head, member = message(100), message(101), message(102)
    register_and_arrive(aws, first, head, member)
    finish(first)

    finish(head, "UNDELIVERABLE", merged=[member], reason="Forbidden: bot was blocked by the user")

    for update_id in (101, 102):
        assert (claim(aws, update_id)["status"], claim(aws, update_id)["reason"]) == (
            "UNDELIVERABLE",
            "Forbidden: bot was blocked by the user",
        )
    assert statuses(aws) == {}


def test_finish_of_an_execution_that_failed_before_waiting_drops_its_queued_item(aws, sfn):
    turns.register_queued(message(100))  # ClaimUpdate failed: it never came to WaitForTurn
    register_and_arrive(aws, message(101))
    assert sfn.calls == []

    finish(message(100), "FAILED", reason="States.TaskFailed")

    assert statuses(aws) == {101: "TURN"}
    assert sfn.granted() == {token(101): []}


def test_finish_never_drops_another_executions_item(aws, sfn):
    register_and_arrive(aws, message(100), message(101))
    before = items(aws)

    # A second execution of update 100 (a duplicate whose ClaimUpdate failed) hands on.
    turns.finish_turn({**message(100), "merged": []}, execution(999), "FAILED")
    turns.finish_turn({**message(101), "merged": []}, execution(998), "DONE")

    assert items(aws) == before
    assert claim(aws, 101)["status"] == "IN_PROGRESS"  # another execution's claim: not recorded


# --- the rule on ended executions ---------------------------------------------------------------------


def ended(arn: str, execution_input: str | None, status: str = "ABORTED") -> dict:
    """The EventBridge event Step Functions sends when an execution ends."""
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2025-11-22T08:26:40Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "executionArn": arn,
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:tgrelay-relay",
            "name": arn.rsplit(":", 1)[1],
            "status": status,
            "startDate": 1763800000000,
            "stopDate": 1763800060000,
            "input": execution_input,
            "output": None,
        },
    }


def pipe_input(envelope: dict) -> str:
    return json.dumps([{"update": envelope, "group_id": str(envelope["chat_id"])}])


def test_an_ended_execution_releases_its_turn_and_the_messages_merged_into_it(aws, sfn, lambda_context):
    first, head, member, after = message(100), message(101), message(102), message(103)
    register_and_arrive(aws, first, head, member)
    finish(first)
    register_and_arrive(aws, after)

    answer = turns.handler(ended(execution(101), pipe_input(head), "TIMED_OUT"), lambda_context)

    assert answer == {"released": 2}
    assert statuses(aws) == {103: "TURN"}
    assert sfn.granted()[token(103)] == []


def test_an_ended_waiting_execution_releases_its_place_only(aws, sfn, lambda_context):
    register_and_arrive(aws, message(100), message(101), message(102))

    answer = turns.handler(ended(execution(101), pipe_input(message(101)), "FAILED"), lambda_context)

    assert answer == {"released": 1}
    assert statuses(aws) == {100: "TURN", 102: "WAITING"}


@pytest.mark.parametrize(
    "execution_input",
    [None, "[]", '[{"group_id": "284719365"}]', '{"update": {}}', "not json", '[{"update": {"chat_id": 284719365}}]'],
    ids=repr,
)
def test_an_input_without_an_envelope_releases_nothing_and_is_logged(
    aws, sfn, lambda_context, handler_logs, execution_input
):
    register_and_arrive(aws, message(100), message(101))
    before = items(aws)

    assert turns.handler(ended(execution(100), execution_input), lambda_context) == {"released": 0}

    assert items(aws) == before
    [error] = [json.loads(line) for line in handler_logs() if "has no envelope" in line]
    assert error["level"] == "ERROR"
    assert error["execution"] == execution(100)


# --- a replayed turn carries the messages merged into it ----------------------------------------------


def test_a_replay_takes_over_failed_claims_and_leaves_out_answered_ones(aws, sfn):
    replay = "arn:aws:states:us-east-1:123456789012:execution:tgrelay-relay:replay-100"
    head, failed, answered = message(100), message(101), message(102)
    put_claim(aws, 101, "FAILED", owner=execution(100))
    put_claim(aws, 102, "DONE", owner=execution(102))  # answered by its own execution meanwhile
    put_claim(aws, 100, owner=replay)

    turns.wait_for_turn({**head, "merged": [failed, answered]}, replay, "token-replay")

    assert sfn.granted() == {"token-replay": [failed]}
    assert (claim(aws, 101)["status"], claim(aws, 101)["execution"]) == ("IN_PROGRESS", replay)
    assert claim(aws, 102) == {"pk": "update#102", "status": "DONE", "execution": execution(102)}


def test_the_turns_messages_are_in_update_id_order(aws, sfn):
    carrier, later_member = message(100), message(101)
    carried = message(105)  # merged into update 100's turn before it was dead-lettered
    put_claim(aws, 105, "FAILED", owner="arn:aws:states:us-east-1:123456789012:execution:tgrelay-relay:old")
    register_and_arrive(aws, message(99))
    put_claim(aws, 100)
    turns.wait_for_turn({**carrier, "merged": [carried]}, execution(100), token(100))
    register_and_arrive(aws, later_member)

    finish(message(99))

    assert sfn.granted()[token(100)] == [later_member, carried]
    assert claim(aws, 105)["execution"] == execution(100)


# --- the webhook ---------------------------------------------------------------------------------


def test_an_enqueued_update_leaves_a_queued_item(aws, post_webhook):
    assert post_webhook.post(load_update("private_text")).status == 200

    [queued] = aws.queued()
    envelope = json.loads(queued["Body"])
    assert items(aws) == {
        918273601: {
            "conversation": CONVERSATION,
            "update_id": 918273601,
            "status": "QUEUED",
            "registered_at": envelope["received_at"],
            "expires_at": envelope["expires_at"],
        }
    }


def test_an_unwritable_turns_table_does_not_stop_the_update(aws, post_webhook, monkeypatch, handler_logs):
    monkeypatch.setenv("TURNS_TABLE_NAME", "tgrelay-NoSuchTable")  # put_item fails with a ClientError

    answer = post_webhook.post(load_update("private_text"))

    assert (answer.status, answer.body) == (200, {"ok": True})
    assert len(aws.queued()) == 1
    assert items(aws) == {}
    [warning] = [json.loads(line) for line in handler_logs() if "turn not registered" in line]
    assert (warning["level"], warning["error_type"]) == ("WARNING", "ResourceNotFoundException")


def test_without_a_turns_table_setting_nothing_is_enqueued(aws, post_webhook, monkeypatch):
    monkeypatch.delenv("TURNS_TABLE_NAME")

    # The Lambda runtime reports it (the HTTP API answers 500): the error names the missing setting.
    with pytest.raises(ConfigurationError, match="^environment variable TURNS_TABLE_NAME is not set$"):
        post_webhook.post(load_update("private_text"))

    assert aws.queued() == []


# --- secrets in logs -----------------------------------------------------------------------------


@pytest.fixture
def turns_logging_events(monkeypatch):
    """tgrelay.turns as a cold start with POWERTOOLS_LOGGER_LOG_EVENT=true imports it (read at decoration)."""
    original = dict(vars(turns))
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    importlib.reload(turns)
    yield
    vars(turns).update(original)


def test_event_logging_switched_on_does_not_log_the_task_token(
    aws, sfn, turns_logging_events, lambda_context, handler_logs, monkeypatch
):
    # The reloaded module's Logger has a handler of its own: point it where handler_logs reads.
    monkeypatch.setattr(turns.logger.logger_handler, "stream", webhook.logger.logger_handler.stream)
    put_claim(aws, 100)
    event = {"action": "wait", "update": message(100), "execution": execution(100), "token": token(100)}

    assert turns.handler(event, lambda_context)["status"] == "WAITING"

    lines = handler_logs()
    assert any("waiting for the turn" in line for line in lines)
    assert not [line for line in lines if token(100) in line]


LAMBDA_CAUSE = json.dumps(
    {
        "errorMessage": "sendMessage: 403 Forbidden: bot was blocked by the user",
        "errorType": "RecipientUnavailable",
        "requestId": "0c9e4a1e-5f0b-4bb6-9d2c-1f3a2b4c5d6e",
        "stackTrace": ['  File "/var/task/tgrelay/send_reply.py", line 71, in handler\n'],
    }
)


@pytest.mark.parametrize(
    ("cause", "kept"),
    [
        pytest.param(LAMBDA_CAUSE, "sendMessage: 403 Forbidden: bot was blocked by the user", id="lambda-error-json"),
        pytest.param("Forbidden: bot was blocked by the user", "Forbidden: bot was blocked by the user", id="plain"),
        pytest.param('{"Error": "x"}', '{"Error": "x"}', id="json-without-errorMessage"),
        pytest.param("[1, 2]", "[1, 2]", id="json-not-an-object"),
        pytest.param("AgentRejected", "AgentRejected", id="error-name"),
    ],
)
def test_a_claim_keeps_the_error_message_not_the_lambda_error_json(cause, kept):
    assert turns.error_message(cause) == kept
