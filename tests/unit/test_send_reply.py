"""SendReplyFunction against the loopback FakeTelegram and moto DynamoDB: delivery, fallbacks, resumption."""

import time

import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    APOLOGY_TEXT,
    BOT_TOKEN,
    SECRET,
    agent_server_fixture,
    envelope,
    fake_agent_fixture,
    fake_telegram_fixture,
    relay_fixture,
    telegram_server_fixture,
)
from unit_helpers import hold_turn

from tgrelay import send_reply
from tgrelay.errors import (
    ConfigurationError,
    RecipientUnavailable,
    TelegramRateLimited,
    TelegramRejected,
    TelegramUnavailable,
    TurnLost,
)
from tgrelay.text import split_message, utf16_len
from tgrelay_local.template import Template

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tgrelay-relay:6b1f0d2c"
OTHER_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tgrelay-relay:replay-93ce"
PRIVATE_CHAT = 284719365
TOPIC_CHAT = -1002233445566
CANT_PARSE = "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0"
# In groups the first message of an answer quotes the user's (forum_topic_text's message 7712).
QUOTE = {"message_id": 7712, "allow_sending_without_reply": True}


BOLD = [{"type": "bold", "offset": 0, "length": 4}]


def reply_event(update: dict, text: str, entities: list | None = None, execution: str | None = EXECUTION) -> dict:
    """SendReply's event for a one-message reply as CallAgent renders it (replies module docstring)."""
    event: dict = {"update": update, "reply": {"text": text, **({"entities": entities} if entities else {})}}
    if execution:
        event["execution"] = execution
    return event


def deliver(event: dict, context) -> dict:
    """SendReply as the workflow runs it: a reply's execution holds its conversation's turn (the
    apology carries no execution and needs none)."""
    if event.get("execution"):
        hold_turn(event["update"], event["execution"])
    return send_reply.handler(event, context)


def long_reply() -> str:
    """About 9,000 characters in 100 numbered lines: three Telegram messages."""
    return "\n".join(f"line {n:03d} " + "abcdefghij" * 8 + "." for n in range(100))


def sendmessage_calls(relay) -> list[dict]:
    return [call for call in relay.telegram.calls_snapshot() if call["method"] == "sendMessage"]


class _Sleeps:
    """Stands in for the time module inside tgrelay.send_reply: each sleep is recorded, not slept,
    with the statuses of the sendMessage calls made before it."""

    def __init__(self, relay):
        self.relay = relay
        self.taken: list[tuple[float, list[int]]] = []

    def sleep(self, seconds: float) -> None:
        self.taken.append((seconds, [call["status"] for call in sendmessage_calls(self.relay)]))

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def sleeps(relay, monkeypatch) -> _Sleeps:
    recorder = _Sleeps(relay)
    monkeypatch.setattr(send_reply, "time", recorder)
    return recorder


def test_short_reply_is_one_message_and_is_counted_on_the_claim(relay, lambda_context):
    update = envelope("private_text")
    relay.put_claim(update["update_id"], EXECUTION)

    result = deliver(reply_event(update, "Here are the notes."), lambda_context)

    assert result == {"chunks": 1, "sent": 1}
    assert relay.telegram.sent_messages() == [{"chat_id": PRIVATE_CHAT, "text": "Here are the notes."}]
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "1"}


def test_plain_group_reply_has_no_thread_and_quotes_the_message(relay, lambda_context):
    update = envelope("group_text")
    relay.put_claim(update["update_id"], EXECUTION)

    deliver(reply_event(update, "v2.3 changed the retry policy."), lambda_context)

    assert relay.telegram.sent_messages() == [
        {
            "chat_id": -1001987654321,
            "text": "v2.3 changed the retry policy.",
            "reply_parameters": {"message_id": 5530, "allow_sending_without_reply": True},
        }
    ]


def test_forum_topic_reply_goes_to_the_topic(relay, lambda_context):
    update = envelope("forum_topic_text")
    relay.put_claim(update["update_id"], EXECUTION)

    deliver(reply_event(update, "Checking the invoice."), lambda_context)

    assert relay.telegram.sent_messages() == [
        {"chat_id": TOPIC_CHAT, "text": "Checking the invoice.", "message_thread_id": 7690, "reply_parameters": QUOTE}
    ]


def test_entities_are_sent_with_the_text_and_shown(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)

    deliver(reply_event(update, "Done", BOLD), lambda_context)

    assert relay.telegram.sent_messages() == [{"chat_id": PRIVATE_CHAT, "text": "Done", "entities": BOLD}]
    assert relay.telegram.received() == [{"text": "Done", "entities": BOLD}]


def test_a_reply_rendered_before_entities_existed_is_rendered_here(relay, lambda_context):
    """An execution whose CallAgent ran the previous release carries parse_mode and markup."""
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    reply = {"text": "<b>Done</b>", "parse_mode": "HTML", "more_messages": ["*next*"]}

    deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert relay.telegram.received() == [
        {"text": "Done", "entities": BOLD},
        {"text": "*next*", "entities": []},  # not HTML markup: shown as written
    ]
    assert all("parse_mode" not in message for message in relay.telegram.sent_messages())


def test_refused_formatting_is_resent_once_as_plain_text(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 400, "description": CANT_PARSE})

    deliver(reply_event(update, "Done", BOLD), lambda_context)

    calls = sendmessage_calls(relay)
    assert [(call["status"], "entities" in call["payload"]) for call in calls] == [(400, True), (200, False)]
    assert relay.telegram.received() == [{"text": "Done", "entities": []}]
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "1"}


def test_unparsable_plain_text_resend_is_not_retried_again(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 400, "description": CANT_PARSE, "count": 2})

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "Done", BOLD), lambda_context)

    assert type(caught.value) is TelegramRejected
    assert len(sendmessage_calls(relay)) == 2


def test_cant_parse_without_parse_mode_is_rejected_not_resent(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 400, "description": CANT_PARSE})

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "plain"), lambda_context)

    assert type(caught.value) is TelegramRejected
    assert len(sendmessage_calls(relay)) == 1


def test_short_rate_limit_is_waited_out_inline(relay, lambda_context, sleeps):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 429, "retry_after": 1})

    deliver(reply_event(update, "after a pause"), lambda_context)

    assert sleeps.taken == [(1, [429])]  # Telegram's retry_after, between the 429 and the resend
    assert [call["status"] for call in sendmessage_calls(relay)] == [429, 200]
    assert relay.telegram.sent_messages() == [{"chat_id": PRIVATE_CHAT, "text": "after a pause"}]


def test_rate_limited_again_after_the_inline_wait_is_raised(relay, lambda_context, sleeps):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 429, "retry_after": 1, "count": 2})

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "still limited"), lambda_context)

    assert type(caught.value) is TelegramRateLimited
    assert sleeps.taken == [(1, [429])]  # one inline wait only
    assert [call["status"] for call in sendmessage_calls(relay)] == [429, 429]


def test_long_rate_limit_is_left_to_the_workflow(relay, lambda_context, sleeps):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 429, "retry_after": 30})

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "later"), lambda_context)

    assert sleeps.taken == []  # no inline wait: the ASL's TelegramRateLimited retry waits instead
    assert type(caught.value) is TelegramRateLimited
    assert caught.value.retry_after == 30
    assert len(sendmessage_calls(relay)) == 1
    assert "chunks_sent" not in relay.claim(update["update_id"])


def test_blocked_user_is_recipient_unavailable(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 403})

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "hello?"), lambda_context)

    assert type(caught.value) is RecipientUnavailable
    assert BOT_TOKEN not in str(caught.value)
    assert relay.telegram.sent_messages() == []


def test_long_reply_is_sent_as_ordered_chunks_within_the_limit(relay, lambda_context):
    update = envelope("forum_topic_text")
    relay.put_claim(update["update_id"], EXECUTION)
    text = long_reply()
    assert 8900 < len(text) < 9100

    result = deliver(reply_event(update, text), lambda_context)

    sent = relay.telegram.sent_messages()
    assert result == {"chunks": 3, "sent": 3}
    assert len(sent) == 3
    assert all(utf16_len(message["text"]) <= 4096 for message in sent)
    assert all(message["message_thread_id"] == 7690 for message in sent)
    assert "\n".join(message["text"] for message in sent) == text  # in order, nothing lost or repeated
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "3"}


def test_retry_of_the_same_execution_resumes_after_the_last_accepted_chunk(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    text = long_reply()
    chunks = split_message(text)
    assert len(chunks) == 3
    relay.telegram.add_fault({"status": 500, "match": {"text": chunks[1]}})

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, text), lambda_context)

    assert type(caught.value) is TelegramUnavailable
    assert [message["text"] for message in relay.telegram.sent_messages()] == chunks[:1]
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "1"}

    # The Step Functions retry: same event, same execution.
    result = deliver(reply_event(update, text), lambda_context)

    assert result == {"chunks": 3, "sent": 2}
    assert [message["text"] for message in relay.telegram.sent_messages()] == chunks
    assert [call["status"] for call in sendmessage_calls(relay)] == [200, 500, 200, 200]
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "3"}


def test_claim_of_another_execution_starts_from_the_first_chunk(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], OTHER_EXECUTION, chunks_sent={"N": "2"})
    text = long_reply()

    result = deliver(reply_event(update, text), lambda_context)

    assert result == {"chunks": 3, "sent": 3}
    assert "\n".join(message["text"] for message in relay.telegram.sent_messages()) == text
    # The other execution's claim and progress are left as they were.
    claim = relay.claim(update["update_id"])
    assert (claim["execution"], claim["chunks_sent"]) == ({"S": OTHER_EXECUTION}, {"N": "2"})


def test_apology_is_sent_without_touching_dynamodb(relay, lambda_context, monkeypatch):
    update = envelope("forum_topic_text")
    # Any DynamoDB access (claim or turn) would now fail with ConfigurationError.
    monkeypatch.delenv("TABLE_NAME")
    monkeypatch.delenv("TURNS_TABLE_NAME")

    result = send_reply.handler({"update": update, "apology": True}, lambda_context)

    assert result == {"chunks": 1, "sent": 1}
    assert relay.telegram.sent_messages() == [
        {"chat_id": TOPIC_CHAT, "text": APOLOGY_TEXT, "message_thread_id": 7690, "reply_parameters": QUOTE}
    ]
    assert relay.table_items() == []


def test_without_the_turn_nothing_is_sent(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    hold_turn(update, OTHER_EXECUTION)

    with pytest.raises(TurnLost):
        send_reply.handler(reply_event(update, "hello"), lambda_context)

    assert relay.telegram.calls_snapshot() == []
    assert "chunks_sent" not in relay.claim(update["update_id"])


def test_missing_bot_token_is_configuration_error(relay, lambda_context):
    relay.set_secret({key: value for key, value in SECRET.items() if key != "bot_token"})
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)

    with pytest.raises(Exception) as caught:
        deliver(reply_event(update, "hello"), lambda_context)

    assert type(caught.value) is ConfigurationError
    assert relay.telegram.calls_snapshot() == []


# --- several messages, buttons, quotes --------------------------------------------------------------


def test_buttons_telegram_refuses_are_dropped_and_the_text_delivered(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    buttons = [[{"text": "Local docs", "url": "http://localhost:8000/docs"}]]
    relay.telegram.add_fault({"status": 400, "description": "Bad Request: BUTTON_URL_INVALID"})

    event = {"update": update, "reply": {"text": "see the docs", "buttons": buttons}}
    assert deliver({**event, "execution": EXECUTION}, lambda_context) == {"chunks": 1, "sent": 1}

    calls = sendmessage_calls(relay)
    assert [(call["status"], "reply_markup" in call["payload"]) for call in calls] == [(400, True), (200, False)]
    assert relay.telegram.sent_messages() == [{"chat_id": PRIVATE_CHAT, "text": "see the docs"}]


def test_other_refusals_of_a_message_with_buttons_are_not_retried_without_them(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"status": 400, "description": "Bad Request: message is too long"})
    reply = {"text": "x", "buttons": [[{"text": "b", "callback_data": "c"}]]}

    with pytest.raises(Exception) as caught:
        deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert type(caught.value) is TelegramRejected
    assert len(sendmessage_calls(relay)) == 1


def test_a_retry_resumes_in_the_flat_list_of_messages_and_chunks(relay, lambda_context):
    update = envelope("group_text")
    relay.put_claim(update["update_id"], EXECUTION)
    reply = {"text": long_reply(), "more_messages": [{"text": "second"}, {"text": "third"}]}
    relay.telegram.add_fault({"status": 500, "match": {"text": "second"}})

    with pytest.raises(Exception) as caught:
        deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)
    assert type(caught.value) is TelegramUnavailable
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "3"}  # the long text's three chunks

    result = deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert result == {"chunks": 5, "sent": 2}
    sent = relay.telegram.sent_messages()
    assert [message["text"] for message in sent[3:]] == ["second", "third"]
    assert "\n".join(message["text"] for message in sent[:3]) == long_reply()
    # Only the very first message quotes the user's.
    assert ["reply_parameters" in message for message in sent] == [True, False, False, False, False]


def test_one_chunk_makes_at_most_sends_per_chunk_calls(relay, lambda_context, sleeps):
    """The worst chunk send_chunk can meet: formatting refused, buttons refused, a short 429 waited
    out inline, then accepted. longest_chunk_ms() counts exactly these calls (issue 14, finding 2)."""
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    for fault in (
        {"status": 400, "description": CANT_PARSE},
        {"status": 400, "description": "Bad Request: BUTTON_URL_INVALID"},
        {"status": 429, "retry_after": 1},
    ):
        relay.telegram.add_fault(fault)
    buttons = [[{"text": "Local docs", "url": "http://localhost:8000/docs"}]]
    reply = {"text": "<b>see</b> the docs", "parse_mode": "HTML", "buttons": buttons}

    assert deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)["sent"] == 1

    assert [call["status"] for call in sendmessage_calls(relay)] == [400, 400, 429, 200]
    assert len(sendmessage_calls(relay)) == send_reply.SENDS_PER_CHUNK


def test_the_longest_chunk_fits_in_the_send_reply_timeout(monkeypatch):
    """A chunk starts only with longest_chunk_ms() left, and the first one right after the start:
    the function's Timeout must hold one whole chunk and the start (the lease, the secret, the count:
    a few AWS calls). The old reserve, 30 s, was below one chunk's worst case."""
    function = Template().function_properties("SendReplyFunction")
    monkeypatch.setenv(
        "TELEGRAM_MAX_INLINE_WAIT_SECONDS", function["Environment"]["Variables"]["TELEGRAM_MAX_INLINE_WAIT_SECONDS"]
    )
    per_call = send_reply.telegram.TIMEOUT.connect + send_reply.telegram.TIMEOUT.read
    inline_wait = float(function["Environment"]["Variables"]["TELEGRAM_MAX_INLINE_WAIT_SECONDS"])
    assert send_reply.longest_chunk_ms() == ((send_reply.SENDS_PER_CHUNK + 1) * per_call + inline_wait) * 1000
    assert send_reply.longest_chunk_ms() > 30_000
    assert int(function["Timeout"]) * 1000 >= send_reply.longest_chunk_ms() + 20_000
