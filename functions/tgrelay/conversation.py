"""What the webhook does with an update it can read: start the workflow, answer it on the spot
(/start, /help), or leave it (a group message not meant for the bot, another bot's command).

Answering on the spot uses the Bot API's webhook answer: the HTTP response to Telegram's POST
may carry a method and its parameters, which Telegram then performs ("Making requests when
getting updates"). It costs no execution and no extra request; Telegram does not say whether
it worked, which is acceptable for a greeting.

Settings (template parameters, README: Conversation behaviour): BOT_USERNAME, GROUP_MESSAGES
(addressed | all), EDITED_MESSAGES (ignore | answer), START_TEXT, HELP_TEXT.
"""

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tgrelay.replies import GROUP_CHATS, quotes_the_user
from tgrelay.settings import setting
from tgrelay.shapes import Envelope

ANSWERED_COMMANDS = ("start", "help")

# "/name" or "/name@bot" at the very start of the text, as Telegram marks a bot_command.
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?=\s|$)")
_BOT_ID = re.compile(r"(\d{1,20}):")


@dataclass(frozen=True)
class Route:
    """`action` is "enqueue", "answer" (the webhook answers with `method`) or "skip" (with `reason`).
    An enqueued update may still carry a method for the webhook answer (a button press is acknowledged)."""

    action: Literal["enqueue", "answer", "skip"]
    reason: str = ""
    method: dict[str, Any] = field(default_factory=dict)


def answers_edits() -> bool:
    """EDITED_MESSAGES=answer: edited messages go to the agent like new ones."""
    return _choice("EDITED_MESSAGES", ("ignore", "answer")) == "answer"


def route(update: dict, envelope: Envelope, bot_id: Callable[[], int | None]) -> Route:
    """What to do with `update` (whose envelope is `envelope`). `bot_id` is asked only when
    it matters: a group message that is not otherwise addressed to the bot."""
    if envelope["kind"] == "callback_query":
        # Stops the spinner on the pressed button; the answer itself comes from the agent.
        query_id = update["callback_query"].get("id")
        if not isinstance(query_id, str) or not query_id:
            return Route("enqueue")
        return Route("enqueue", method={"method": "answerCallbackQuery", "callback_query_id": query_id})
    message = update.get("message") or update.get("edited_message") or {}
    username = _bot_username()
    command = _COMMAND.match(message.get("text") or "")
    if command:
        name, target = command.group(1).lower(), command.group(2)
        if target is not None and target.lower() != username.lower():
            return Route("skip", reason=f"command for another bot (@{target})")
        if name in ANSWERED_COMMANDS:
            return Route("answer", method=_command_answer(envelope, name))
        return Route("enqueue")  # other commands are the agent's
    if (
        envelope["chat_type"] in GROUP_CHATS
        and _choice("GROUP_MESSAGES", ("addressed", "all")) == "addressed"
        and not _addressed(message, username, bot_id)
    ):
        return Route("skip", reason="group message not addressed to the bot")
    return Route("enqueue")


def bot_id_from_token(token: str) -> int | None:
    """The bot's user id: the number before ':' in its token."""
    match = _BOT_ID.match(token or "")
    return int(match.group(1)) if match else None


def _addressed(message: dict, username: str, bot_id: Callable[[], int | None]) -> bool:
    """Mentions the bot (@username, or a text mention of its id), or replies to one of its messages."""
    text = message.get("text") if message.get("text") is not None else message.get("caption")
    entities = message.get("entities") if message.get("text") is not None else message.get("caption_entities")
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        if entity.get("type") == "mention" and username and isinstance(text, str):
            if _entity_text(text, entity).lower() == f"@{username.lower()}":
                return True
        elif entity.get("type") == "text_mention":
            user = entity.get("user")
            if isinstance(user, dict) and user.get("id") is not None and user.get("id") == bot_id():
                return True
    replied = message.get("reply_to_message")
    if isinstance(replied, dict) and "forum_topic_created" not in replied:
        # (In a forum, a message "replies" to its topic's first message: that is not addressing anyone.)
        sender = replied.get("from")
        if isinstance(sender, dict) and sender.get("id") is not None and sender.get("id") == bot_id():
            return True
    return False


def _entity_text(text: str, entity: dict) -> str:
    """The part of `text` an entity covers; entity offsets count UTF-16 units."""
    offset, length = entity.get("offset"), entity.get("length")
    if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length <= 0:
        return ""
    units = text.encode("utf-16-le", "surrogatepass")
    return units[2 * offset : 2 * (offset + length)].decode("utf-16-le", "replace")


def _command_answer(envelope: Envelope, name: str) -> dict:
    """sendMessage with the configured text, to the chat (and topic) the command came from."""
    # The texts are template parameters (StartText, HelpText): no second default here.
    text = setting("START_TEXT") if name == "start" else setting("HELP_TEXT")
    answer: dict[str, Any] = {"method": "sendMessage", "chat_id": envelope["chat_id"], "text": text}
    if envelope["thread_id"] is not None:
        answer["message_thread_id"] = envelope["thread_id"]
    if quotes_the_user(envelope):
        answer["reply_parameters"] = {"message_id": envelope["message_id"], "allow_sending_without_reply": True}
    return answer


def _bot_username() -> str:
    return os.environ.get("BOT_USERNAME", "").strip().lstrip("@")


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    """A setting that is one of `allowed` (the template's AllowedValues); the first is the default."""
    value = os.environ.get(name, "").strip().lower()
    return value if value in allowed else allowed[0]


def is_allowed(envelope: Envelope) -> bool:
    """With ALLOWED_IDS set (comma-separated chat and user ids), only those are answered.
    Empty (the template's default) answers everyone."""
    allowed = {item.strip() for item in os.environ.get("ALLOWED_IDS", "").split(",") if item.strip()}
    sender = envelope["sender"]
    return not allowed or str(envelope["chat_id"]) in allowed or (sender is not None and str(sender["id"]) in allowed)
