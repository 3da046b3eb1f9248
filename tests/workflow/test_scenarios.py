"""DESIGN.md §6 workflow scenarios on the local engine: real ASL, real handlers."""

import json

import pytest
from workflow_helpers import (
    AGENT_FAILURE_PATH,
    DUPLICATE_PATH,
    HAPPY_PATH,
    UNDELIVERABLE_PATH,
    chat_of,
    deliver_again,
    envelope_of,
    executions_for,
    make_update,
    path_of,
    wait_for,
)

from tgrelay_local.retry_plan import load_asl, retrier_for, retry_waits

# Each test starts and ends with an empty dead-letter queue, whatever the test did (conftest.py).
pytestmark = pytest.mark.usefixtures("empty_dead_letter_queue")


def billed_transitions(relay, execution) -> int:
    """Standard workflows bill one transition per state entered."""
    events = relay.history(execution["executionArn"])
    return sum(1 for event in events if event["type"].endswith("StateEntered"))


@pytest.mark.scenario("HappyPath")
def test_happy_path_replies_once_and_marks_done(relay):
    update = make_update(text="hello there")
    response = relay.post_update(update)
    assert response.status_code == 200 and response.json() == {"ok": True}
    relay.wait_idle()

    (execution,) = executions_for(relay, update["update_id"])
    assert execution["status"] == "SUCCEEDED"
    assert path_of(relay, execution) == HAPPY_PATH
    # DESIGN §4's 5, plus CheckEnvelope (issue 14: what is not an envelope is dead-lettered).
    assert billed_transitions(relay, execution) <= 6
    assert relay.telegram.sent_messages(chat_of(update)) == [{"chat_id": chat_of(update), "text": "echo: hello there"}]
    claim = relay.claim(update["update_id"])
    assert claim["status"] == "DONE" and claim["chunks"] == "1"
    assert claim["execution"] == execution["executionArn"]
    # The agent saw the contract's request, with the session key of the chat.
    (call,) = relay.agent.calls_snapshot()
    assert call["request"]["session_key"] == f"telegram:{chat_of(update)}"
    assert call["request"]["update_id"] == update["update_id"]


@pytest.mark.scenario("Duplicate")
def test_same_update_five_times_gets_one_reply(relay):
    update = make_update(text="only once")
    for _ in range(5):
        assert relay.post_update(update).status_code == 200
    relay.wait_idle()
    first, *_ = executions_for(relay, update["update_id"])
    # Past SQS's dedupe window only the DynamoDB claim stands between a copy and a reply.
    for copy_number in range(4):
        deliver_again(relay, first, f"late-{copy_number}")
    relay.wait_idle()

    executions = executions_for(relay, update["update_id"])
    paths = [path_of(relay, execution) for execution in executions]
    assert paths.count(HAPPY_PATH) == 1
    assert all(path == DUPLICATE_PATH for path in paths if path != HAPPY_PATH)
    assert len(paths) >= 5  # the four late copies at least reached the workflow
    # DESIGN §4's 2, plus CheckEnvelope.
    assert all(billed_transitions(relay, e) <= 3 for e in executions if path_of(relay, e) == DUPLICATE_PATH)
    assert relay.telegram.sent_messages(chat_of(update)) == [{"chat_id": chat_of(update), "text": "echo: only once"}]
    assert len(relay.agent.calls_snapshot()) == 1


@pytest.mark.scenario("Duplicate")
def test_copies_arriving_while_the_first_is_running_are_skipped(relay):
    update = make_update(text="slow one")
    relay.agent.add_fault({"delay": 1.0, "reply": "took a while", "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    first = wait_for(lambda: (executions_for(relay, update["update_id"]) or [None])[0])
    wait_for(lambda: relay.agent.calls_snapshot())  # the first execution is inside CallAgent
    for copy_number in range(3):
        deliver_again(relay, first, f"concurrent-{copy_number}")
    relay.wait_idle()

    paths = [path_of(relay, execution) for execution in executions_for(relay, update["update_id"])]
    assert sorted(paths) == sorted([HAPPY_PATH] + [DUPLICATE_PATH] * 3)
    assert relay.telegram.sent_messages(chat_of(update)) == [{"chat_id": chat_of(update), "text": "took a while"}]


@pytest.mark.scenario("AgentRetriesThenSuccess")
def test_agent_503_twice_then_success_waits_the_asl_schedule(relay):
    update = make_update(text="flaky")
    relay.agent.add_fault({"status": 503, "count": 2, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()

    (execution,) = executions_for(relay, update["update_id"])
    assert execution["status"] == "SUCCEEDED"
    assert path_of(relay, execution) == HAPPY_PATH
    # Jitter is pinned to 1.0: the waits are the ASL's caps for the first two retries.
    expected = retry_waits(retrier_for(load_asl(), "CallAgent", "AgentUnavailable"))[:2]
    assert relay.clock.take_waits() == expected
    assert len(relay.agent.calls_snapshot()) == 3
    assert relay.telegram.sent_messages(chat_of(update)) == [{"chat_id": chat_of(update), "text": "echo: flaky"}]


def test_agent_unavailable_until_retries_run_out_goes_to_the_dlq(relay):
    update = make_update(text="agent is down")
    relay.agent.add_fault({"status": 503, "count": None, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()

    (execution,) = executions_for(relay, update["update_id"])
    assert execution["status"] == "FAILED" and execution["error"] == "AgentUnavailable"
    retrier = retrier_for(load_asl(), "CallAgent", "AgentUnavailable")
    assert relay.clock.take_waits() == retry_waits(retrier)
    assert len(relay.agent.calls_snapshot()) == retrier["MaxAttempts"] + 1
    assert update["update_id"] in [json.loads(m["Body"])["update_id"] for m in relay.dead_letters()]
    relay.agent.reset()
    relay.wait_idle()


@pytest.mark.scenario("AgentTerminalFailure")
def test_agent_400_compensates_apologises_and_parks_in_dlq_then_replay_answers_once(relay):
    update = make_update(text="bad request")
    chat = chat_of(update)
    relay.agent.add_fault({"status": 400, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()

    (execution,) = executions_for(relay, update["update_id"])
    assert execution["status"] == "FAILED" and execution["error"] == "AgentRejected"
    assert path_of(relay, execution) == AGENT_FAILURE_PATH
    assert relay.clock.take_waits() == []  # terminal: no retry
    assert relay.claim(update["update_id"])["status"] == "FAILED"
    assert relay.claim(update["update_id"])["error"] == "AgentRejected"
    apology = relay.template.parameters["ApologyText"]
    assert relay.telegram.sent_messages(chat) == [{"chat_id": chat, "text": apology}]

    (dead,) = [m for m in relay.dead_letters() if json.loads(m["Body"])["update_id"] == update["update_id"]]
    # The body is the envelope the execution ran on, re-serialised (States.JsonToString), with the
    # messages merged into its turn (none here): what the pipe's InputTemplate parses again on replay.
    assert json.loads(dead["Body"]) == {**envelope_of(execution), "merged": []}
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes["error"] == "AgentRejected"
    assert attributes["cause"].startswith("AgentRejected: ") and "agent server answered 400" in attributes["cause"]
    assert attributes["execution"] == execution["executionArn"]
    assert attributes["update_id"] == str(update["update_id"])
    assert dead["Attributes"]["MessageGroupId"] == str(chat)

    # The operator fixed the agent; replay parks nothing and answers once.
    assert relay.replay_dead_letters() == 1
    relay.wait_idle()
    assert relay.dead_letters() == []
    replayed = executions_for(relay, update["update_id"])[-1]
    assert replayed["status"] == "SUCCEEDED" and path_of(relay, replayed) == HAPPY_PATH
    assert envelope_of(replayed) == json.loads(dead["Body"])  # the pipe parsed the re-serialised body
    assert relay.telegram.sent_messages(chat) == [
        {"chat_id": chat, "text": apology},
        {"chat_id": chat, "text": "echo: bad request"},
    ]
    assert relay.claim(update["update_id"])["status"] == "DONE"
    # A second replay has nothing to move, and a late copy is a duplicate.
    assert relay.replay_dead_letters() == 0
    deliver_again(relay, replayed, "after-replay")
    relay.wait_idle()
    assert path_of(relay, executions_for(relay, update["update_id"])[-1]) == DUPLICATE_PATH
    assert len(relay.telegram.sent_messages(chat)) == 2


def test_long_reply_is_sent_in_order_in_chunks(relay):
    update = make_update(text="tell me everything")
    paragraphs = [f"Paragraph {n}: " + " ".join(f"word{n}-{i}" for i in range(150)) for n in range(8)]
    long_reply = "\n\n".join(paragraphs)
    assert len(long_reply) > 8000
    relay.agent.add_fault({"reply": long_reply, "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()

    sent = [message["text"] for message in relay.telegram.sent_messages(chat_of(update))]
    assert len(sent) >= 3
    assert all(len(chunk) <= 4096 for chunk in sent)
    assert "\n\n".join(sent) == long_reply  # split at paragraph breaks, nothing lost, in order
    (execution,) = executions_for(relay, update["update_id"])
    assert relay.claim(update["update_id"])["chunks"] == str(len(sent))
    assert path_of(relay, execution) == HAPPY_PATH


@pytest.mark.scenario("BlockedUser")
def test_blocked_user_is_undeliverable_not_dead_lettered(relay):
    update = make_update(text="are you there")
    relay.telegram.add_fault(
        {"status": 403, "description": "Forbidden: bot was blocked by the user", "match": {"chat_id": chat_of(update)}}
    )
    relay.post_update(update)
    relay.wait_idle()

    (execution,) = executions_for(relay, update["update_id"])
    assert execution["status"] == "SUCCEEDED"
    assert path_of(relay, execution) == UNDELIVERABLE_PATH
    claim = relay.claim(update["update_id"])
    assert claim["status"] == "UNDELIVERABLE" and "blocked" in claim["reason"]
    assert relay.dead_letters() == []
    assert relay.telegram.sent_messages(chat_of(update)) == []


def test_forum_topic_reply_goes_to_the_topic(relay):
    update = make_update("forum_topic_text.json")
    relay.post_update(update)
    relay.wait_idle()
    thread = update["message"]["message_thread_id"]
    (sent,) = relay.telegram.sent_messages(chat_of(update))
    assert sent["message_thread_id"] == thread
    assert relay.agent.calls_snapshot()[0]["request"]["session_key"] == f"telegram:{chat_of(update)}:{thread}"


def test_failed_starts_are_redriven_to_the_dlq_by_the_queue(relay, monkeypatch):
    max_receives = relay.template.doc["Resources"]["UpdatesQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    attempts = []

    def failing_start(**kwargs):
        from botocore.exceptions import ClientError

        attempts.append(kwargs)
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "StartExecution")

    monkeypatch.setattr(relay.pipe.sfn, "start_execution", failing_start)
    update = make_update(text="never starts")
    relay.post_update(update)
    wait_for(lambda: any(json.loads(m["Body"])["update_id"] == update["update_id"] for m in relay.dead_letters()))
    monkeypatch.undo()

    assert len(attempts) == max_receives
    assert executions_for(relay, update["update_id"]) == []
    relay.replay_dead_letters()
    relay.wait_idle()
    (execution,) = executions_for(relay, update["update_id"])
    assert path_of(relay, execution) == HAPPY_PATH
