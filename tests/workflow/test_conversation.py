"""What a person chatting with the bot notices (README: Conversation behaviour), on the local engine:
typing while the agent works, /start and /help, groups, topics, quotes, edits, long replies with
code, buttons and several messages. Each test asserts what the fake Telegram received.

This module runs its own engine: the conversation settings differ from the template's defaults
(edits answered, custom command texts); the other policies are switched per test through the
webhook's environment, which the handler reads on each request.
"""

import json

import pytest
from workflow_helpers import HAPPY_PATH, chat_of, configure, executions_for, make_update, path_of

from tgrelay import call_agent
from tgrelay.text import FENCE, utf16_len
from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay

START_TEXT = "Hi, I am the release bot."
HELP_TEXT = "Ask me about releases; in groups, mention me."


@pytest.fixture(scope="module")
def relay():
    parameters = {"EditedMessages": "answer", "StartText": START_TEXT, "HelpText": HELP_TEXT}
    with LocalRelay(clock=RetryClock("recorded", jitter=1.0), parameters=parameters) as engine:
        yield engine


def agent_answers(relay, update: dict, answer: dict) -> None:
    """The agent answers `update` with this JSON (the contract's extended fields included)."""
    relay.agent.add_fault({"status": 200, "body": json.dumps(answer), "match": {"update_id": update["update_id"]}})


def group_update(sample: str = "group_text.json", *, text: str | None = None, entities: list | None = None) -> dict:
    """A supergroup sample with fresh ids; `text` replaces the text (and drops its entities unless given)."""
    update = make_update(sample)
    message = update["message"]
    message["chat"]["id"] = -message["chat"]["id"]  # supergroup ids are negative
    if text is not None:
        message["text"] = text
        message.pop("entities", None)
    if entities is not None:
        message["entities"] = entities
    return update


def quote_of(update: dict) -> dict:
    return {"message_id": update["message"]["message_id"], "allow_sending_without_reply": True}


def bot_id(relay) -> int:
    return int(relay.bot_token.split(":")[0])


def assert_not_started(relay, update: dict) -> None:
    relay.wait_idle()
    assert executions_for(relay, update["update_id"]) == []
    assert relay.agent.calls_snapshot() == []


def the_execution(relay, update: dict) -> dict:
    (execution,) = executions_for(relay, update["update_id"])
    return execution


# --- typing indicator --------------------------------------------------------------------------


def test_the_chat_shows_typing_while_the_agent_works(relay, monkeypatch):
    monkeypatch.setattr(call_agent, "TYPING_INTERVAL_SECONDS", 0.15)
    update = make_update(text="think hard")
    chat = chat_of(update)
    relay.agent.add_fault({"delay": 0.6, "reply": "thought", "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()

    calls = [call for call in relay.telegram.calls_snapshot() if call["payload"].get("chat_id") == chat]
    typing = [call for call in calls if call["method"] == "sendChatAction"]
    (reply,) = [call for call in calls if call["method"] == "sendMessage"]
    assert {json.dumps(call["payload"]) for call in typing} == {json.dumps({"chat_id": chat, "action": "typing"})}
    assert len(typing) >= 3  # at once, then every 0.15 s for 0.6 s
    assert all(call["status"] == 200 for call in typing)
    # Renewed while the agent worked, and stopped before the reply: nothing after it re-shows "typing…".
    assert max(call["at"] for call in typing) < reply["at"]
    assert reply["payload"]["text"] == "thought"
    assert path_of(relay, the_execution(relay, update)) == HAPPY_PATH  # no transitions for the indicator


def test_a_failing_typing_indicator_does_not_hold_up_the_reply(relay, monkeypatch):
    monkeypatch.setattr(call_agent, "TYPING_INTERVAL_SECONDS", 0.1)
    update = make_update(text="typing is broken today")
    chat = chat_of(update)
    relay.telegram.add_fault({"method": "sendChatAction", "status": 500, "count": None, "match": {"chat_id": chat}})
    relay.agent.add_fault({"delay": 0.3, "reply": "still here", "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()

    failed = [call for call in relay.telegram.calls_snapshot() if call["method"] == "sendChatAction"]
    assert len(failed) >= 2 and all(call["status"] == 500 for call in failed)
    assert relay.telegram.sent_messages(chat) == [{"chat_id": chat, "text": "still here"}]
    execution = the_execution(relay, update)
    assert path_of(relay, execution) == HAPPY_PATH
    assert relay.clock.take_waits() == []  # not a single retry
    relay.telegram.reset()


# --- commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "text"), [("/start", START_TEXT), ("/help", HELP_TEXT)])
def test_start_and_help_are_answered_by_the_webhook_without_an_execution(relay, command, text):
    update = make_update("command_start.json", text=command)
    chat = chat_of(update)

    response = relay.post_update(update)

    assert response.status_code == 200
    assert response.json() == {"ok": True, "method": "sendMessage", "chat_id": chat, "text": text}
    # Telegram performed the request in the answer.
    assert relay.telegram.sent_messages(chat) == [{"chat_id": chat, "text": text}]
    assert_not_started(relay, update)


def test_start_addressed_to_this_bot_in_a_topic_is_answered_in_the_topic_quoting_it(relay):
    update = make_update("forum_topic_text.json", text="/start@tgrelay_demo_bot")
    update["message"].pop("entities")
    chat, thread = chat_of(update), update["message"]["message_thread_id"]

    assert relay.post_update(update).status_code == 200

    assert relay.telegram.sent_messages(chat) == [
        {"chat_id": chat, "text": START_TEXT, "message_thread_id": thread, "reply_parameters": quote_of(update)}
    ]
    assert_not_started(relay, update)


@pytest.mark.parametrize("text", ["/start@other_bot", "/weather@other_bot Berlin"])
def test_a_command_for_another_bot_is_ignored(relay, text):
    update = group_update(text=text)

    response = relay.post_update(update)

    assert response.status_code == 200
    assert response.json() == {"ok": True, "skipped": "command for another bot (@other_bot)"}
    assert relay.telegram.calls_snapshot() == []
    assert_not_started(relay, update)


def test_an_unknown_command_goes_to_the_agent(relay):
    update = group_update(text="/weather Berlin")  # a bare command in a group addresses every bot
    relay.post_update(update)
    relay.wait_idle()

    assert [call["request"]["text"] for call in relay.agent.calls_snapshot()] == ["/weather Berlin"]
    assert relay.telegram.sent_messages(chat_of(update)) == [
        {"chat_id": chat_of(update), "text": "echo: /weather Berlin", "reply_parameters": quote_of(update)}
    ]


# --- groups and topics -------------------------------------------------------------------------


def test_a_group_message_not_addressed_to_the_bot_is_skipped(relay):
    update = group_update("group_not_addressed.json")

    response = relay.post_update(update)

    assert response.json() == {"ok": True, "skipped": "group message not addressed to the bot"}
    assert relay.telegram.calls_snapshot() == []
    assert_not_started(relay, update)


def test_with_group_messages_all_every_group_message_is_answered(relay, monkeypatch):
    configure(relay, monkeypatch, "GROUP_MESSAGES", "all")  # the template parameter GroupMessages=all
    update = group_update("group_not_addressed.json")
    relay.post_update(update)
    relay.wait_idle()

    assert path_of(relay, the_execution(relay, update)) == HAPPY_PATH
    (sent,) = relay.telegram.sent_messages(chat_of(update))
    assert sent["reply_parameters"] == quote_of(update)


def test_a_mention_is_answered_quoting_the_message(relay):
    update = group_update()  # "@tgrelay_demo_bot what changed in v2.3?"
    relay.post_update(update)
    relay.wait_idle()

    assert relay.telegram.sent_messages(chat_of(update)) == [
        {
            "chat_id": chat_of(update),
            "text": "echo: @tgrelay_demo_bot what changed in v2.3?",
            "reply_parameters": quote_of(update),
        }
    ]
    assert path_of(relay, the_execution(relay, update)) == HAPPY_PATH


def test_a_reply_to_the_bot_is_answered(relay):
    update = group_update(text="and what about v2.4?")
    update["message"]["reply_to_message"] = {
        "message_id": 4242,
        "from": {"id": bot_id(relay), "is_bot": True, "first_name": "tgrelay", "username": "tgrelay_demo_bot"},
        "chat": update["message"]["chat"],
        "date": 1763800000,
        "text": "v2.3 changed the retry policy.",
    }
    relay.post_update(update)
    relay.wait_idle()

    (sent,) = relay.telegram.sent_messages(chat_of(update))
    assert sent["text"] == "echo: and what about v2.4?"
    assert sent["reply_parameters"] == quote_of(update)


def test_a_reply_to_someone_else_is_not_addressed(relay):
    update = group_update(text="agreed")
    update["message"]["reply_to_message"] = {
        "message_id": 4243,
        "from": {"id": 391028476, "is_bot": False, "first_name": "Bartek"},
        "chat": update["message"]["chat"],
        "date": 1763800000,
        "text": "ship it",
    }

    assert relay.post_update(update).json()["skipped"] == "group message not addressed to the bot"
    assert_not_started(relay, update)


def test_a_forum_topic_is_answered_in_the_topic_with_typing_there(relay, monkeypatch):
    monkeypatch.setattr(call_agent, "TYPING_INTERVAL_SECONDS", 0.2)
    update = make_update("forum_topic_text.json")
    chat, thread = chat_of(update), update["message"]["message_thread_id"]
    relay.agent.add_fault({"delay": 0.3, "reply": "checking", "match": {"update_id": update["update_id"]}})
    relay.post_update(update)
    relay.wait_idle()

    assert relay.telegram.sent_messages(chat) == [
        {"chat_id": chat, "text": "checking", "message_thread_id": thread, "reply_parameters": quote_of(update)}
    ]
    typing = relay.telegram.accepted("sendChatAction", chat)
    assert typing and all(payload["message_thread_id"] == thread for payload in typing)


# --- edited messages ---------------------------------------------------------------------------


def edited(update: dict) -> dict:
    """The edit of `update`'s message: a new update_id, the same message_id."""
    message = dict(update["message"], text=update["message"]["text"] + " (edited)", edit_date=1763800100)
    return {"update_id": update["update_id"] + 1_000_000, "edited_message": message}


def test_with_edits_answered_an_edit_goes_to_the_agent_as_edited_message(relay):
    original = make_update(text="what is 2+2?")
    edit = edited(original)
    relay.post_update(original)
    relay.wait_idle()
    relay.post_update(edit)
    relay.wait_idle()

    requests = [call["request"] for call in relay.agent.calls_snapshot()]
    assert [(r["kind"], r["text"], r["message_id"]) for r in requests] == [
        ("message", "what is 2+2?", original["message"]["message_id"]),
        ("edited_message", "what is 2+2? (edited)", original["message"]["message_id"]),
    ]
    assert [m["text"] for m in relay.telegram.sent_messages(chat_of(original))] == [
        "echo: what is 2+2?",
        "echo: what is 2+2? (edited)",
    ]
    assert path_of(relay, the_execution(relay, edit)) == HAPPY_PATH  # its own update_id: not a duplicate


def test_with_edits_ignored_an_edit_is_skipped(relay, monkeypatch):
    configure(relay, monkeypatch, "EDITED_MESSAGES", "ignore")  # the template's default
    edit = edited(make_update(text="typo"))

    response = relay.post_update(edit)

    assert response.json() == {"ok": True, "skipped": "edited messages are ignored"}
    assert relay.telegram.calls_snapshot() == []
    assert_not_started(relay, edit)


# --- long replies, buttons, several messages -----------------------------------------------------


def fences_balanced(text: str) -> bool:
    return text.count(FENCE) % 2 == 0


def test_a_code_block_is_never_split_when_it_fits_a_message(relay):
    update = make_update(text="show me the config")
    intro = " ".join(["Here is the file you asked for, with comments."] * 70)  # about 3300 characters
    # Blank lines inside the block: paragraph breaks a splitter blind to code would cut at.
    config = "\n\n".join(f"key_{n}: value {n}" for n in range(60))
    answer = f"{intro}\n\n```yaml\n{config}\n```\n\nThat is all."
    assert utf16_len(intro + "\n\n" + config) > 4096 > utf16_len(config)
    agent_answers(relay, update, {"reply": answer, "format": "markdown"})
    relay.post_update(update)
    relay.wait_idle()

    pre = {"type": "pre", "offset": 0, "length": utf16_len(config), "language": "yaml"}
    assert relay.telegram.received(chat_of(update)) == [
        {"text": intro, "entities": []},
        {"text": f"{config}\n\nThat is all.", "entities": [pre]},
    ]


def test_a_code_block_longer_than_a_message_is_closed_and_reopened(relay):
    update = make_update(text="dump the log")
    lines = [f"    line {n:04d}: something happened here" for n in range(250)]  # about 11,000 characters
    agent_answers(relay, update, {"reply": "Log:\n```text\n" + "\n".join(lines) + "\n```\nEnd of log."})
    relay.post_update(update)
    relay.wait_idle()

    texts = [message["text"] for message in relay.telegram.sent_messages(chat_of(update))]
    assert len(texts) == 3
    assert all(utf16_len(text) <= 4096 and fences_balanced(text) for text in texts)
    assert texts[0].startswith("Log:\n```text\n") and texts[-1].endswith("```\nEnd of log.")
    assert all(text.startswith("```text\n") for text in texts[1:])  # reopened with its language
    # Every log line arrives whole, in order, with its indentation.
    body_lines = [line for text in texts for line in text.split("\n") if line.startswith("    line ")]
    assert body_lines == lines
    assert relay.claim(update["update_id"])["chunks"] == "3"


def test_a_markdown_code_block_longer_than_a_message_keeps_its_formatting_in_every_chunk(relay):
    """Issue 13, kind 1: the block is cut at a line break; each chunk carries its part as `pre`
    with the language, and the visible text is the agent's code, whole and in order."""
    update = make_update(text="dump the log")
    lines = [f"    line {n:04d}: a < b && c > d" for n in range(400)]  # 12,000 characters: 3 messages
    agent_answers(relay, update, {"reply": "Log:\n\n```text\n" + "\n".join(lines) + "\n```", "format": "Markdown"})
    relay.post_update(update)
    relay.wait_idle()

    shown = relay.telegram.received(chat_of(update))
    assert len(shown) == 3
    assert shown[0]["text"].startswith("Log:\n\n    line 0000")
    code = [message["text"] for message in shown]
    code[0] = code[0].removeprefix("Log:\n\n")
    assert "".join(code).rstrip("\n").split("\n") == lines  # indentation and "<" kept, nothing lost
    for message in shown:
        [pre] = message["entities"]
        assert pre["type"] == "pre" and pre["language"] == "text"
        assert pre["offset"] + pre["length"] == utf16_len(message["text"])  # the chunk's code, to its end


def test_buttons_go_on_the_last_chunk_and_the_quote_on_the_first(relay):
    update = group_update()
    buttons = [
        [{"text": "Changelog", "url": "https://example.com/changelog"}],
        [{"text": "More", "callback_data": "more"}],
    ]
    agent_answers(relay, update, {"reply": "word " * 1000, "buttons": buttons})  # 5000 characters: 2 chunks
    relay.post_update(update)
    relay.wait_idle()

    first, last = relay.telegram.sent_messages(chat_of(update))
    assert first["reply_parameters"] == quote_of(update) and "reply_markup" not in first
    assert last["reply_markup"] == {"inline_keyboard": buttons} and "reply_parameters" not in last
    assert path_of(relay, the_execution(relay, update)) == HAPPY_PATH


def test_several_messages_are_sent_in_order_and_resume_after_a_failure(relay):
    update = make_update(text="three things")
    chat = chat_of(update)
    agent_answers(relay, update, {"reply": "first", "messages": ["second", "", "third"]})
    relay.telegram.add_fault({"status": 502, "match": {"chat_id": chat, "text": "second"}})
    relay.post_update(update)
    relay.wait_idle()

    # The retry resumed after "first": each message arrived once, in order.
    assert [message["text"] for message in relay.telegram.sent_messages(chat)] == ["first", "second", "third"]
    execution = the_execution(relay, update)
    assert path_of(relay, execution) == HAPPY_PATH
    assert len(relay.clock.take_waits()) == 1  # SendReply's one TelegramUnavailable retry
    assert relay.claim(update["update_id"])["chunks"] == "3"


def test_invalid_buttons_are_a_bad_response_and_the_user_gets_the_apology(relay):
    update = make_update(text="give me buttons")
    agent_answers(
        relay,
        update,
        {"reply": "pick one", "buttons": [[{"text": "both", "url": "https://x.example", "callback_data": "x"}]]},
    )
    relay.post_update(update)
    relay.wait_idle()

    execution = the_execution(relay, update)
    assert execution["status"] == "FAILED" and execution["error"] == "AgentBadResponse"
    assert "buttons[0][0] is {" in execution["cause"] and "exactly one of callback_data and url" in execution["cause"]
    apology = relay.template.parameters["ApologyText"]
    assert relay.telegram.sent_messages(chat_of(update)) == [{"chat_id": chat_of(update), "text": apology}]
    (dead,) = [m for m in relay.dead_letters() if json.loads(m["Body"])["update_id"] == update["update_id"]]
    assert dead["MessageAttributes"]["error"]["StringValue"] == "AgentBadResponse"


def test_a_button_press_stops_the_spinner_and_goes_to_the_agent(relay):
    update = make_update("callback_query.json")
    query_id = update["callback_query"]["id"]
    relay.post_update(update)
    relay.wait_idle()

    assert relay.telegram.accepted("answerCallbackQuery") == [{"callback_query_id": query_id}]
    (request,) = [call["request"] for call in relay.agent.calls_snapshot()]
    assert (request["kind"], request["text"]) == ("callback_query", "notes:weekly")
    # A private chat: the answer is not a quote.
    assert relay.telegram.sent_messages(chat_of(update)) == [{"chat_id": chat_of(update), "text": "echo: notes:weekly"}]
