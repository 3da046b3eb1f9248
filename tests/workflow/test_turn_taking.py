"""Conversations on the local engine (README: Conversations): one agent turn at a time per
conversation, in the order the messages were sent; messages that arrive during a turn merged into
the next one (QueuedMessages=merge, the default) or answered one by one (each); a turn whose
execution is stopped released by the rule on its status change; conversations in parallel.

The fake agent records when each request came (`at`) and when its answer left (`ended_at`), so
"two requests of one conversation open at once" is measured, not inferred.
"""

import contextlib
import json
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from workflow_helpers import configure, make_update

from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay

HAPPY = ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply", "MarkDone"]
MERGED = ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "MergedIntoTurn"]


@pytest.fixture(scope="module")
def relay():
    with LocalRelay(clock=RetryClock("recorded", jitter=1.0)) as engine:
        yield engine


def update_id_of(execution: dict) -> int:
    return json.loads(execution["input"])[0]["update"]["update_id"]


def path_of(relay, execution: dict) -> list[str]:
    events = relay.history(execution["executionArn"])
    return [event["stateEnteredEventDetails"]["name"] for event in events if "stateEnteredEventDetails" in event]


def paths_by_update(relay, update_ids) -> dict[int, list[list[str]]]:
    paths = defaultdict(list)
    for execution in relay.executions():
        if update_id_of(execution) in update_ids:
            paths[update_id_of(execution)].append(path_of(relay, execution))
    return paths


def agent_requests(relay, session_key: str) -> list[dict]:
    return [call for call in relay.agent.calls_snapshot() if call["request"].get("session_key") == session_key]


def overlapping_pairs(calls: list[dict]) -> int:
    """Pairs of requests whose spans [at, ended_at] overlap."""
    spans = sorted((call["at"], call["ended_at"]) for call in calls)
    return sum(1 for (_, end), (start, _) in zip(spans, spans[1:], strict=False) if start < end)


def most_open_at_once(calls: list[dict]) -> int:
    edges = sorted([(call["at"], 1) for call in calls] + [(call["ended_at"], -1) for call in calls])
    open_now = most = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def wait_until(predicate, timeout: float = 20.0, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)


def agent_has(relay, update_id: int) -> bool:
    return any(call["request"].get("update_id") == update_id for call in relay.agent.calls_snapshot())


def hold_answer(relay, monkeypatch, update_id: int) -> threading.Event:
    """The fake agent holds its answer to `update_id` until the returned event is set (30 s at
    most): a turn that stays open exactly as long as the test needs, whatever the machine's load."""
    release = threading.Event()
    answer = relay.agent._answer

    def held(request: dict, fault):
        if request.get("update_id") == update_id:
            release.wait(30)
        return answer(request, fault)

    monkeypatch.setattr(relay.agent, "_answer", held)
    return release


def three_messages(relay, monkeypatch, chat: int, first_answer: dict) -> list[dict]:
    """Three messages of one chat: the agent holds its answer to the first (given by
    `first_answer`, a fake-agent fault) until the 2nd and 3rd, posted 100 ms apart once the
    first turn has begun, both wait for the turn."""
    updates = [make_update(text=text, chat_id=chat) for text in ("one", "two", "three")]
    ids = [update["update_id"] for update in updates]
    relay.agent.add_fault({**first_answer, "match": {"update_id": ids[0]}})
    release = hold_answer(relay, monkeypatch, ids[0])
    assert relay.post_update(updates[0]).status_code == 200
    wait_until(lambda: agent_has(relay, ids[0]))
    for update in updates[1:]:
        time.sleep(0.1)
        assert relay.post_update(update).status_code == 200
    wait_until(
        lambda: [relay.turn_statuses(f"telegram:{chat}").get(update_id) for update_id in ids[1:]] == ["WAITING"] * 2
    )
    release.set()
    relay.wait_idle(timeout=30)
    return updates


def test_merge_one_turn_at_a_time_in_order_and_the_burst_is_one_request(relay, monkeypatch):
    updates = three_messages(relay, monkeypatch, 7_100_001, {"reply": "answer to one"})
    ids = [update["update_id"] for update in updates]
    requests = agent_requests(relay, "telegram:7100001")

    assert overlapping_pairs(requests) == 0
    assert [[message["update_id"] for message in call["request"]["messages"]] for call in requests] == [
        ids[:1],
        ids[1:],
    ]
    assert requests[1]["request"]["text"] == "two\nthree"
    assert [message["text"] for message in relay.telegram.sent_messages(7_100_001)] == [
        "answer to one",
        "echo: two\nthree",
    ]
    paths = paths_by_update(relay, ids)
    assert paths == {ids[0]: [HAPPY], ids[1]: [HAPPY], ids[2]: [MERGED]}
    assert [relay.claim(update_id)["status"] for update_id in ids] == ["DONE"] * 3
    # Every item of the conversation is gone once its turns are over.
    assert relay.turn_statuses("telegram:7100001") == {}


def test_each_one_request_per_message_in_order(relay, monkeypatch):
    # TurnsFunction reads QueuedMessages (its QUEUED_MESSAGES) at each grant, as on AWS after a deploy.
    configure(relay, monkeypatch, "QUEUED_MESSAGES", "each")
    updates = three_messages(relay, monkeypatch, 7_100_002, {"reply": "answer to one"})
    ids = [update["update_id"] for update in updates]
    requests = agent_requests(relay, "telegram:7100002")

    assert overlapping_pairs(requests) == 0
    assert [call["request"]["update_id"] for call in requests] == ids
    assert [message["text"] for message in relay.telegram.sent_messages(7_100_002)] == [
        "answer to one",
        "echo: two",
        "echo: three",
    ]
    assert paths_by_update(relay, ids) == {update_id: [HAPPY] for update_id in ids}


def test_conversations_do_not_wait_for_each_other(relay, monkeypatch):
    slow = make_update(text="slow", chat_id=7_100_003)
    quick = make_update(text="quick", chat_id=7_100_004)
    relay.agent.add_fault({"reply": "slow answer", "match": {"update_id": slow["update_id"]}})
    release = hold_answer(relay, monkeypatch, slow["update_id"])
    relay.post_update(slow)
    wait_until(lambda: agent_has(relay, slow["update_id"]))
    relay.post_update(quick)
    # The quick chat is answered while the slow chat's turn is still open (its answer held).
    wait_until(lambda: relay.telegram.sent_messages(7_100_004), timeout=20)
    assert relay.telegram.sent_messages(7_100_003) == []
    release.set()
    relay.wait_idle(timeout=30)
    assert [m["text"] for m in relay.telegram.sent_messages(7_100_003)] == ["slow answer"]


def test_a_stopped_turn_holder_is_released_and_the_next_message_goes_on(relay, monkeypatch):
    chat = 7_100_005
    held, following = make_update(text="held", chat_id=chat), make_update(text="next", chat_id=chat)
    release = hold_answer(relay, monkeypatch, held["update_id"])  # the holder's agent call never ends by itself
    relay.post_update(held)
    wait_until(lambda: agent_has(relay, held["update_id"]))
    relay.post_update(following)
    wait_until(lambda: relay.turn_statuses(f"telegram:{chat}").get(following["update_id"]) == "WAITING")

    (holder,) = [e for e in relay.executions() if update_id_of(e) == held["update_id"]]
    # When TurnsFunction began to handle the rule's event for the stopped holder (its ExecutionEnded).
    handled_at: list[float] = []
    turns = relay.functions_by_id["TurnsFunction"]
    handler = turns.handler

    def watched(event, context):
        if event.get("detail", {}).get("executionArn") == holder["executionArn"]:
            handled_at.append(time.time())
        return handler(event, context)

    monkeypatch.setattr(turns, "handler", watched)
    relay.sfn.stop_execution(executionArn=holder["executionArn"])
    # 30 s bounds the failure only: without the rule the next message would wait out the holder's
    # lease (TURN_LEASE_SECONDS); AWS's bound is in the README.
    wait_until(lambda: agent_has(relay, following["update_id"]), timeout=30)
    (call,) = [c for c in relay.agent.calls_snapshot() if c["request"]["update_id"] == following["update_id"]]
    (released,) = handled_at  # the rule delivered the holder's end once, and that let the next one go on
    assert released <= call["at"]
    release.set()  # the stopped execution's request in flight ends; nothing of it is delivered
    relay.wait_idle(timeout=30)
    # The rule (template.yaml, TurnsFunction's ExecutionEnded) takes FAILED, TIMED_OUT and ABORTED only.
    assert "SUCCEEDED" not in {event["detail"]["status"] for event in relay.rules.delivered}
    assert [m["text"] for m in relay.telegram.sent_messages(chat)] == ["echo: next"]
    assert [
        event["detail"]["status"]
        for event in relay.rules.delivered
        if event["detail"]["executionArn"] == holder["executionArn"]
    ] == ["ABORTED"]


def test_a_duplicate_of_a_waiting_update_gets_one_reply(relay, monkeypatch):
    chat = 7_100_006
    first, second = make_update(text="first", chat_id=chat), make_update(text="second", chat_id=chat)
    relay.agent.add_fault({"reply": "first answer", "match": {"update_id": first["update_id"]}})
    release = hold_answer(relay, monkeypatch, first["update_id"])
    relay.post_update(first)
    wait_until(lambda: agent_has(relay, first["update_id"]))
    relay.post_update(second)
    wait_until(lambda: relay.turn_statuses(f"telegram:{chat}").get(second["update_id"]) == "WAITING")
    # Telegram delivers the waiting update again; moto forgets SQS dedupe ids once consumed, so the
    # copy reaches the workflow, as it would on AWS after the 5-minute window.
    relay.post_update(second)
    wait_until(lambda: len([e for e in relay.executions() if update_id_of(e) == second["update_id"]]) == 2)
    release.set()
    relay.wait_idle(timeout=30)

    assert [m["text"] for m in relay.telegram.sent_messages(chat)] == ["first answer", "echo: second"]
    paths = sorted(path for path in paths_by_update(relay, [second["update_id"]])[second["update_id"]])
    assert paths == sorted([HAPPY, ["CheckEnvelope", "ClaimUpdate", "AlreadyHandled"]])


def test_agent_failure_on_the_first_message_the_others_are_answered_in_order(relay, monkeypatch):
    chat = 7_100_007
    updates = three_messages(relay, monkeypatch, chat, {"status": 400})

    texts = [m["text"] for m in relay.telegram.sent_messages(chat)]
    assert texts == [relay.template.parameters["ApologyText"], "echo: two\nthree"]
    parked = [json.loads(m["Body"]) for m in relay.dead_letters() if json.loads(m["Body"])["chat_id"] == chat]
    assert [(body["update_id"], body["merged"]) for body in parked] == [(updates[0]["update_id"], [])]
    assert overlapping_pairs(agent_requests(relay, f"telegram:{chat}")) == 0
    # The parked update is the test's: take it off the queue.
    relay.replay_dead_letters()
    relay.wait_idle(timeout=30)


def test_a_replay_while_the_conversation_is_busy_waits_for_the_turn(relay, monkeypatch):
    chat = 7_100_008
    failed, busy = make_update(text="failed once", chat_id=chat), make_update(text="busy", chat_id=chat)
    relay.agent.add_fault({"status": 400, "match": {"update_id": failed["update_id"]}})
    relay.post_update(failed)
    relay.wait_idle(timeout=30)
    assert [json.loads(m["Body"])["update_id"] for m in relay.dead_letters()] == [failed["update_id"]]

    relay.agent.add_fault({"reply": "busy answer", "match": {"update_id": busy["update_id"]}})
    release = hold_answer(relay, monkeypatch, busy["update_id"])
    relay.post_update(busy)
    wait_until(lambda: agent_has(relay, busy["update_id"]))
    relay.replay_dead_letters()
    # The replayed update waits behind the busy turn: the agent has had it once only (the 400).
    wait_until(lambda: relay.turn_statuses(f"telegram:{chat}").get(failed["update_id"]) == "WAITING")
    asked = [c for c in relay.agent.calls_snapshot() if c["request"].get("update_id") == failed["update_id"]]
    assert len(asked) == 1
    release.set()
    relay.wait_idle(timeout=30)

    texts = [m["text"] for m in relay.telegram.sent_messages(chat)]
    assert texts == [relay.template.parameters["ApologyText"], "busy answer", "echo: failed once"]
    assert overlapping_pairs(agent_requests(relay, f"telegram:{chat}")) == 0
    assert relay.claim(failed["update_id"])["status"] == "DONE"


# The suite runs 20 x 5 (about 25 s on 2 cores); TGRELAY_TURNS_CONVERSATIONS=50 is the 50 x 5
# (README: Conversations, with the figures of such a run).
CONVERSATIONS = int(os.environ.get("TGRELAY_TURNS_CONVERSATIONS", "20"))
PER_CONVERSATION = int(os.environ.get("TGRELAY_TURNS_PER_CONVERSATION", "5"))


@pytest.mark.usefixtures("empty_dead_letter_queue")
def test_load_many_conversations_of_five_messages(relay, capsys):
    """Conversations x 5 messages, posted concurrently (each conversation's messages one after
    another, as Telegram sends them): no overlap within a conversation, order kept, nothing lost or
    answered twice, and conversations in parallel."""
    first_chat = 7_200_000
    conversations = {
        first_chat + n: [make_update(text=f"c{n} m{i}", chat_id=first_chat + n) for i in range(PER_CONVERSATION)]
        for n in range(CONVERSATIONS)
    }
    # Each agent answer takes 0.3 s, so turns of different conversations overlap visibly.
    relay.agent.add_fault({"delay": 0.3, "count": None, "match": {}})
    errors: list[str] = []

    def post_conversation(updates: list[dict]) -> None:
        for update in updates:
            response = relay.post_update(update)
            if response.status_code != 200:
                errors.append(f"{update['update_id']}: {response.status_code}")

    # 8 at a time, like tests/workflow/test_load.py (Telegram keeps up to 40 connections per bot).
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(post_conversation, conversations.values()))
    sent = {update["update_id"] for updates in conversations.values() for update in updates}

    def every_update_asked_and_every_request_replied() -> bool:
        calls = [call for call in relay.agent.calls_snapshot() if call["request"]["chat"]["id"] in conversations]
        asked = {message["update_id"] for call in calls for message in call["request"]["messages"]}
        return asked >= sent and sum(len(relay.telegram.sent_messages(chat)) for chat in conversations) >= len(calls)

    # The fakes' records first (free for the engine; wait_idle asks moto about every running
    # execution every 20 ms, 100 of them here); a lost update goes on to the assertions below.
    with contextlib.suppress(AssertionError):
        wait_until(every_update_asked_and_every_request_replied, timeout=120, poll=0.2)
    relay.wait_idle(timeout=60)

    assert errors == []
    # Nothing dead-lettered; if something was, its error and cause say why (a rare failure under load
    # is not understood yet: the closing note of 2026-11-30).
    parked = [
        {name: value.get("StringValue") for name, value in letter.get("MessageAttributes", {}).items()}
        for letter in relay.dead_letters()
    ]
    assert parked == []
    overlaps = lost = answered_twice = out_of_order = 0
    all_calls = []
    for chat, updates in conversations.items():
        sent_ids = [update["update_id"] for update in updates]
        requests = agent_requests_in(relay, f"telegram:{chat}")
        all_calls += requests
        overlaps += overlapping_pairs(requests)
        answered = [message["update_id"] for call in requests for message in call["request"]["messages"]]
        lost += len(set(sent_ids) - set(answered))
        answered_twice += len(answered) - len(set(answered))
        out_of_order += answered != sorted(answered)
        replies = [m["text"] for m in relay.telegram.sent_messages(chat)]
        assert "\n".join(replies) == "\n".join(f"echo: {c['request']['text']}" for c in requests)
        assert all(relay.claim(update_id)["status"] == "DONE" for update_id in sent_ids)
    most_open = most_open_at_once(all_calls)
    with capsys.disabled():
        print(
            f"\nload: {CONVERSATIONS} conversations x {PER_CONVERSATION} messages, {len(all_calls)} agent requests;"
            f" overlapping per conversation {overlaps}, out of order {out_of_order}, lost {lost},"
            f" answered twice {answered_twice}; most agent requests open at once {most_open}"
        )
    assert (overlaps, out_of_order, lost, answered_twice) == (0, 0, 0, 0)
    assert most_open > 1


def agent_requests_in(relay, session_key: str) -> list[dict]:
    return sorted(agent_requests(relay, session_key), key=lambda call: call["at"])
