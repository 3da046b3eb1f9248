"""Dead letters whose cause was passing come back by themselves (DeadLetterReplayFunction on its
schedule); the rest wait for a person. The schedule is fired by hand at the times a test picks
(recorded clock): the function sees the event's `time` as now."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from test_turn_taking import hold_answer
from workflow_helpers import (
    AGENT_FAILURE_PATH,
    HAPPY_PATH,
    chat_of,
    executions_for,
    make_update,
    path_of,
    wait_for,
)

# CallAgent's AgentUnavailable retrier: 1 attempt + 6 retries (the ASL), all answered 503.
AGENT_DOWN_FOR_ONE_EXECUTION = 7


pytestmark = pytest.mark.usefixtures("empty_dead_letter_queue")


NONE = {"replayed": 0, "waiting": 0, "for_a_person": 0, "answered": 0}


def _agent_down(relay, update) -> None:
    """The agent answers 503 to every attempt of the update's first execution."""
    relay.agent.add_fault(
        {"status": 503, "count": AGENT_DOWN_FOR_ONE_EXECUTION, "match": {"update_id": update["update_id"]}}
    )


def _texts(relay, update) -> list[str]:
    return [message["text"] for message in relay.telegram.sent_messages(chat_of(update))]


def _after(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def _fire(relay, minutes: float) -> dict:
    (answer,) = relay.schedules.fire(at=_after(minutes))
    relay.wait_idle()
    return answer["Payload"]


def _parked(relay) -> list[dict]:
    return [
        {"error": m["MessageAttributes"]["error"]["StringValue"], **json.loads(m["Body"])} for m in relay.dead_letters()
    ]


def test_an_outage_longer_than_the_retries_is_answered_after_the_first_automatic_replay(relay):
    parameters = relay.template.parameters
    update = make_update(text="are you back?")
    relay.agent.add_fault(
        {"status": 503, "count": AGENT_DOWN_FOR_ONE_EXECUTION, "match": {"update_id": update["update_id"]}}
    )
    relay.post_update(update)
    relay.wait_idle()
    (failed,) = executions_for(relay, update["update_id"])
    assert path_of(relay, failed) == AGENT_FAILURE_PATH
    assert [entry["error"] for entry in _parked(relay)] == ["AgentUnavailable"]
    assert _texts(relay, update) == [parameters["RetryApologyText"]]

    # Before the first delay (900 s) nothing moves; after it, the replay answers once.
    assert _fire(relay, 5) == {"replayed": 0, "waiting": 1, "for_a_person": 0, "answered": 0}
    assert _fire(relay, 16) == {"replayed": 1, "waiting": 0, "for_a_person": 0, "answered": 0}
    replayed = executions_for(relay, update["update_id"])[-1]
    assert path_of(relay, replayed) == HAPPY_PATH
    assert _texts(relay, update) == [parameters["RetryApologyText"], "echo: are you back?"]
    assert relay.dead_letters() == []
    assert _fire(relay, 300) == {"replayed": 0, "waiting": 0, "for_a_person": 0, "answered": 0}


def test_an_error_that_cannot_pass_is_never_replayed(relay):
    update = make_update(text="rejected for good")
    relay.agent.add_fault({"status": 400, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()
    assert _fire(relay, 24 * 60) == {"replayed": 0, "waiting": 0, "for_a_person": 1, "answered": 0}
    assert [entry["error"] for entry in _parked(relay)] == ["AgentRejected"]
    assert len(executions_for(relay, update["update_id"])) == 1
    # The apology says it will not be tried again.
    assert _texts(relay, update) == [relay.template.parameters["ApologyText"]]


def test_an_update_that_fails_every_replay_stops_after_the_last_and_keeps_its_count(relay):
    parameters = relay.template.parameters
    delays = [int(delay) for delay in parameters["AutoReplayDelays"].split(",")]
    update = make_update(text="the agent is gone for good")
    relay.agent.add_fault({"status": 503, "count": None, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()
    minutes = 0.0
    for replay, delay in enumerate(delays, 1):
        minutes += delay / 60 + 1  # each replay's dead letter is parked afresh: its delay counts from then
        assert _fire(relay, minutes) == {"replayed": 1, "waiting": 0, "for_a_person": 0, "answered": 0}, (
            f"replay {replay}"
        )
        (parked,) = _parked(relay)
        assert parked["replays"] == replay
    assert _fire(relay, minutes + 24 * 60) == {"replayed": 0, "waiting": 0, "for_a_person": 1, "answered": 0}
    assert len(executions_for(relay, update["update_id"])) == 1 + len(delays)
    # One "I'll try again", nothing while the replays fail, one "I could not answer" at the end.
    assert _texts(relay, update) == [parameters["RetryApologyText"], parameters["ApologyText"]]


def test_a_dead_letter_answered_meanwhile_is_deleted_not_replayed(relay):
    update = make_update(text="answered by a late copy")
    relay.agent.add_fault(
        {"status": 503, "count": AGENT_DOWN_FOR_ONE_EXECUTION, "match": {"update_id": update["update_id"]}}
    )
    relay.post_update(update)
    relay.wait_idle()
    # Telegram delivers the update again (we answered its first POST late): the copy claims the
    # FAILED claim and is answered.
    relay.post_update(update)
    relay.wait_idle()
    assert relay.claim(update["update_id"])["status"] == "DONE"

    assert _fire(relay, 16) == {"replayed": 0, "waiting": 0, "for_a_person": 0, "answered": 1}
    assert len(executions_for(relay, update["update_id"])) == 2
    assert relay.dead_letters() == []
    assert _texts(relay, update) == [relay.template.parameters["RetryApologyText"], "echo: answered by a late copy"]


def test_a_merged_message_of_a_turn_whose_first_was_answered_meanwhile_is_still_replayed(relay, monkeypatch):
    """The turn of A carried C (QueuedMessages=merge) and failed; A was answered meanwhile (a late
    copy from Telegram). The replay leaves A out and answers C."""
    busy = make_update(text="holds the turn")
    chat = chat_of(busy)
    first = make_update(text="first question", chat_id=chat)
    rider = make_update(text="and a follow-up", chat_id=chat)
    release = hold_answer(relay, monkeypatch, busy["update_id"])
    relay.agent.add_fault(
        {"status": 503, "count": AGENT_DOWN_FOR_ONE_EXECUTION, "match": {"update_id": first["update_id"]}}
    )
    relay.post_update(busy)
    wait_for(lambda: relay.turn_statuses(f"telegram:{chat}").get(busy["update_id"]) == "TURN")
    relay.post_update(first)
    relay.post_update(rider)
    wait_for(
        lambda: [relay.turn_statuses(f"telegram:{chat}").get(u["update_id"]) for u in (first, rider)] == ["WAITING"] * 2
    )
    release.set()
    relay.wait_idle()
    ((parked,),) = [_parked(relay)]
    assert parked["update_id"] == first["update_id"] and [m["update_id"] for m in parked["merged"]] == [
        rider["update_id"]
    ]
    relay.post_update(first)  # the late copy of the first: answered on its own
    relay.wait_idle()

    assert _fire(relay, 16) == {"replayed": 1, "waiting": 0, "for_a_person": 0, "answered": 0}
    texts = _texts(relay, busy)
    assert texts.count("echo: and a follow-up") == 1 and texts.count("echo: first question") == 1
    assert relay.claim(rider["update_id"])["status"] == "DONE"
    assert relay.dead_letters() == []


def test_a_partly_delivered_reply_is_left_for_a_person(relay):
    """Telegram took the first message of the reply, then failed: a replay would ask the agent again
    and send that first message twice. The apology says it will not be tried again."""
    update = make_update(text="a two-part answer")
    relay.agent.add_fault({"reply": "part one", "messages": ["part two"], "match": {"update_id": update["update_id"]}})
    relay.telegram.add_fault({"status": 502, "count": None, "match": {"text": "part two"}})
    relay.post_update(update)
    relay.wait_idle()
    assert _texts(relay, update) == ["part one", relay.template.parameters["ApologyText"]]
    relay.telegram.reset()
    assert _fire(relay, 24 * 60) == {"replayed": 0, "waiting": 0, "for_a_person": 1, "answered": 0}
    assert [entry["error"] for entry in _parked(relay)] == ["TelegramUnavailable"]


def test_a_claim_the_parking_execution_left_in_progress_is_released_for_the_replay(relay):
    update = make_update(text="compensation gave up too")
    relay.agent.add_fault(
        {"status": 503, "count": AGENT_DOWN_FOR_ONE_EXECUTION, "match": {"update_id": update["update_id"]}}
    )
    relay.post_update(update)
    relay.wait_idle()
    # As if RecordFailure had run out of retries: the claim still says IN_PROGRESS.
    relay.dynamodb.update_item(
        TableName=relay.table_name,
        Key={"pk": {"S": f"update#{update['update_id']}"}},
        UpdateExpression="SET #status = :in_progress",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":in_progress": {"S": "IN_PROGRESS"}},
    )
    assert _fire(relay, 16) == {"replayed": 1, "waiting": 0, "for_a_person": 0, "answered": 0}
    assert path_of(relay, executions_for(relay, update["update_id"])[-1]) == HAPPY_PATH
    assert _texts(relay, update)[-1] == "echo: compensation gave up too"


def test_one_letter_that_cannot_be_handled_does_not_stop_the_others(relay, monkeypatch):
    """DynamoDB refuses to read one letter's claim: that letter waits (counted for a person, so a
    lasting failure pages), and the next letter is still replayed."""
    from moto.dynamodb.exceptions import DynamodbException
    from moto.dynamodb.models import DynamoDBBackend

    unreadable, fine = make_update(text="claim unreadable"), make_update(text="replayed anyway")
    for update in (unreadable, fine):
        _agent_down(relay, update)
        relay.post_update(update)
    relay.wait_idle()
    original = DynamoDBBackend.get_item

    def get_item(self, table_name, keys, *args, **kwargs):
        if keys.get("pk") == {"S": f"update#{unreadable['update_id']}"}:
            raise DynamodbException("InternalServerError", "injected")
        return original(self, table_name, keys, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "get_item", get_item)
    assert _fire(relay, 16) == {**NONE, "replayed": 1, "for_a_person": 1}
    assert [entry["update_id"] for entry in _parked(relay)] == [unreadable["update_id"]]
    assert _texts(relay, fine)[-1] == "echo: replayed anyway"
