"""tgrelay.conversation and the webhook: commands answered on the spot, groups answered only when
addressed, edits by policy. (The same behaviour end to end: tests/workflow/test_conversation.py.)"""

import copy
import json
from types import SimpleNamespace

import pytest
from unit_helpers import DEDUPE_TTL_SECONDS, SAMPLE_RECEIVED_AT, SAMPLES_BOT_ID, update

from tgrelay.conversation import bot_id_from_token, route
from tgrelay.envelope import envelope_from_update

DEFAULT_START_TEXT = "Start text of the tests."
DEFAULT_HELP_TEXT = "Help text of the tests."

GROUP_CHAT = -1001987654321


def group_message(text: str | None = "lunch?", **fields) -> dict:
    """group_not_addressed.json with its message's fields replaced."""
    sample = update("group_not_addressed")
    if text is not None:
        sample["message"]["text"] = text
    sample["message"].update(fields)
    return sample


def decide(sample: dict, bot_id: int | None = SAMPLES_BOT_ID, *, answer_edits: bool = False):
    asked = []

    def ask() -> int | None:
        asked.append(True)
        return bot_id

    envelope = envelope_from_update(sample, SAMPLE_RECEIVED_AT, DEDUPE_TTL_SECONDS, answer_edits=answer_edits)
    decision = route(sample, envelope, ask)
    return SimpleNamespace(**vars(decision), asked_for_bot_id=bool(asked))


@pytest.fixture(autouse=True)
def conversation_settings(monkeypatch):
    monkeypatch.setenv("BOT_USERNAME", "tgrelay_demo_bot")
    monkeypatch.setenv("START_TEXT", DEFAULT_START_TEXT)
    monkeypatch.setenv("HELP_TEXT", DEFAULT_HELP_TEXT)
    for name in ("GROUP_MESSAGES", "EDITED_MESSAGES"):
        monkeypatch.delenv(name, raising=False)


# --- commands ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", DEFAULT_START_TEXT),
        ("/help", DEFAULT_HELP_TEXT),
        ("/HELP me please", DEFAULT_HELP_TEXT),
        ("/start@tgrelay_demo_bot", DEFAULT_START_TEXT),
        ("/start@TGRelay_Demo_Bot", DEFAULT_START_TEXT),
    ],
)
def test_start_and_help_are_answered_with_the_configured_text(text, expected):
    sample = update("command_start")
    sample["message"]["text"] = text

    decision = decide(sample)

    assert decision.action == "answer"
    assert decision.method == {"method": "sendMessage", "chat_id": 6602184753, "text": expected}


def test_the_texts_come_from_the_template(monkeypatch):
    monkeypatch.setenv("START_TEXT", "Welcome aboard.")
    monkeypatch.setenv("HELP_TEXT", "Ask away.")
    sample = update("command_start")

    assert decide(sample).method["text"] == "Welcome aboard."
    sample["message"]["text"] = "/help"
    assert decide(sample).method["text"] == "Ask away."


def test_a_command_in_a_group_is_addressed_and_its_answer_quotes_it():
    decision = decide(group_message("/help"))

    assert decision.action == "answer"
    assert decision.method["reply_parameters"] == {"message_id": 5532, "allow_sending_without_reply": True}
    assert not decision.asked_for_bot_id


@pytest.mark.parametrize("text", ["/start@other_bot", "/weather@OtherBot Berlin", "/help@tgrelay_demo_bot_2"])
def test_commands_for_another_bot_are_skipped(text):
    decision = decide(group_message(text))

    assert decision.action == "skip"
    assert decision.reason.startswith("command for another bot (@")


@pytest.mark.parametrize("text", ["/weather Berlin", "/weather@tgrelay_demo_bot Berlin", "/start_over"])
def test_other_commands_go_to_the_agent(text):
    assert decide(group_message(text)).action == "enqueue"


@pytest.mark.parametrize("text", ["/ start", "a /start", "//start", "/start-now"])
def test_text_that_only_looks_like_a_command_is_a_message(text):
    assert decide(group_message(text)).reason == "group message not addressed to the bot"


def test_a_caption_is_not_a_command():
    sample = update("photo_with_caption")
    sample["message"]["caption"] = "/start"

    assert decide(sample).action == "enqueue"


def test_without_a_username_every_addressed_command_is_another_bots(monkeypatch):
    monkeypatch.delenv("BOT_USERNAME")

    assert decide(group_message("/start@tgrelay_demo_bot")).action == "skip"
    assert decide(group_message("/start")).action == "answer"


# --- groups ---------------------------------------------------------------------------------------------


def mention(at: int, length: int, kind: str = "mention", **extra) -> list[dict]:
    return [{"offset": at, "length": length, "type": kind, **extra}]


@pytest.mark.parametrize(
    ("text", "entities"),
    [
        ("@tgrelay_demo_bot hi", mention(0, 17)),
        ("hi @TGRELAY_DEMO_BOT", mention(3, 17)),
        ("\N{GRINNING FACE} @tgrelay_demo_bot", mention(3, 17)),  # offsets count UTF-16 units
        ("hi @someone and @tgrelay_demo_bot", mention(3, 8) + mention(16, 17)),
    ],
)
def test_a_mention_of_the_bot_is_addressed(text, entities):
    assert decide(group_message(text, entities=entities)).action == "enqueue"


@pytest.mark.parametrize(
    ("text", "entities"),
    [
        ("@tgrelay_demo_bot hi", None),  # Telegram marks mentions; plain text is not one
        ("@tgrelay_demo_botty hi", mention(0, 19)),
        ("hi @someone", mention(3, 8)),
        ("@tgrelay_demo_bot hi", mention(0, 17, kind="bold")),
        ("@tgrelay_demo_bot hi", [{"type": "mention", "offset": "0", "length": 17}, "junk"]),
    ],
)
def test_other_group_messages_are_skipped(text, entities):
    sample = group_message(text)
    if entities is not None:
        sample["message"]["entities"] = entities

    decision = decide(sample)

    assert (decision.action, decision.reason) == ("skip", "group message not addressed to the bot")


def test_a_mention_in_a_caption_is_addressed():
    sample = group_message(None, caption="@tgrelay_demo_bot what is this?", caption_entities=mention(0, 17))
    del sample["message"]["text"]

    assert decide(sample).action == "enqueue"


def test_a_text_mention_of_the_bots_id_is_addressed():
    entities = mention(0, 3, kind="text_mention", user={"id": SAMPLES_BOT_ID, "is_bot": True})

    assert decide(group_message("Bot, hi", entities=entities)).action == "enqueue"
    assert decide(group_message("Bot, hi", entities=entities), bot_id=1).action == "skip"


def test_a_reply_to_the_bot_is_addressed_and_the_bot_id_is_only_asked_then():
    bots_message = {"message_id": 5500, "from": {"id": SAMPLES_BOT_ID, "is_bot": True}, "text": "v2.3 is out"}

    replied = decide(group_message("and v2.4?", reply_to_message=bots_message))
    unknown_bot = decide(group_message("and v2.4?", reply_to_message=bots_message), bot_id=None)
    private = decide(update("private_text"))

    assert replied.action == "enqueue" and replied.asked_for_bot_id
    assert unknown_bot.action == "skip"
    assert private.action == "enqueue" and not private.asked_for_bot_id


def test_a_forum_topics_first_message_is_not_the_bot_being_addressed():
    sample = update("forum_topic_text")
    del sample["message"]["entities"]
    sample["message"]["text"] = "thanks all"
    topic_root = sample["message"]["reply_to_message"]
    topic_root["from"] = {"id": SAMPLES_BOT_ID, "is_bot": True}  # even a topic the bot opened

    assert decide(sample).action == "skip"
    del topic_root["forum_topic_created"]
    assert decide(sample).action == "enqueue"  # a real reply to the bot's message


def test_group_messages_all_answers_every_group_message(monkeypatch):
    monkeypatch.setenv("GROUP_MESSAGES", "all")

    assert decide(group_message("lunch?")).action == "enqueue"


@pytest.mark.parametrize("chat_type", ["group", "supergroup"])
def test_both_kinds_of_group_need_addressing(chat_type):
    sample = group_message("lunch?")
    sample["message"]["chat"]["type"] = chat_type

    assert decide(sample).action == "skip"


def test_private_chats_are_always_answered():
    assert decide(update("private_text")).action == "enqueue"


def test_a_button_press_is_enqueued_with_its_acknowledgement():
    decision = decide(update("callback_query"))

    assert decision.action == "enqueue"
    assert decision.method == {"method": "answerCallbackQuery", "callback_query_id": "1222883054137291716"}


@pytest.mark.parametrize(
    ("token", "expected"), [("123:abc", 123), ("7012345678:AAE-x", 7012345678), ("", None), ("x:1", None)]
)
def test_the_bot_id_is_the_number_before_the_colon(token, expected):
    assert bot_id_from_token(token) == expected


# --- through the webhook handler ---------------------------------------------------------------------


def test_the_webhook_answers_start_with_the_method_and_enqueues_nothing(aws, post_webhook, capsys):
    answer = post_webhook.post(update("command_start"))

    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.body == {"ok": True, "method": "sendMessage", "chat_id": 6602184753, "text": DEFAULT_START_TEXT}
    assert aws.queued() == []
    (metrics,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert metrics["AnsweredAtWebhook"] == [1.0]


def test_an_unaddressed_group_message_is_skipped_and_counted(aws, post_webhook, capsys):
    answer = post_webhook.post(update("group_not_addressed"))

    assert answer.body == {"ok": True, "skipped": "group message not addressed to the bot"}
    assert aws.queued() == []
    (metrics,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert metrics["SkippedUpdates"] == [1.0]


def test_the_allow_list_comes_before_commands(aws, post_webhook, monkeypatch):
    monkeypatch.setenv("ALLOWED_IDS", "42")

    answer = post_webhook.post(update("command_start"))

    assert "allow-list" in answer.body["skipped"]


def test_the_webhook_reads_the_bot_id_from_the_secret(aws, post_webhook):
    sample = group_message("and v2.4?", reply_to_message={"message_id": 1, "from": {"id": 123, "is_bot": True}})

    assert post_webhook.post(sample).body == {"ok": True}  # unit_helpers.BOT_TOKEN is "123:abc"
    assert len(aws.queued()) == 1


def edit_of(name: str) -> dict:
    return copy.deepcopy(update(name))


def test_with_edits_answered_the_webhook_enqueues_an_edited_message(aws, post_webhook, monkeypatch):
    monkeypatch.setenv("EDITED_MESSAGES", "answer")

    answer = post_webhook.post(edit_of("edited_message"))

    assert answer.body == {"ok": True}
    (message,) = aws.queued()
    envelope = json.loads(message["Body"])
    assert (envelope["kind"], envelope["message_id"], envelope["update_id"]) == ("edited_message", 1021, 918273604)
    assert envelope["text"] == update("edited_message")["edited_message"]["text"]


def test_an_edited_group_message_is_answered_only_when_addressed(aws, post_webhook, monkeypatch):
    monkeypatch.setenv("EDITED_MESSAGES", "answer")
    edit = {"update_id": 918273699, "edited_message": group_message("lunch at 2?")["message"]}

    assert post_webhook.post(edit).body["skipped"] == "group message not addressed to the bot"


def test_an_edited_message_without_text_is_skipped(aws, post_webhook, monkeypatch):
    monkeypatch.setenv("EDITED_MESSAGES", "answer")
    edit = edit_of("edited_message")
    del edit["edited_message"]["text"]

    assert post_webhook.post(edit).body["skipped"] == "edited message without text or caption"
