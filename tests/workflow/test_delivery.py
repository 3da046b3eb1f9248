"""Telegram delivery on the local engine (issue 13, kinds 2-5): the failures real bots hit, each
with the issue's input and others of its kind, asserting what the user's chat receives (the fake
Telegram's record) and how the update ends. The fault matrix (test_fault_matrix.py) has the
README's rows of the same kinds; these add the inputs the matrix's shape does not fit."""

import json

import pytest
from test_turn_taking import hold_answer
from workflow_helpers import (
    FLOOD_ROUND,
    HAPPY_PATH,
    chat_of,
    make_update,
    mark,
    path_of,
    post,
    settle,
    take_dead_letters,
    wait_for,
)

from tgrelay.envelope import MAX_TEXT_BYTES, carried_text
from tgrelay.errors import TelegramRateLimited
from tgrelay.text import split_message
from tgrelay_local.fakes import describe_file

# -- kind 2: an update Telegram sent is never refused for its length or its fields ----------------


def _with_caption(caption: str) -> dict:
    update = make_update("photo_with_caption.json")
    update["message"]["caption"] = caption
    return update


def _with_text(text: str, **fields) -> dict:
    update = make_update(text=text)
    update["message"].update(fields)
    return update


@pytest.mark.parametrize(
    "update",
    [
        pytest.param(_with_caption("c" * 1025), id="caption-1025 (the issue's)"),
        pytest.param(_with_text("t" * 5000), id="text-5000"),
        pytest.param(_with_text("長" * 40_000), id="text-40000-cjk-cut-to-16-kib"),
        pytest.param(
            _with_text("new fields", story={"chat": {"id": 1}, "id": 7}, reactions_v12=[{"type": "emoji"}]),
            id="fields-from-a-later-bot-api",
        ),
    ],
)
def test_an_update_telegram_sent_is_enqueued_and_answered(relay, update):
    since = mark(relay)
    message = update["message"]
    text = message.get("text") or message["caption"]

    response = post(relay, update)

    assert response.status_code == 200 and response.json() == {"ok": True}
    (execution,) = settle(relay, since)
    assert execution["status"] == "SUCCEEDED"
    carried = json.loads(execution["input"])[0]["update"]["text"]
    assert carried == carried_text(text)
    assert len(carried.encode()) <= MAX_TEXT_BYTES
    sent = [sent["text"] for sent in relay.telegram.sent_messages(chat_of(update))]
    # A photo's caption comes with the photo: the echo agent names the file it was given after the text.
    (call,) = [call for call in relay.agent.calls_snapshot() if call["request"]["chat"]["id"] == chat_of(update)]
    files = "".join(f" [{describe_file(file)}]" for file in call["request"].get("attachments", []))
    assert files or "photo" not in message
    assert sent == split_message(f"echo: {carried}{files}")


# -- kind 3: a group upgraded to a supergroup ------------------------------------------------------


def _group_update(text: str) -> dict:
    return make_update("group_text.json", text=f"@tgrelay_demo_bot {text}")


def test_the_reply_to_an_upgraded_group_goes_to_the_supergroup(relay, monkeypatch):
    # The input: every send to the old group id answers 400 with migrate_to_chat_id.
    update = _group_update("what changed in v2.3?")
    old, new = chat_of(update), -(10**12) - chat_of(update)
    relay.telegram.migrate_chat(old, new)
    since = mark(relay)
    # The agent answers once "typing…" shows in the supergroup (the indicator stops with the answer).
    release = hold_answer(relay, monkeypatch, update["update_id"])

    post(relay, update)
    wait_for(
        lambda: [c for c in relay.telegram.calls_snapshot() if c["status"] == 200 and c["payload"]["chat_id"] == new]
    )
    release.set()
    (execution,) = settle(relay, since)

    assert execution["status"] == "SUCCEEDED"
    assert relay.telegram.sent_messages(old) == []
    assert relay.telegram.sent_messages(new) == [{"chat_id": new, "text": f"echo: {update['message']['text']}"}]
    assert [call["payload"]["chat_id"] for call in relay.telegram.calls_snapshot() if call["status"] == 200] == [
        new,  # "typing…" there too
        new,
    ]
    assert relay.claim(update["update_id"])["status"] == "DONE"


def test_a_long_reply_to_an_upgraded_group_goes_to_the_supergroup_chunk_by_chunk(relay):
    update = _group_update("the long answer please")
    old, new = chat_of(update), -(10**12) - chat_of(update)
    relay.telegram.migrate_chat(old, new)
    reply = "\n\n".join(f"Part {n}: " + "word " * 900 for n in range(3))
    relay.agent.add_fault({"reply": reply, "match": {"update_id": update["update_id"]}})
    since = mark(relay)

    post(relay, update)
    settle(relay, since)

    assert [message["text"] for message in relay.telegram.sent_messages(new)] == split_message(reply)
    refused = [call for call in relay.telegram.calls_snapshot() if call["payload"].get("chat_id") == old]
    assert [call["method"] for call in refused] == ["sendChatAction", "sendMessage"]  # each asked once


# -- kind 4: a forum topic that is gone ------------------------------------------------------------


def _private_topic_update(chat_id: int, thread_id: int, text: str) -> dict:
    update = make_update(text=text, chat_id=chat_id)
    update["message"].update(message_thread_id=thread_id, is_topic_message=True)
    return update


def test_a_reply_in_a_gone_private_topic_goes_to_the_chat(relay):
    # The input: private chat 5550005, message_thread_id 38, is_topic_message true.
    update = _private_topic_update(5550005, 38, "is my order shipped?")
    gone = {"status": 400, "description": "Bad Request: message thread not found", "count": None}
    relay.telegram.add_fault({**gone, "match": {"chat_id": 5550005, "message_thread_id": 38}})
    since = mark(relay)

    post(relay, update)
    (execution,) = settle(relay, since)

    assert relay.telegram.sent_messages(5550005) == [{"chat_id": 5550005, "text": "echo: is my order shipped?"}]
    assert execution["status"] == "SUCCEEDED" and path_of(relay, execution) == HAPPY_PATH
    assert relay.claim(update["update_id"])["status"] == "DONE"  # not UNDELIVERABLE: the chat is there


def test_a_reply_in_a_deleted_forum_topic_goes_to_the_general_topic_in_every_chunk(relay):
    update = make_update("forum_topic_text.json")
    chat = chat_of(update)
    relay.telegram.add_fault(
        {
            "status": 400,
            "description": "Bad Request: TOPIC_DELETED",
            "count": None,
            "match": {"message_thread_id": 7690},
        }
    )
    reply = "\n\n".join(f"Section {n}: " + "text " * 900 for n in range(2))
    relay.agent.add_fault({"reply": reply, "match": {"update_id": update["update_id"]}})
    since = mark(relay)

    post(relay, update)
    settle(relay, since)

    sent = relay.telegram.sent_messages(chat)
    assert [message["text"] for message in sent] == split_message(reply)
    assert [set(message) for message in sent] == [{"chat_id", "text"}] * len(sent)  # no topic, no quote


# -- kind 5: long flood waits ----------------------------------------------------------------------


def test_a_flooded_group_gets_its_reply_after_the_waits_telegram_asked(relay):
    # The input: 429 with retry_after 300 for every send within the window (here: three).
    update = _group_update("busy evening")
    chat = chat_of(update)
    relay.telegram.add_fault({"status": 429, "retry_after": 300, "count": 3, "match": {"chat_id": chat}})
    since = mark(relay)

    post(relay, update)
    (execution,) = settle(relay, since)

    assert relay.telegram.sent_messages(chat)[0]["text"] == "echo: @tgrelay_demo_bot busy evening"
    assert len(relay.telegram.sent_messages(chat)) == 1
    assert relay.clock.take_state_waits() == [300, 300, 300]  # recorded, not slept
    assert relay.clock.take_waits() == []  # no fixed Retry schedule any more
    again = [state.replace("FirstFloodWait", "NextFloodWait") for state in FLOOD_ROUND]
    assert path_of(relay, execution) == [*HAPPY_PATH[:5], *FLOOD_ROUND, *again, *again, "MarkDone"]
    assert execution["status"] == "SUCCEEDED"


def test_a_flood_wait_mid_reply_resends_nothing_already_accepted(relay):
    update = make_update(text="three parts")
    chat = chat_of(update)
    parts = [f"Part {n}: " + "word " * 700 for n in range(3)]
    relay.agent.add_fault({"reply": "\n\n".join(parts), "match": {"update_id": update["update_id"]}})
    second = split_message("\n\n".join(parts))[1]
    relay.telegram.add_fault({"status": 429, "retry_after": 120, "match": {"chat_id": chat, "text": second}})
    since = mark(relay)

    post(relay, update)
    settle(relay, since)

    assert [message["text"] for message in relay.telegram.sent_messages(chat)] == split_message("\n\n".join(parts))
    assert relay.clock.take_state_waits() == [120]
    assert relay.claim(update["update_id"])["chunks_sent"] == "3"


def test_flood_waits_past_the_bound_end_in_the_dead_letter_queue(relay):
    update = make_update(text="never gets through")
    chat = chat_of(update)
    relay.telegram.add_fault({"status": 429, "retry_after": 1800, "count": None, "match": {"chat_id": chat}})
    since = mark(relay)

    post(relay, update)
    (execution,) = settle(relay, since)
    dead = take_dead_letters(relay)

    assert relay.telegram.sent_messages(chat) == []  # the apology met the same flood
    assert relay.clock.take_state_waits() == [1800, 1800]  # a third would pass 3600 s
    assert (execution["status"], execution["error"]) == ("FAILED", "TelegramRateLimited")
    assert [json.loads(message["Body"])["update_id"] for message in dead] == [update["update_id"]]
    assert relay.claim(update["update_id"])["status"] == "FAILED"


def test_the_asl_reads_the_retry_after_telegramratelimited_says():
    # AddFloodWait takes the fifth word of the message: the two must agree for every number.
    for seconds in (6, 300, 3600, 86_400):
        assert str(TelegramRateLimited(seconds)).split(" ")[4] == str(seconds)


# -- the claim's reason: the error message, not the Lambda error JSON ------------------------------


def test_an_undeliverable_claim_keeps_telegrams_words(relay):
    update = make_update(text="anyone?")
    chat = chat_of(update)
    blocked = {"status": 403, "description": "Forbidden: bot was blocked by the user", "match": {"chat_id": chat}}
    relay.telegram.add_fault(blocked)
    since = mark(relay)

    post(relay, update)
    settle(relay, since)

    claim = relay.claim(update["update_id"])
    assert claim["status"] == "UNDELIVERABLE"
    assert claim["reason"] == "sendMessage: 403 Forbidden: bot was blocked by the user"
