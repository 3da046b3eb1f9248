"""Telegram update -> the small versioned envelope the workflow runs on (DESIGN.md §3)."""

from typing import Any, TypeGuard

SCHEMA_VERSION = 1

# The update kinds the webhook answers; setWebhook's allowed_updates (register_webhook.py).
HANDLED_UPDATE_KINDS = ("message", "callback_query")
# Answered too with EDITED_MESSAGES=answer (README: Conversation behaviour).
EDITED_MESSAGE = "edited_message"

# The text an envelope carries to the agent, in UTF-8 bytes: the unit of the limits it
# protects (Step Functions: 256 KiB of UTF-8 state, which also holds the reply and the
# messages merged into the turn, turns.MAX_TURN_TEXT_BYTES). Telegram's own limits are not
# checked (they change; Premium captions are longer): today's longest text, 4096 UTF-16
# units, is at most 12,288 bytes and is never cut. A longer one is cut with CUT_NOTE.
MAX_TEXT_BYTES = 16 * 1024
CUT_NOTE = "\n\n[tgrelay: the message was {size} bytes long; only its first {kept} bytes are passed on]"


class InvalidUpdate(ValueError):
    """The body is not a Telegram update we can read; the webhook answers 400."""


class UnhandledUpdate(Exception):
    """A valid update of a kind the bot does not answer; the webhook answers 200 and drops it."""


def handled_update_kinds(answer_edits: bool = False) -> list[str]:
    """The update kinds Telegram should deliver to the webhook (setWebhook's allowed_updates)."""
    return [*HANDLED_UPDATE_KINDS, EDITED_MESSAGE] if answer_edits else list(HANDLED_UPDATE_KINDS)


def envelope_from_update(update: Any, received_at: int, ttl_seconds: int, *, answer_edits: bool = False) -> dict:
    """The envelope for `update`, or InvalidUpdate / UnhandledUpdate saying why not.

    An edited message is answered like a new one (kind "edited_message") if `answer_edits`;
    its update_id is new, so it is not a duplicate of the original."""
    if not isinstance(update, dict):
        raise InvalidUpdate("the body is not a JSON object")
    update_id = update.get("update_id")
    if not _is_int(update_id) or update_id < 0:
        raise InvalidUpdate("update_id is missing or not a non-negative integer")

    if "message" in update:
        kind, message, sender = "message", _object(update, "message"), None
        text = _message_text(message)
    elif "callback_query" in update:
        kind = "callback_query"
        query = _object(update, "callback_query")
        if "message" not in query:
            raise UnhandledUpdate("callback query from an inline message (no chat)")
        message, sender = _object(query, "message", "callback_query."), query.get("from")
        text = carried_text(_callback_data(query))
    elif EDITED_MESSAGE in update:
        if not answer_edits:
            raise UnhandledUpdate("edited messages are ignored")
        kind, message, sender = EDITED_MESSAGE, _object(update, EDITED_MESSAGE), None
        text = _message_text(message, EDITED_MESSAGE)
    else:
        other = next((key for key in update if key != "update_id"), "nothing")
        raise UnhandledUpdate(f"update kind {other!r} is not handled")

    chat = _object(message, "chat", f"{kind}.")
    chat_id = chat.get("id")
    if not _is_int(chat_id):
        raise InvalidUpdate(f"{kind}.chat.id is missing or not an integer")
    message_id = message.get("message_id")
    if not _is_int(message_id):
        raise InvalidUpdate(f"{kind}.message_id is missing or not an integer")
    sender = sender if sender is not None else message.get("from")

    return {
        "v": SCHEMA_VERSION,
        "update_id": update_id,
        "kind": kind,
        "chat_id": chat_id,
        "chat_type": chat.get("type") if isinstance(chat.get("type"), str) else None,
        "thread_id": _thread_id(message, kind),
        "message_id": message_id,
        "sender": _sender(sender),
        "text": text,
        "received_at": received_at,
        "expires_at": received_at + ttl_seconds,
    }


def session_key(envelope: dict) -> str:
    """The conversation `envelope` belongs to: "telegram:<chat>", or "telegram:<chat>:<topic>" in a
    forum topic. The agent keeps its memory under it (README: agent contract); turns are taken per it."""
    key = f"telegram:{envelope['chat_id']}"
    return key if envelope.get("thread_id") is None else f"{key}:{envelope['thread_id']}"


def message_group_id(envelope: dict) -> str:
    """SQS FIFO group: one chat, or one forum topic, is processed in order."""
    if envelope["thread_id"] is None:
        return str(envelope["chat_id"])
    return f"{envelope['chat_id']}:{envelope['thread_id']}"


def _message_text(message: dict, kind: str = "message") -> str:
    for field in ("text", "caption"):
        value = message.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidUpdate(f"{kind}.{field} is not a string")
        if not _is_unicode(value):
            raise InvalidUpdate(f"{kind}.{field} is not a valid Unicode string")
        if value.strip():
            return carried_text(value)
    raise UnhandledUpdate(f"{kind.replace('_', ' ')} without text or caption")


def carried_text(text: str) -> str:
    """`text` as the envelope carries it: unchanged up to MAX_TEXT_BYTES of UTF-8, otherwise its
    beginning (cut at a character boundary) and CUT_NOTE, MAX_TEXT_BYTES in all."""
    size = len(text.encode("utf-8"))
    if size <= MAX_TEXT_BYTES:
        return text
    # The note's own length depends on the number it names; one digit more than needed is fine.
    budget = MAX_TEXT_BYTES - len(CUT_NOTE.format(size=size, kept=MAX_TEXT_BYTES).encode())
    kept = text.encode("utf-8")[:budget].decode("utf-8", "ignore")
    kept_bytes = len(kept.encode("utf-8"))
    return kept + CUT_NOTE.format(size=size, kept=kept_bytes)


def _thread_id(message: dict, kind: str) -> int | None:
    # Only forum topics get a thread id: in other supergroups it names a reply thread,
    # and sending to it would fail.
    if message.get("is_topic_message") is not True:
        return None
    thread_id = message.get("message_thread_id")
    if not _is_int(thread_id):
        raise InvalidUpdate(f"{kind}.message_thread_id is missing or not an integer")
    return thread_id


def _callback_data(query: dict) -> str:
    data = query.get("data")
    if not isinstance(data, str) or not data:
        raise UnhandledUpdate("callback query without data")
    if not _is_unicode(data):
        raise InvalidUpdate("callback_query.data is not a valid Unicode string")
    return data


def _sender(user: Any) -> dict | None:
    if not isinstance(user, dict) or not _is_int(user.get("id")):
        return None
    return {
        "id": user["id"],
        "username": user.get("username") if isinstance(user.get("username"), str) else None,
        "language_code": user.get("language_code") if isinstance(user.get("language_code"), str) else None,
    }


def _object(parent: dict, key: str, prefix: str = "") -> dict:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise InvalidUpdate(f"{prefix}{key} is missing or not an object")
    return value


def _is_unicode(text: str) -> bool:
    """False for a lone surrogate (a JSON escape like \\ud83d without its pair)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_int(value: Any) -> TypeGuard[int]:
    # Telegram's ids fit in a signed 64-bit integer; anything larger is not from Telegram
    # (and would overflow a DynamoDB number or an SQS deduplication id further on).
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) < value < 2**63
