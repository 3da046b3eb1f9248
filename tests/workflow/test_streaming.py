"""Streaming replies on the local engine (README: Streaming replies): the real ASL and handlers, the
echo agent streaming word by word, the fake Bot API recording every draft and message."""

import pytest
from workflow_helpers import (
    AGENT_FAILURE_PATH,
    HAPPY_PATH,
    chat_of,
    make_update,
    mark,
    path_of,
    post,
    settle,
    take_dead_letters,
)

from tgrelay.dead_letters import decide
from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay
from tgrelay_local.history import state_path

DRAFT_THROTTLE = 0.2
ANSWER = "Streaming makes the answer appear while the agent is still writing it, one word after another."


@pytest.fixture(scope="module")
def relay():
    # A short draft interval, so a stream of a second shows several drafts.
    with LocalRelay(
        clock=RetryClock("recorded", jitter=1.0), parameters={"DraftThrottleSeconds": str(DRAFT_THROTTLE)}
    ) as engine:
        yield engine


def streamed_turn(relay, update: dict, *faults: dict) -> list[dict]:
    """Post `update` with the agent's `faults` queued for it; its executions once settled."""
    for fault in faults:
        relay.agent.add_fault({**fault, "match": {"update_id": update["update_id"]}})
    since = mark(relay)
    assert post(relay, update).status_code == 200
    return settle(relay, since)


def stream(**fault) -> dict:
    return {"reply": ANSWER, "stream": True, "word_delay": 0.06, **fault}  # 16 words: about 1 s


def test_a_private_chat_sees_growing_drafts_then_one_final_message(relay):
    update = make_update("private_text.json")
    chat = chat_of(update)

    (execution,) = streamed_turn(relay, update, stream())

    assert execution["status"] == "SUCCEEDED"
    assert path_of(relay, execution) == HAPPY_PATH
    drafts = relay.telegram.drafts(chat)
    texts = [draft["text"] for draft in drafts]
    assert len(texts) >= 3
    assert all(
        later.startswith(earlier) and len(later) > len(earlier)
        for earlier, later in zip(texts, texts[1:], strict=False)
    )
    assert texts[-1] == ANSWER
    assert len({draft["draft_id"] for draft in drafts}) == 1
    assert [message["text"] for message in relay.telegram.received(chat)] == [ANSWER]
    # Every draft came before the final message.
    calls = [call for call in relay.telegram.calls_snapshot() if call["payload"].get("chat_id") == chat]
    assert [call["method"] for call in calls if call["method"] != "sendChatAction"][-1] == "sendMessage"


def test_a_group_gets_no_drafts_and_the_same_final_message(relay):
    update = make_update("group_text.json", chat_id=-4_100_200)

    (execution,) = streamed_turn(relay, update, stream())

    assert execution["status"] == "SUCCEEDED"
    assert relay.telegram.drafts() == []
    assert [message["text"] for message in relay.telegram.received(-4_100_200)] == [ANSWER]


def test_a_stream_that_breaks_mid_way_is_retried_and_answered_once(relay):
    update = make_update("private_text.json")
    chat = chat_of(update)

    (execution,) = streamed_turn(relay, update, stream(break_after=8), stream())

    assert execution["status"] == "SUCCEEDED"
    # One retry of CallAgent (AgentStreamBroken, AgentUnavailable's schedule: up to 3 s, jitter pinned).
    assert relay.clock.take_waits() == [3.0]
    steps = state_path(relay.history(execution["executionArn"]))
    assert [step.state for step in steps] == HAPPY_PATH
    assert [failure for step in steps for failure in step.failures] == ["AgentStreamBroken"]
    assert len(relay.agent.calls_snapshot()) == 2
    assert [message["text"] for message in relay.telegram.received(chat)] == [ANSWER]
    ids = [draft["draft_id"] for draft in relay.telegram.drafts(chat)]
    assert len(set(ids)) == 2  # the retry started a fresh draft
    assert [draft["text"] for draft in relay.telegram.drafts(chat) if draft["draft_id"] == ids[-1]][-1] == ANSWER


def test_an_agent_that_never_streams_behaves_as_before(relay):
    update = make_update("private_text.json", text="plain old JSON")
    chat = chat_of(update)

    (execution,) = streamed_turn(relay, update)

    assert execution["status"] == "SUCCEEDED"
    assert path_of(relay, execution) == HAPPY_PATH
    assert relay.telegram.drafts(chat) == []
    assert [message["text"] for message in relay.telegram.received(chat)] == ["echo: plain old JSON"]


SSE = "text/event-stream"


def test_a_stream_of_unnamed_events_is_answered_and_one_without_any_answer_is_parked_not_sent_empty(relay):
    answered, empty = make_update("private_text.json"), make_update("private_text.json")
    unnamed = 'data: {"text": "The answer is 42."}\n\ndata: {"text": " Really."}\n\n'

    (first,) = streamed_turn(relay, answered, {"body": unnamed, "content_type": SSE})
    (second,) = streamed_turn(relay, empty, {"body": ": ping\n\n: ping\n\n", "content_type": SSE})

    assert path_of(relay, first) == HAPPY_PATH
    assert [message["text"] for message in relay.telegram.received(chat_of(answered))] == ["The answer is 42. Really."]
    assert path_of(relay, second) == AGENT_FAILURE_PATH
    assert "I have no answer" not in str(relay.telegram.sent_messages(chat_of(empty)))
    [dead] = take_dead_letters(relay)
    assert dead["MessageAttributes"]["error"]["StringValue"] == "AgentBadResponse"
    assert "`event: delta`" in dead["MessageAttributes"]["cause"]["StringValue"]


def test_an_error_event_is_terminal_and_kept_for_a_person_unless_it_says_retryable(relay):
    terminal, passing = make_update("private_text.json"), make_update("private_text.json")

    (failed,) = streamed_turn(relay, terminal, stream(error_after=4), stream())
    (answered,) = streamed_turn(relay, passing, stream(error_after=4, error_retryable=True), stream())

    # Terminal: one attempt, the apology, a dead letter that no automatic replay takes.
    assert path_of(relay, failed) == AGENT_FAILURE_PATH
    assert [call["request"]["update_id"] for call in relay.agent.calls_snapshot()].count(terminal["update_id"]) == 1
    [dead] = take_dead_letters(relay)
    assert dead["MessageAttributes"]["error"]["StringValue"] == "AgentStreamError"
    assert decide(dead["Body"], "AgentStreamError", 0, 10**9, [900, 3600]) == "person"
    # Retryable: AgentUnavailable's Retry (up to 3 s, jitter pinned), then the answer, once.
    steps = state_path(relay.history(answered["executionArn"]))
    assert [step.state for step in steps] == HAPPY_PATH
    assert [failure for step in steps for failure in step.failures] == ["AgentUnavailable"]
    assert relay.clock.take_waits() == [3.0]
    assert [message["text"] for message in relay.telegram.received(chat_of(passing))] == [ANSWER]
    assert [call["request"]["update_id"] for call in relay.agent.calls_snapshot()].count(passing["update_id"]) == 2
