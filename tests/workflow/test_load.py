"""A burst of updates across many chats, posted concurrently over HTTP to the local engine.

Every update must be accounted for (replies + skips + dead letters = sent, so lost = 0), no update
answered twice, and each chat's executions started in the order Telegram sent the chat's updates.
Reply order within a chat is not promised (README "Reliability": the pipe starts executions
fire-and-forget, so two executions of one chat run side by side); the second test shows it.

Size: TGRELAY_LOAD_CHATS chats x TGRELAY_LOAD_PER_CHAT updates (default 20 x 2, within the suite's
time budget on a 2-core machine); e.g. TGRELAY_LOAD_PER_CHAT=10 for 200 updates.
"""

import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from run_helpers import executions_of, mark, post, settle, take_dead_letters, update_id_of, update_of
from workflow_helpers import chat_of, make_update

from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay

CHATS = int(os.environ.get("TGRELAY_LOAD_CHATS", "20"))
PER_CHAT = int(os.environ.get("TGRELAY_LOAD_PER_CHAT", "2"))
WORKERS = 8  # concurrent POSTs (Telegram itself keeps up to 40 connections per bot)


@pytest.fixture(scope="module")
def engine():
    # Not conftest's `relay`: its per-test wait_idle describes every execution ever started.
    with LocalRelay(clock=RetryClock("recorded", jitter=1.0)) as relay:
        yield relay


def burst() -> tuple[dict[int, list[dict]], set[int], set[int]]:
    """Each chat's updates in the order Telegram sends them, the updates the agent rejects (400:
    dead-lettered) and those Telegram delivers twice. Every 7th is a sticker (skipped at the webhook)."""
    chats: dict[int, list[dict]] = defaultdict(list)
    rejected, twice = set(), set()
    first_chat = make_update()["message"]["chat"]["id"]
    for index in range(CHATS * PER_CHAT):
        chat = first_chat + 1 + index % CHATS
        if index % 7 == 6:
            update = make_update("sticker.json", chat_id=chat)
        else:
            update = make_update(text=f"load {chat} #{len(chats[chat])}", chat_id=chat)
        chats[chat].append(update)
        if index % 10 == 4:
            twice.add(update["update_id"])
        elif index % 11 == 10:
            # Not one delivered twice: a copy arriving after the failure released the claim runs again
            # (the claim is FAILED, as for a replay) - on AWS SQS's 5-minute dedupe drops such copies.
            rejected.add(update["update_id"])
    return chats, rejected, twice


def test_burst_across_chats_every_update_accounted_for(engine):
    relay = engine
    chats, rejected, twice = burst()
    updates = [update for chat_updates in chats.values() for update in chat_updates]
    for update_id in rejected:
        relay.agent.add_fault({"status": 400, "match": {"update_id": update_id}})
    since = mark(relay)
    answers: dict[int, list] = defaultdict(list)

    def send_chat(chat_updates: list[dict]) -> None:
        # Like Telegram: one chat's updates in order, the next after the webhook answered.
        for update in chat_updates:
            for _ in range(2 if update["update_id"] in twice else 1):
                answers[update["update_id"]].append(post(relay, update))

    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(send_chat, chats.values()))
    executions = settle(relay, since, timeout=180)
    seconds = time.monotonic() - started

    # Every POST acknowledged; a skip says so, every time.
    responses = [(uid, response) for uid, sent in answers.items() for response in sent]
    assert all(response.status_code == 200 for _, response in responses)
    skipped = {uid for uid, response in responses if "skipped" in response.json()}
    assert all(("skipped" in response.json()) == (uid in skipped) for uid, response in responses)
    assert skipped == {u["update_id"] for u in updates if "sticker" in u["message"]}
    # What Telegram accepted: each reply once, and one apology per dead-lettered update of the chat.
    reply_of = {f"echo: {u['message']['text']}": u["update_id"] for u in updates if u["update_id"] not in skipped}
    apology = relay.template.parameters["ApologyText"]
    accepted = [message for message in relay.telegram.sent_messages() if message["chat_id"] in chats]
    replies = Counter(reply_of[message["text"]] for message in accepted if message["text"] != apology)
    dead_letters = Counter(update_id_of(message) for message in take_dead_letters(relay))
    duplicate_replies = sum(count - 1 for count in replies.values())
    assert duplicate_replies == 0
    assert set(dead_letters) == rejected - skipped and set(dead_letters.values()) <= {1}
    apologies = Counter(message["chat_id"] for message in accepted if message["text"] == apology)
    assert apologies == Counter(chat_of(u) for u in updates if u["update_id"] in dead_letters)
    # Accounted for: replies + skips + dead letters = sent, each update in exactly one of them.
    assert not (set(replies) & set(dead_letters) or (set(replies) | set(dead_letters)) & skipped)
    lost = {u["update_id"] for u in updates} - set(replies) - set(dead_letters) - skipped
    assert lost == set()
    assert len(replies) + len(skipped) + len(dead_letters) == len(updates)
    # Executions: one did the work per enqueued update; a second delivery stopped at the claim.
    runs = defaultdict(list)
    for execution in executions:
        runs[update_of(execution)].append(execution)
    assert set(runs) == {u["update_id"] for u in updates} - skipped
    for update_id, update_runs in runs.items():
        assert update_runs[0]["status"] == ("FAILED" if update_id in dead_letters else "SUCCEEDED")
        assert [run["status"] for run in update_runs[1:]] == ["SUCCEEDED"] * (len(update_runs) - 1)
        assert len(update_runs) == 1 or (update_id in twice and len(update_runs) == 2)
    for update_id in replies:
        assert relay.claim(update_id)["status"] == "DONE"
    # The promise: one chat's executions start in the order Telegram sent the chat's updates.
    start_order = list(dict.fromkeys(update_of(execution) for execution in executions))
    for chat, chat_updates in chats.items():
        sent_order = [u["update_id"] for u in chat_updates if u["update_id"] not in skipped]
        assert [uid for uid in start_order if uid in sent_order] == sent_order, f"chat {chat}"

    print(
        f"\nload: {len(updates)} updates ({len(responses)} POSTs, {WORKERS} at a time) over {len(chats)} chats: "
        f"{len(replies)} replied, {len(skipped)} skipped, {len(dead_letters)} dead-lettered; lost {len(lost)}, "
        f"duplicate replies {duplicate_replies}; {len(executions)} executions; {seconds:.1f} s"
    )


def test_reply_order_within_a_chat_is_not_promised(engine):
    """Two updates of one chat: the first's agent answer is slow. Both executions start in order, but
    the second reply reaches Telegram first — the design promises start order, not reply order."""
    first = make_update(text="slow question")
    chat = chat_of(first)
    second = make_update(text="quick question", chat_id=chat)
    engine.agent.add_fault({"delay": 1.0, "match": {"update_id": first["update_id"]}})
    since = mark(engine)

    assert post(engine, first).status_code == 200
    assert post(engine, second).status_code == 200
    executions = settle(engine, since)

    assert [update_of(e) for e in executions] == [first["update_id"], second["update_id"]]
    assert executions_of(engine, since, first["update_id"])[0]["status"] == "SUCCEEDED"
    assert [m["text"] for m in engine.telegram.sent_messages(chat)] == ["echo: quick question", "echo: slow question"]
