"""SendReply when Telegram says the conversation moved: a group upgraded to a supergroup (400 with
parameters.migrate_to_chat_id) and a forum topic that is gone or closed ("message thread not
found", TOPIC_DELETED, TOPIC_CLOSED). What the user's chat receives is read off the fake Telegram."""

import json
import time

import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    APOLOGY_TEXT,
    agent_server_fixture,
    envelope,
    fake_agent_fixture,
    fake_telegram_fixture,
    relay_fixture,
    telegram_server_fixture,
)
from test_send_reply import deliver
from unit_helpers import DEDUPE_TTL_SECONDS, SAMPLE_RECEIVED_AT

from tgrelay import call_agent, send_reply
from tgrelay.envelope import envelope_from_update
from tgrelay.errors import RecipientUnavailable, TelegramRejected

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tgrelay-relay:moved-1"
GROUP = -1001987654321  # group_text's chat
SUPERGROUP = -1009876543210
TOPIC_CHAT = -1002233445566  # forum_topic_text's chat, topic 7690
THREAD_NOT_FOUND = "Bad Request: message thread not found"


def reply_event(update: dict, text: str, **reply) -> dict:
    return {"update": update, "reply": {"text": text, "parse_mode": None, **reply}, "execution": EXECUTION}


def private_topic_envelope(chat_id: int = 5550005, thread_id: int = 38) -> dict:
    """A private chat with topics (Bot API 9.3): the user wrote in topic `thread_id`."""
    message = {
        "message_id": 901,
        "from": {"id": chat_id, "is_bot": False, "first_name": "Ana"},
        "chat": {"id": chat_id, "type": "private", "first_name": "Ana"},
        "date": 1763800100,
        "message_thread_id": thread_id,
        "is_topic_message": True,
        "text": "Where is my order?",
    }
    return envelope_from_update(
        {"update_id": 700001, "message": message}, received_at=SAMPLE_RECEIVED_AT, ttl_seconds=DEDUPE_TTL_SECONDS
    )


def calls(relay, method: str = "sendMessage") -> list[tuple[int, dict]]:
    return [(call["status"], call["payload"]) for call in relay.telegram.calls_snapshot() if call["method"] == method]


# --- a group upgraded to a supergroup -------------------------------------------------------------


def emitted(output: str, name: str) -> list[float]:
    """The values of metric `name` in the EMF lines Powertools printed."""
    values: list[float] = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            values += json.loads(line).get(name, [])
    return values


def test_reply_to_an_upgraded_group_goes_to_the_supergroup(relay, lambda_context, capsys, caplog):
    # The input: every send to the old group id answers 400 with migrate_to_chat_id.
    update = envelope("group_text")
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.migrate_chat(GROUP, SUPERGROUP)

    result = deliver(reply_event(update, "v2.3 changed the retry policy."), lambda_context)

    assert result == {"chunks": 1, "sent": 1}
    assert relay.telegram.sent_messages(GROUP) == []
    # Not quoting: message 5530 is the old group's, an id in the supergroup names another message.
    assert relay.telegram.sent_messages(SUPERGROUP) == [
        {"chat_id": SUPERGROUP, "text": "v2.3 changed the retry policy."}
    ]
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "1"}
    output = capsys.readouterr().out
    assert emitted(output, "ChatMigrations") == [1.0]
    (entry,) = [r for r in caplog.records if r.getMessage() == "group upgraded to a supergroup, sending there"]
    assert (entry.migrate_from_chat_id, entry.migrate_to_chat_id) == (GROUP, SUPERGROUP)


def test_every_chunk_and_the_buttons_follow_the_supergroup_asking_the_old_group_once(relay, lambda_context):
    update = envelope("group_text")
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.migrate_chat(GROUP, SUPERGROUP)
    buttons = [[{"text": "More", "callback_data": "more"}]]

    deliver(reply_event(update, "first", more_messages=["second", "third"], buttons=buttons), lambda_context)

    assert [(message["chat_id"], message["text"]) for message in relay.telegram.sent_messages()] == [
        (SUPERGROUP, "first"),
        (SUPERGROUP, "second"),
        (SUPERGROUP, "third"),
    ]
    assert relay.telegram.sent_messages()[-1]["reply_markup"] == {"inline_keyboard": buttons}
    assert [status for status, payload in calls(relay) if payload["chat_id"] == GROUP] == [400]


def test_the_apology_to_an_upgraded_group_goes_to_the_supergroup(relay, lambda_context):
    update = envelope("group_text")
    relay.telegram.migrate_chat(GROUP, SUPERGROUP)

    send_reply.handler({"update": update, "apology": True}, lambda_context)

    assert relay.telegram.sent_messages() == [{"chat_id": SUPERGROUP, "text": APOLOGY_TEXT}]


def test_an_upgraded_forum_keeps_its_topic(relay, lambda_context):
    # A forum moved with its topics: only the chat id changes.
    update = envelope("forum_topic_text")
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.migrate_chat(TOPIC_CHAT, SUPERGROUP)

    deliver(reply_event(update, "Checking the invoice."), lambda_context)

    assert relay.telegram.sent_messages() == [
        {"chat_id": SUPERGROUP, "text": "Checking the invoice.", "message_thread_id": 7690}
    ]


def test_a_refusal_from_the_supergroup_too_is_rejected_not_sent_around_in_circles(relay, lambda_context):
    update = envelope("group_text")
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.migrate_chat(GROUP, SUPERGROUP)
    relay.telegram.migrate_chat(SUPERGROUP, GROUP)  # nonsense Telegram never says: one move only

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "hello"), lambda_context)

    assert type(caught.value) is TelegramRejected
    assert len(calls(relay)) == 2


def test_the_typing_indicator_follows_the_supergroup(relay, lambda_context, monkeypatch):
    update = envelope("group_text")
    relay.telegram.migrate_chat(GROUP, SUPERGROUP)
    monkeypatch.setattr(call_agent, "TYPING_INTERVAL_SECONDS", 60)

    with call_agent.typing_indicator(update):  # as long as an agent request takes, at most 5 s here
        deadline = time.monotonic() + 5
        while len(calls(relay, "sendChatAction")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)

    assert [(status, payload["chat_id"]) for status, payload in calls(relay, "sendChatAction")] == [
        (400, GROUP),
        (200, SUPERGROUP),
    ]


# --- a forum topic that is gone -------------------------------------------------------------------


def test_reply_in_a_gone_private_topic_goes_to_the_chat(relay, lambda_context, capsys, caplog):
    # The input: private chat 5550005, message_thread_id 38, is_topic_message true.
    update = private_topic_envelope()
    assert update["thread_id"] == 38
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault(
        {"status": 400, "description": THREAD_NOT_FOUND, "count": None, "match": {"message_thread_id": 38}}
    )

    result = deliver(reply_event(update, "It ships tomorrow."), lambda_context)

    assert result == {"chunks": 1, "sent": 1}
    assert relay.telegram.sent_messages() == [{"chat_id": 5550005, "text": "It ships tomorrow."}]
    assert [status for status, _ in calls(relay)] == [400, 200]
    output = capsys.readouterr().out
    assert emitted(output, "TopicsGone") == [1.0]
    assert [r.getMessage() for r in caplog.records if "topic gone" in r.getMessage()] == [
        "topic gone, sending to the chat without it"
    ]


@pytest.mark.parametrize("description", ["Bad Request: TOPIC_DELETED", "Bad Request: TOPIC_CLOSED", THREAD_NOT_FOUND])
def test_reply_in_a_gone_forum_topic_goes_to_the_chat_without_the_quote(relay, lambda_context, description):
    # The quoted message is in the topic: "allow_sending_without_reply ... always False for replies in
    # another chat or forum topic" (Bot API ReplyParameters), so the quote goes too.
    update = envelope("forum_topic_text")
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault(
        {
            "status": 400,
            "description": description,
            "count": None,
            "match": {"chat_id": TOPIC_CHAT, "message_thread_id": 7690},
        }
    )

    deliver(reply_event(update, "Checking the invoice."), lambda_context)

    assert relay.telegram.sent_messages() == [{"chat_id": TOPIC_CHAT, "text": "Checking the invoice."}]


def test_every_chunk_after_a_gone_topic_goes_to_the_chat_asking_the_topic_once(relay, lambda_context):
    update = private_topic_envelope(chat_id=5550006, thread_id=12)
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault(
        {"status": 400, "description": THREAD_NOT_FOUND, "count": None, "match": {"message_thread_id": 12}}
    )

    deliver(reply_event(update, "one", more_messages=["two", "three"]), lambda_context)

    assert relay.telegram.sent_messages() == [
        {"chat_id": 5550006, "text": "one"},
        {"chat_id": 5550006, "text": "two"},
        {"chat_id": 5550006, "text": "three"},
    ]
    assert [status for status, _ in calls(relay)] == [400, 200, 200, 200]


def test_a_chat_that_is_gone_is_still_recipient_unavailable(relay, lambda_context):
    update = private_topic_envelope(chat_id=5550007)
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 400, "description": THREAD_NOT_FOUND, "match": {"message_thread_id": 38}})
    relay.telegram.add_fault({"status": 400, "description": "Bad Request: chat not found"})

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "anyone?"), lambda_context)

    assert type(caught.value) is RecipientUnavailable
    assert relay.telegram.sent_messages() == []


def test_a_thread_refusal_without_a_thread_is_rejected(relay, lambda_context):
    # Nothing to drop: the same 400 again would be a loop.
    update = envelope("private_text")
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 400, "description": THREAD_NOT_FOUND})

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "hi"), lambda_context)

    assert type(caught.value) is TelegramRejected
    assert len(calls(relay)) == 1
