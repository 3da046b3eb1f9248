"""tgrelay.envelope for the cases the webhook tests do not reach."""

import json

import pytest
from unit_helpers import DEDUPE_TTL_SECONDS, SAMPLE_RECEIVED_AT, update

from tgrelay.envelope import InvalidUpdate, UnhandledUpdate, envelope_from_update, message_group_id


def envelope(sample: dict) -> dict:
    return envelope_from_update(sample, SAMPLE_RECEIVED_AT, DEDUPE_TTL_SECONDS)


def test_expires_at_is_received_at_plus_the_ttl():
    result = envelope_from_update(update("private_text"), received_at=1_000, ttl_seconds=60)

    assert (result["received_at"], result["expires_at"]) == (1_000, 1_060)


def test_the_envelope_survives_a_json_round_trip():
    result = envelope(update("forum_topic_text"))

    assert json.loads(json.dumps(result)) == result


# --- sender ---------------------------------------------------------------------------------


def test_a_message_without_from_has_no_sender():
    sample = update("private_text")
    del sample["message"]["from"]

    assert envelope(sample)["sender"] is None


@pytest.mark.parametrize(
    "sender",
    [{"is_bot": False, "first_name": "Anon"}, {"id": "284719365"}, {"id": True}, "284719365", None],
    ids=["no-id", "id-string", "id-bool", "not-object", "null"],
)
def test_a_sender_without_an_integer_id_is_dropped(sender):
    sample = update("private_text")
    sample["message"]["from"] = sender

    assert envelope(sample)["sender"] is None


def test_sender_fields_of_the_wrong_type_become_none():
    sample = update("private_text")
    sample["message"]["from"].update(username=42, language_code=["en"])

    assert envelope(sample)["sender"] == {"id": 284719365, "username": None, "language_code": None}


def test_the_sender_keeps_only_id_username_and_language():
    assert envelope(update("forum_topic_text"))["sender"] == {
        "id": 5120934471,
        "username": "chidi_o",
        "language_code": "en",
    }


# --- threads --------------------------------------------------------------------------------


@pytest.mark.parametrize("is_topic_message", [False, None, "true", 1], ids=["false", "absent", "string", "one"])
def test_a_thread_id_outside_a_forum_topic_is_dropped(is_topic_message):
    """In a supergroup without topics, message_thread_id names a reply thread: sending to it fails."""
    sample = update("group_text")
    sample["message"]["message_thread_id"] = 5520
    if is_topic_message is None:
        sample["message"].pop("is_topic_message", None)
    else:
        sample["message"]["is_topic_message"] = is_topic_message

    result = envelope(sample)

    assert result["thread_id"] is None
    assert message_group_id(result) == "-1001987654321"


def test_a_topic_message_keeps_its_thread():
    result = envelope(update("forum_topic_text"))

    assert result["thread_id"] == 7690
    assert message_group_id(result) == "-1002233445566:7690"


def test_a_callback_on_a_topic_message_keeps_the_topic():
    sample = update("callback_query")
    sample["callback_query"]["message"].update(
        chat={"id": -1002233445566, "title": "Support desk", "is_forum": True, "type": "supergroup"},
        message_thread_id=7690,
        is_topic_message=True,
    )

    assert message_group_id(envelope(sample)) == "-1002233445566:7690"


@pytest.mark.parametrize("thread_id", ["a b", 7.5, {"id": 1}], ids=["string", "float", "object"])
def test_a_topic_message_with_a_non_integer_thread_id_is_invalid(thread_id):
    sample = update("forum_topic_text")
    sample["message"]["message_thread_id"] = thread_id

    with pytest.raises(InvalidUpdate, match="message_thread_id"):
        envelope(sample)


# --- callback queries -----------------------------------------------------------------------


def test_a_callback_query_without_a_message_is_unhandled():
    """Buttons under inline-mode messages: Telegram sends inline_message_id and no message (no chat)."""
    sample = update("callback_query")
    query = sample["callback_query"]
    del query["message"]
    query["inline_message_id"] = "AgAAAN0BAAAQN5kR1ZQ2gXb3wMk"

    with pytest.raises(UnhandledUpdate, match="inline message"):
        envelope(sample)


@pytest.mark.parametrize("data", [None, ""], ids=["absent", "empty"])
def test_a_callback_query_without_data_is_unhandled(data):
    """A game button sends game_short_name instead of data."""
    sample = update("callback_query")
    query = sample["callback_query"]
    query.pop("data")
    query["game_short_name"] = "quiz"
    if data is not None:
        query["data"] = data

    with pytest.raises(UnhandledUpdate, match="without data"):
        envelope(sample)


@pytest.mark.parametrize(
    "data",
    ["x" * 64, "\N{LATIN SMALL LETTER E WITH ACUTE}" * 32, "\N{GRINNING FACE}" * 16],
    ids=["64-ascii", "64-bytes-2-byte-chars", "64-bytes-emoji"],
)
def test_callback_data_of_64_bytes_is_accepted(data):
    sample = update("callback_query")
    sample["callback_query"]["data"] = data

    assert envelope(sample)["text"] == data


@pytest.mark.parametrize(
    "data",
    ["x" * 65, "\N{LATIN SMALL LETTER E WITH ACUTE}" * 32 + "x", "\N{GRINNING FACE}" * 17],
    ids=["65-ascii", "65-bytes", "68-bytes-emoji"],
)
def test_callback_data_over_telegrams_64_bytes_is_still_answered(data):
    # Telegram's limit, not ours: Telegram sent it, so it is answered (DESIGN.md §3).
    sample = update("callback_query")
    sample["callback_query"]["data"] = data

    assert envelope(sample)["text"] == data


def test_a_callback_on_an_inaccessible_message_is_still_answered():
    """Bot API 7.0: a message older than 48 h comes as InaccessibleMessage (chat, message_id, date 0)."""
    sample = update("callback_query")
    sample["callback_query"]["message"] = {
        "chat": {"id": 284719365, "type": "private"},
        "message_id": 1022,
        "date": 0,
    }

    result = envelope(sample)

    assert (result["kind"], result["chat_id"], result["message_id"], result["text"]) == (
        "callback_query",
        284719365,
        1022,
        "notes:weekly",
    )
    assert result["sender"]["id"] == 284719365


def test_a_callback_query_whose_message_has_no_chat_is_invalid():
    sample = update("callback_query")
    del sample["callback_query"]["message"]["chat"]

    with pytest.raises(InvalidUpdate, match="callback_query.chat"):
        envelope(sample)


# --- ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("update_id", [True, False], ids=["true", "false"])
def test_a_bool_update_id_is_rejected(update_id):
    sample = update("private_text")
    sample["update_id"] = update_id

    with pytest.raises(InvalidUpdate, match="update_id"):
        envelope(sample)


def test_update_id_zero_is_accepted():
    sample = update("private_text")
    sample["update_id"] = 0

    assert envelope(sample)["update_id"] == 0


@pytest.mark.parametrize(("field", "names"), [("chat", "message.chat.id"), ("message", "message.message_id")])
def test_bool_chat_and_message_ids_are_rejected(field, names):
    sample = update("private_text")
    if field == "chat":
        sample["message"]["chat"]["id"] = True
    else:
        sample["message"]["message_id"] = False

    with pytest.raises(InvalidUpdate, match=names):
        envelope(sample)


def test_a_chat_type_that_is_not_a_string_becomes_none():
    sample = update("private_text")
    sample["message"]["chat"]["type"] = 1

    assert envelope(sample)["chat_type"] is None


# --- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t "], ids=["empty", "spaces", "whitespace"])
def test_a_message_with_blank_text_is_unhandled(text):
    sample = update("private_text")
    sample["message"]["text"] = text

    with pytest.raises(UnhandledUpdate, match="without text or caption"):
        envelope(sample)


@pytest.mark.parametrize("kind", ["text", "caption", "callback"])
def test_a_lone_surrogate_is_invalid(kind):
    broken = "half an emoji \ud83d"
    if kind == "callback":
        sample = update("callback_query")
        sample["callback_query"]["data"] = broken
    else:
        sample = update("photo_with_caption" if kind == "caption" else "private_text")
        sample["message"][kind] = broken

    with pytest.raises(InvalidUpdate, match="is not a valid Unicode string"):
        envelope(sample)


def test_a_photo_with_a_blank_caption_is_enqueued_with_empty_text():
    sample = update("photo_with_caption")
    sample["message"]["caption"] = " "

    result = envelope(sample)

    assert result["text"] == "" and [file["kind"] for file in result["attachments"]] == ["photo"]


# --- attachments, location, venue, contact (README: Attachments) ------------------------------


def test_a_photo_is_its_largest_size_as_metadata_never_bytes():
    result = envelope(update("photo_with_caption"))

    assert result["attachments"] == [
        {
            "kind": "photo",
            "file_id": "AgACAgIAAxkBAAIB_2kheQABbXr3q0y1oq1tJc1R3gABrpsAAkv2MRsWKRFJ3fGxU0kTYQwBAAMCAAN4AAM2BA",
            "file_unique_id": "AQADS_YxGxYpEUl9",
            "mime_type": "image/jpeg",
            "file_name": None,
            "file_size": 71254,
            "duration": None,
            "width": 800,
            "height": 450,
        }
    ]


def test_the_largest_photo_size_wins_wherever_it_is_listed():
    sample = update("photo_with_caption")
    sample["message"]["photo"].reverse()

    assert envelope(sample)["attachments"][0]["width"] == 800


FILES = {
    "document": {
        "file_id": "D1",
        "file_unique_id": "d1",
        "file_name": "report.pdf",
        "mime_type": "application/pdf",
        "file_size": 5,
    },
    "voice": {"file_id": "V1", "file_unique_id": "v1", "duration": 3, "mime_type": "audio/ogg", "file_size": 6},
    "audio": {
        "file_id": "A1",
        "file_unique_id": "a1",
        "duration": 200,
        "mime_type": "audio/mpeg",
        "file_name": "song.mp3",
    },
    "video": {
        "file_id": "M1",
        "file_unique_id": "m1",
        "width": 640,
        "height": 360,
        "duration": 9,
        "mime_type": "video/mp4",
    },
    "video_note": {"file_id": "N1", "file_unique_id": "n1", "length": 240, "duration": 5},
}


@pytest.mark.parametrize("kind", sorted(FILES))
def test_every_file_kind_is_enqueued_without_a_caption(kind):
    sample = update("private_text")
    del sample["message"]["text"]
    sample["message"][kind] = FILES[kind]

    result = envelope(sample)

    (file,) = result["attachments"]
    assert result["text"] == "" and file["kind"] == kind and file["file_id"] == FILES[kind]["file_id"]
    assert file["file_size"] == FILES[kind].get("file_size") and file["duration"] == FILES[kind].get("duration")


def test_a_video_note_is_square_and_mpeg4():
    sample = update("private_text")
    sample["message"]["video_note"] = FILES["video_note"]

    (file,) = envelope(sample)["attachments"]

    assert (file["width"], file["height"], file["mime_type"]) == (240, 240, "video/mp4")


def test_an_animation_is_not_also_a_document():
    sample = update("private_text")
    animation = {"file_id": "G1", "file_unique_id": "g1", "mime_type": "video/mp4", "file_name": "cat.mp4"}
    sample["message"]["animation"] = animation
    sample["message"]["document"] = animation  # Telegram sets both, for backward compatibility

    assert [file["kind"] for file in envelope(sample)["attachments"]] == ["animation"]


def test_a_file_without_a_file_id_is_left_out():
    sample = update("private_text")
    sample["message"]["voice"] = {"duration": 3}

    assert "attachments" not in envelope(sample)
    del sample["message"]["text"]
    with pytest.raises(UnhandledUpdate, match="without text or caption"):
        envelope(sample)


def test_an_album_message_carries_its_media_group_id():
    sample = update("photo_with_caption")
    sample["message"]["media_group_id"] = "13579"

    assert envelope(sample)["media_group_id"] == "13579"


def test_a_text_message_has_no_media_fields():
    assert not {"attachments", "media_group_id", "location", "venue", "contact"} & set(envelope(update("private_text")))


def test_a_location_is_a_structured_field():
    sample = update("private_text")
    del sample["message"]["text"]
    sample["message"]["location"] = {"latitude": 52.52, "longitude": 13.405, "horizontal_accuracy": 12.5}

    result = envelope(sample)

    assert result["text"] == ""
    assert result["location"] == {
        "latitude": 52.52,
        "longitude": 13.405,
        "horizontal_accuracy": 12.5,
        "live_period": None,
    }


def test_a_venue_says_it_all_and_its_location_is_not_repeated():
    sample = update("private_text")
    del sample["message"]["text"]
    location = {"latitude": 48.8584, "longitude": 2.2945}
    sample["message"]["location"] = location
    sample["message"]["venue"] = {"location": location, "title": "Eiffel Tower", "address": "Champ de Mars"}

    result = envelope(sample)

    assert result["venue"] == {
        "title": "Eiffel Tower",
        "address": "Champ de Mars",
        "latitude": 48.8584,
        "longitude": 2.2945,
    }
    assert "location" not in result


def test_a_contact_is_a_structured_field():
    sample = update("private_text")
    del sample["message"]["text"]
    sample["message"]["contact"] = {"phone_number": "+4912345", "first_name": "Bob", "user_id": 42}

    assert envelope(sample)["contact"] == {
        "phone_number": "+4912345",
        "first_name": "Bob",
        "last_name": None,
        "user_id": 42,
        "vcard": None,
    }


def test_a_callback_query_does_not_carry_the_bot_messages_files():
    sample = update("callback_query")
    sample["callback_query"]["message"]["photo"] = [{"file_id": "P", "file_unique_id": "p", "width": 1, "height": 1}]

    assert "attachments" not in envelope(sample)


@pytest.mark.parametrize(("field", "value"), [("caption", {"text": "hi"}), ("text", 5), ("text", ["a"])])
def test_a_text_that_is_not_a_string_says_so(field, value):
    sample = update("photo_with_caption" if field == "caption" else "private_text")
    sample["message"][field] = value

    with pytest.raises(InvalidUpdate, match=f"^message.{field} is not a string$"):
        envelope(sample)


def test_text_is_kept_verbatim():
    sample = update("private_text")
    sample["message"]["text"] = "  leading and trailing  \n"

    assert envelope(sample)["text"] == "  leading and trailing  \n"


# --- update kinds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    ["channel_post", "edited_channel_post", "inline_query", "message_reaction", "chat_join_request", "poll"],
)
def test_other_update_kinds_are_unhandled_and_named(kind):
    with pytest.raises(UnhandledUpdate, match=f"'{kind}'"):
        envelope({"update_id": 918273700, kind: {}})


def test_an_update_with_only_its_id_is_unhandled():
    with pytest.raises(UnhandledUpdate, match="'nothing'"):
        envelope({"update_id": 918273700})
