"""Telegram update -> the small versioned envelope the workflow runs on (DESIGN.md §3)."""

from typing import Any, Final, TypeGuard, cast

from tgrelay.shapes import Envelope, FileKind, FileMetadata, MediaFields, Sender, UpdateKind

SCHEMA_VERSION = 1

# The update kinds the webhook answers; setWebhook's allowed_updates (register_webhook.py).
HANDLED_UPDATE_KINDS = ("message", "callback_query")
# Answered too with EDITED_MESSAGES=answer (README: Conversation behaviour).
EDITED_MESSAGE: Final = "edited_message"

# The text an envelope carries to the agent, in UTF-8 bytes: the unit of the limits it
# protects (Step Functions: 256 KiB of UTF-8 state, which also holds the reply and the
# messages merged into the turn, turns.MAX_TURN_TEXT_BYTES). Telegram's own limits are not
# checked (they change; Premium captions are longer): today's longest text, 4096 UTF-16
# units, is at most 12,288 bytes and is never cut. A longer one is cut with CUT_NOTE.
MAX_TEXT_BYTES = 16 * 1024
CUT_NOTE = "\n\n[tgrelay: the message was {size} bytes long; only its first {kept} bytes are passed on]"

# The message fields that carry a file the agent gets (Bot API: Message); a photo is a list of sizes.
FILE_KINDS = ("photo", "document", "voice", "audio", "video", "video_note", "animation")
# Telegram gives no mime_type for these: it sends photos as JPEG and video notes as MPEG-4.
_IMPLIED_MIME_TYPES = {"photo": "image/jpeg", "video_note": "video/mp4"}


class InvalidUpdate(ValueError):
    """The body is not a Telegram update we can read; the webhook answers 400."""


class UnhandledUpdate(Exception):
    """A valid update of a kind the bot does not answer; the webhook answers 200 and drops it."""


def handled_update_kinds(answer_edits: bool = False) -> list[str]:
    """The update kinds Telegram should deliver to the webhook (setWebhook's allowed_updates)."""
    return [*HANDLED_UPDATE_KINDS, EDITED_MESSAGE] if answer_edits else list(HANDLED_UPDATE_KINDS)


def envelope_from_update(update: Any, received_at: int, ttl_seconds: int, *, answer_edits: bool = False) -> Envelope:
    """The envelope for `update` (any JSON value: the webhook's parsed body; received_at in epoch
    seconds, ttl_seconds until the claim expires). Raises InvalidUpdate for a value that is not a
    Telegram update we can read, UnhandledUpdate for an update of a kind not answered.

    An edited message is answered like a new one (kind "edited_message") if `answer_edits`;
    its update_id is new, so it is not a duplicate of the original."""
    if not isinstance(update, dict):
        raise InvalidUpdate("the body is not a JSON object")
    update_id = update.get("update_id")
    if not _is_int(update_id) or update_id < 0:
        raise InvalidUpdate("update_id is missing or not a non-negative integer")

    if "message" in update:
        kind: UpdateKind = "message"
        message, sender = _object(update, "message"), None
        text = _message_text(message, with_media=_has_media(message))
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
        text = _message_text(message, EDITED_MESSAGE, with_media=_has_media(message))
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

    envelope: Envelope = {
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
    if kind != "callback_query":  # a callback's message is the bot's own: its files are not the question
        envelope.update(media_fields(message))
    return envelope


def session_key(envelope: Envelope) -> str:
    """The conversation `envelope` belongs to: "telegram:<chat>", or "telegram:<chat>:<topic>" in a
    forum topic. The agent keeps its memory under it (README: agent contract); turns are taken per it."""
    key = f"telegram:{envelope['chat_id']}"
    return key if envelope.get("thread_id") is None else f"{key}:{envelope['thread_id']}"


def message_group_id(envelope: Envelope) -> str:
    """SQS FIFO group: one chat, or one forum topic, is processed in order."""
    if envelope["thread_id"] is None:
        return str(envelope["chat_id"])
    return f"{envelope['chat_id']}:{envelope['thread_id']}"


def _message_text(message: dict, kind: str = "message", *, with_media: bool = False) -> str:
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
    if with_media:  # a file, a location, a venue or a contact is a question of its own
        return ""
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


def _has_media(message: dict) -> bool:
    return bool(set(media_fields(message)) - {"media_group_id"})


def media_fields(message: dict) -> MediaFields:
    """The envelope's fields for what a message carries besides text (README: agent contract),
    each present only when the message has it:

      attachments     [{"kind", "file_id", "file_unique_id", "mime_type", "file_name", "file_size",
                        "duration", "width", "height"}] (metadata, never bytes; sizes in bytes,
                        durations in seconds, absent values null); a photo is its largest size
      media_group_id  the album the message belongs to (Telegram sends an album as one message each)
      location        {"latitude", "longitude", "horizontal_accuracy", "live_period"}
      venue           {"title", "address", "latitude", "longitude"} (a venue's message also carries
                        its location; the venue says it all)
      contact         {"phone_number", "first_name", "last_name", "user_id", "vcard"}

    A file without a string file_id (never from Telegram) is left out, not refused."""
    fields: MediaFields = {}
    files = [file for field in FILE_KINDS if (file := _file(message, field)) is not None]
    if files:
        fields["attachments"] = files
    if isinstance(message.get("media_group_id"), str):
        fields["media_group_id"] = message["media_group_id"]
    venue = message.get("venue")
    if isinstance(venue, dict):
        location: dict = venue["location"] if isinstance(venue.get("location"), dict) else {}
        fields["venue"] = {
            "title": _str(venue.get("title")),
            "address": _str(venue.get("address")),
            "latitude": _number(location.get("latitude")),
            "longitude": _number(location.get("longitude")),
        }
    elif isinstance(message.get("location"), dict):
        location = message["location"]
        fields["location"] = {
            "latitude": _number(location.get("latitude")),
            "longitude": _number(location.get("longitude")),
            "horizontal_accuracy": _number(location.get("horizontal_accuracy")),
            "live_period": _int(location.get("live_period")),
        }
    contact = message.get("contact")
    if isinstance(contact, dict):
        fields["contact"] = {
            "phone_number": _str(contact.get("phone_number")),
            "first_name": _str(contact.get("first_name")),
            "last_name": _str(contact.get("last_name")),
            "user_id": _int(contact.get("user_id")),
            "vcard": _str(contact.get("vcard")),
        }
    return fields


def _file(message: dict, field: str) -> FileMetadata | None:
    """One file's metadata, or None when the message has no readable `field` (or it repeats another)."""
    value: Any = message.get(field)
    if field == "document" and message.get("animation") is not None:
        # An animation's message also carries it as a document (Bot API: for backward compatibility).
        return None
    if field == "photo":
        sizes = [size for size in value if _has_file_id(size)] if isinstance(value, list) else []
        # The largest size: Telegram lists them smallest first; the pixel count decides regardless.
        value = max(
            sizes, key=lambda size: (_int(size.get("width")) or 0) * (_int(size.get("height")) or 0), default=None
        )
    if not _has_file_id(value):
        return None
    if field == "video_note":  # square: its side is `length`
        width = height = _int(value.get("length"))
    else:
        width, height = _int(value.get("width")), _int(value.get("height"))
    return {
        "kind": cast(FileKind, field),
        "file_id": value["file_id"],
        "file_unique_id": _str(value.get("file_unique_id")),
        "mime_type": _str(value.get("mime_type")) or _IMPLIED_MIME_TYPES.get(field),
        "file_name": _str(value.get("file_name")),
        "file_size": _int(value.get("file_size")),
        "duration": _int(value.get("duration")),
        "width": width,
        "height": height,
    }


def _has_file_id(value: Any) -> TypeGuard[dict]:
    return isinstance(value, dict) and isinstance(value.get("file_id"), str) and value["file_id"] != ""


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and _is_unicode(value) else None


def _int(value: Any) -> int | None:
    return value if _is_int(value) else None


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


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


def _sender(user: Any) -> Sender | None:
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
