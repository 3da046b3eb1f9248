"""Scenarios of tests/sfn_local/MockConfigFile.json that no other local-engine test covers:
the same scenario on both engines (tests/sfn_local/test_mock_config.py compares the lists)."""

import pytest
from workflow_helpers import FLOOD_ROUND, HAPPY_PATH, chat_of, executions_for, make_update, path_of

from tgrelay_local.history import state_path


@pytest.mark.scenario("TelegramRateLimitThenSuccess")
def test_telegram_rate_limit_is_waited_as_asked_and_replied_once(relay):
    update = make_update(text="busy hour")
    chat = chat_of(update)
    retry_after = 30
    variables = relay.template.function_properties("SendReplyFunction")["Environment"]["Variables"]
    # Longer than the function waits inline, so SendReply fails with TelegramRateLimited.
    assert retry_after > int(variables["TELEGRAM_MAX_INLINE_WAIT_SECONDS"])
    relay.telegram.add_fault({"status": 429, "retry_after": retry_after, "match": {"chat_id": chat}})
    relay.post_update(update)
    relay.wait_idle()

    (execution,) = executions_for(relay, update["update_id"])
    assert execution["status"] == "SUCCEEDED"
    assert path_of(relay, execution) == [*HAPPY_PATH[:5], *FLOOD_ROUND, "MarkDone"]
    assert all(not step.retries for step in state_path(relay.history(execution["executionArn"])))
    # FloodWait waited Telegram's retry_after (recorded, not slept); no Retry waited.
    assert relay.clock.take_state_waits() == [retry_after]
    assert relay.clock.take_waits() == []

    attempts = [
        call
        for call in relay.telegram.calls_snapshot()
        if call["method"] == "sendMessage" and call["payload"].get("chat_id") == chat
    ]
    assert [call["status"] for call in attempts] == [429, 200]
    assert relay.telegram.sent_messages(chat) == [{"chat_id": chat, "text": "echo: busy hour"}]
    claim = relay.claim(update["update_id"])
    assert claim["status"] == "DONE" and claim["chunks"] == "1"
    assert len(relay.agent.calls_snapshot()) == 1  # the retry resends the reply; it does not ask again
