"""tgrelay.telegram.call against the loopback FakeTelegram: every answer mapped to its named outcome."""

import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    BOT_TOKEN,
    closed_port_url,
    fake_telegram_fixture,
    telegram_api_fixture,
    telegram_server_fixture,
)

from tgrelay import telegram
from tgrelay.errors import RecipientUnavailable, TelegramRateLimited, TelegramRejected, TelegramUnavailable

CHAT_ID = 284719365
WRONG_TOKEN = "654321:WRONG-bot-token"


def send(text: str = "hello", token: str = BOT_TOKEN) -> dict:
    return telegram.call(token, "sendMessage", {"chat_id": CHAT_ID, "text": text})


def raised(token: str = BOT_TOKEN) -> Exception:
    """The exception sendMessage raised; no token may appear in it (it lands in execution history)."""
    with pytest.raises(Exception) as caught:
        send(token=token)
    error = caught.value
    for secret in (BOT_TOKEN, WRONG_TOKEN, BOT_TOKEN.split(":")[1]):
        assert secret not in str(error)
        assert secret not in repr(error)
    return error


def test_ok_answer_returns_the_result(telegram_api):
    result = send("hello there")

    assert result["chat"] == {"id": CHAT_ID}
    assert isinstance(result["message_id"], int)
    assert telegram_api.sent_messages(CHAT_ID) == [{"chat_id": CHAT_ID, "text": "hello there"}]


def test_other_methods_return_their_result(telegram_api):
    assert telegram.call(BOT_TOKEN, "getMe", {}) == {"id": 123456, "is_bot": True, "username": "tgrelay_demo_bot"}


def test_429_is_rate_limited_with_retry_after(telegram_api):
    telegram_api.add_fault({"status": 429, "retry_after": 17})

    error = raised()

    assert type(error) is TelegramRateLimited
    assert error.retry_after == 17


@pytest.mark.parametrize("status", [500, 502])
def test_server_errors_are_telegram_unavailable(telegram_api, status):
    telegram_api.add_fault({"status": status})

    error = raised()

    assert type(error) is TelegramUnavailable
    assert str(status) in str(error)


def test_dropped_connection_is_telegram_unavailable(telegram_api):
    telegram_api.add_fault({"close": True})

    assert type(raised()) is TelegramUnavailable


def test_closed_port_is_telegram_unavailable(telegram_api, monkeypatch):
    monkeypatch.setenv("TELEGRAM_API_URL", closed_port_url())

    assert type(raised()) is TelegramUnavailable


def test_ok_status_with_a_body_that_is_not_json_is_telegram_unavailable(telegram_api):
    telegram_api.add_fault({"status": 200, "body": "<html>gateway hiccup</html>"})

    assert type(raised()) is TelegramUnavailable


def test_403_blocked_is_recipient_unavailable(telegram_api):
    telegram_api.add_fault({"status": 403})

    assert type(raised()) is RecipientUnavailable


def test_400_for_a_gone_chat_is_recipient_unavailable(telegram_api):
    telegram_api.add_fault({"status": 400, "description": "Bad Request: chat not found"})

    assert type(raised()) is RecipientUnavailable


@pytest.mark.parametrize(
    "description", ["Bad Request: message thread not found", "Bad Request: TOPIC_CLOSED", "Bad Request: TOPIC_DELETED"]
)
def test_400_for_a_gone_topic_is_rejected_not_recipient_unavailable(telegram_api, description):
    # The chat is still there: SendReply sends to it without the topic (test_send_reply.py).
    telegram_api.add_fault({"status": 400, "description": description})

    error = raised()
    assert type(error) is TelegramRejected
    assert error.description == description


def test_400_for_an_upgraded_group_names_the_supergroup(telegram_api):
    telegram_api.migrate_chat(CHAT_ID, -1000000000042)

    error = raised()
    assert type(error) is TelegramRejected
    assert error.migrate_to_chat_id == -1000000000042
    assert "upgraded to a supergroup" in error.description


@pytest.mark.parametrize("retry_after", [-5, "30", None, 10**12])
def test_a_retry_after_out_of_range_is_read_as_a_number_the_asl_can_wait(telegram_api, retry_after):
    telegram_api.add_fault({"status": 429, "retry_after": retry_after})

    error = raised()
    assert type(error) is TelegramRateLimited
    assert error.retry_after == (telegram.MAX_RETRY_AFTER if retry_after == 10**12 else 1)


def test_other_400_is_telegram_rejected_with_the_description(telegram_api):
    description = "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 3"
    telegram_api.add_fault({"status": 400, "description": description})

    error = raised()

    assert type(error) is TelegramRejected
    assert (error.status, error.description) == (400, description)


def test_real_limit_answer_from_the_fake_is_telegram_rejected(telegram_api):
    with pytest.raises(Exception) as caught:
        send("x" * 4097)

    assert type(caught.value) is TelegramRejected
    assert caught.value.description == "Bad Request: message is too long"


def test_wrong_token_is_telegram_rejected_without_the_token(telegram_api):
    error = raised(token=WRONG_TOKEN)

    assert type(error) is TelegramRejected
    assert (error.status, error.description) == (401, "Unauthorized")
    assert telegram_api.calls_snapshot() == []  # the fake turned it away before any method ran
