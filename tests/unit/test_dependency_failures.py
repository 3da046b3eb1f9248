"""AWS trouble inside the functions is named so the ASL retries it, and the reply never outlives
its Lambda timeout mid-send."""

import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    BOT_TOKEN,
    SECRET,
    TABLE_NAME,
    agent_server_fixture,
    envelope,
    fake_agent_fixture,
    fake_telegram_fixture,
    relay_fixture,
    telegram_server_fixture,
)
from test_send_reply import EXECUTION, deliver, long_reply, reply_event
from unit_helpers import TURNS_TABLE_NAME, hold_turn

from tgrelay import call_agent, clients, send_reply
from tgrelay.errors import ConfigurationError, DependencyUnavailable, TelegramUnavailable
from tgrelay.secrets import secret_field
from tgrelay.text import split_message


def raised(handler, event, context) -> Exception:
    with pytest.raises(Exception) as caught:
        handler(event, context)
    return caught.value


def test_secrets_manager_unavailable_is_retried_not_terminal(relay, lambda_context):
    relay.secrets.delete_secret(SecretId=relay.secret_arn, ForceDeleteWithoutRecovery=True)
    clients.clear()
    update = envelope()
    hold_turn(update, EXECUTION)
    error = raised(call_agent.handler, {"update": update, "execution": EXECUTION}, lambda_context)
    assert type(error) is DependencyUnavailable
    assert relay.agent.calls_snapshot() == []


def test_an_unreachable_turns_table_is_retried_not_lost_turn(relay, lambda_context):
    relay.dynamodb.delete_table(TableName=TURNS_TABLE_NAME)
    error = raised(call_agent.handler, {"update": envelope(), "execution": EXECUTION}, lambda_context)
    assert type(error) is DependencyUnavailable
    assert relay.agent.calls_snapshot() == []


def test_an_unreadable_claim_is_retried_rather_than_guessed(relay, lambda_context):
    relay.dynamodb.delete_table(TableName=TABLE_NAME)
    error = raised(deliver, reply_event(envelope(), "hello"), lambda_context)
    assert type(error) is DependencyUnavailable
    assert relay.telegram.sent_messages() == []  # nothing sent without knowing what was sent before


def test_a_secret_that_is_not_json_is_a_configuration_error(relay):
    relay.secrets.put_secret_value(SecretId=relay.secret_arn, SecretString="not json")
    clients.clear()
    with pytest.raises(ConfigurationError):
        secret_field("bot_token")


def test_white_space_around_a_pasted_token_is_ignored(relay):
    relay.set_secret({**SECRET, "bot_token": f"  {BOT_TOKEN}\n"})
    assert secret_field("bot_token") == BOT_TOKEN


def test_send_reply_stops_before_its_timeout_and_the_retry_resumes(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    text = long_reply()
    chunks = split_message(text)
    lambda_context.remaining_ms = send_reply.longest_chunk_ms() - 1  # too little for a second chunk

    error = raised(deliver, reply_event(update, text), lambda_context)

    assert type(error) is TelegramUnavailable
    assert [message["text"] for message in relay.telegram.sent_messages()] == chunks[:1]
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "1"}
    lambda_context.remaining_ms = 120_000
    assert deliver(reply_event(update, text), lambda_context) == {"chunks": 3, "sent": 2}
    assert [message["text"] for message in relay.telegram.sent_messages()] == chunks
