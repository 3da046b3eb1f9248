"""tgrelay.replies: the agent's answer checked against the contract, and the sendMessage calls that deliver it."""

import pytest
from unit_helpers import DEDUPE_TTL_SECONDS, SAMPLE_RECEIVED_AT, update

from tgrelay.envelope import envelope_from_update
from tgrelay.errors import AgentBadResponse
from tgrelay.replies import (
    CUT_NOTE,
    MAX_BUTTONS,
    MAX_CAPTION_UNITS,
    MAX_MESSAGES,
    MAX_REPLY_UNITS,
    deliveries,
    reply_from_agent,
)
from tgrelay.text import utf16_len

EMPTY = "(nothing to say)"


def reply(body):
    return reply_from_agent(body, empty_text=EMPTY)


def bad(body) -> str:
    with pytest.raises(AgentBadResponse) as caught:
        reply(body)
    assert type(caught.value) is AgentBadResponse  # the class itself: the ASL matches its name
    return str(caught.value)


def envelope(name: str) -> dict:
    return envelope_from_update(update(name), SAMPLE_RECEIVED_AT, DEDUPE_TTL_SECONDS)


# --- the contract ---------------------------------------------------------------------------------


def test_a_plain_reply_is_its_text_and_a_formatted_one_text_and_entities():
    assert reply({"reply": "hi"}) == {"text": "hi"}
    assert reply({"reply": "<b>hi</b>", "parse_mode": "HTML"}) == {
        "text": "hi",
        "entities": [{"type": "bold", "offset": 0, "length": 2}],
    }


def test_unknown_fields_are_ignored():
    assert reply({"reply": "hi", "confidence": 0.9}) == {"text": "hi"}


def test_reply_then_messages_in_order_blank_ones_left_out():
    assert reply({"reply": "one", "messages": ["two", " ", "three", "<i> </i>"], "format": "html"}) == {
        "text": "one",
        "more_messages": [{"text": "two"}, {"text": "three"}],
    }


def test_messages_alone_are_enough():
    assert reply({"messages": ["one", "two"]}) == {"text": "one", "more_messages": [{"text": "two"}]}


@pytest.mark.parametrize("body", [{}, {"reply": ""}, {"reply": None, "messages": []}, {"messages": ["", "\n"]}])
def test_nothing_to_send_becomes_the_empty_reply_text_without_formatting(body):
    assert reply({**body, "parse_mode": "HTML"}) == {"text": EMPTY}


def test_buttons_pass_through_as_given():
    buttons = [
        [{"text": "Yes", "callback_data": "y"}, {"text": "No", "callback_data": "n"}],
        [{"text": "Docs", "url": "https://example.com/docs"}],
    ]

    assert reply({"reply": "ok?", "buttons": buttons}) == {"text": "ok?", "buttons": buttons}


def test_buttons_without_text_get_the_empty_reply_text_to_hang_on():
    buttons = [[{"text": "Again", "callback_data": "again"}]]

    assert reply({"buttons": buttons}) == {"text": EMPTY, "buttons": buttons}


def test_exactly_the_limits_are_accepted():
    data = "d" * 64
    assert reply({"reply": "x", "buttons": [[{"text": "b", "callback_data": data}]]})["buttons"][0][0] == {
        "text": "b",
        "callback_data": data,
    }
    assert (
        len(reply({"reply": "x", "buttons": [[{"text": "b", "callback_data": "c"}]] * MAX_BUTTONS})["buttons"]) == 100
    )
    assert len(reply({"messages": ["m"] * MAX_MESSAGES})["more_messages"]) == MAX_MESSAGES - 1
    assert len(reply({"reply": "r", "messages": ["m"] * MAX_MESSAGES})["more_messages"]) == MAX_MESSAGES


def test_more_messages_than_the_limit_are_left_out_and_the_last_one_sent_says_so():
    result = reply({"reply": "r", "messages": [f"m{n}" for n in range(MAX_MESSAGES + 3)]})

    assert result["more_messages"] == [{"text": f"m{n}"} for n in range(MAX_MESSAGES - 1)] + [
        {"text": f"m{MAX_MESSAGES - 1}" + CUT_NOTE}
    ]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"reply": 5}, "reply must be string or null (it is 5)"),
        (
            {"reply": "x", "parse_mode": "markdown_v2"},
            'parse_mode is "markdown_v2"; the contract says: Telegram\'s own field',
        ),
        ({"reply": "x", "parse_mode": "BBCode"}, 'parse_mode is "BBCode"; the contract says: Telegram\'s own field'),
        ({"reply": "x", "parse_mode": ["HTML"]}, 'parse_mode must be string or null (it is ["HTML"])'),
        ({"reply": "x", "format": "rst"}, 'format is "rst"; the contract says: How every message'),
        ({"reply": "x", "format": "markdown", "parse_mode": "HTML"}, "give one of them"),
        ({"messages": "one"}, "messages must be array or null"),
        ({"messages": ["one", 2]}, "messages[1] must be string (it is 2)"),
        ({"reply": "x", "buttons": {"text": "b"}}, "buttons must be array or null"),
        ({"reply": "x", "buttons": [{"text": "b", "callback_data": "c"}]}, "buttons[0] must be array"),
        ({"reply": "x", "buttons": [[]]}, "buttons[0] must contain at least 1 items"),
        ({"reply": "x", "buttons": [["b"]]}, 'buttons[0][0] must be object (it is "b")'),
        ({"reply": "x", "buttons": [[{"callback_data": "c"}]]}, "buttons[0][0] must contain ['text'] properties"),
        ({"reply": "x", "buttons": [[{"text": " ", "callback_data": "c"}]]}, 'buttons[0][0].text is " "; the contract'),
        (
            {"reply": "x", "buttons": [[{"text": "b"}]]},
            'buttons[0][0] is {"text": "b"}; the contract says: An inline keyboard button:'
            " a text and exactly one of callback_data and url",
        ),
        (
            {"reply": "x", "buttons": [[{"text": "b", "callback_data": "c", "url": "https://x.io"}]]},
            'buttons[0][0] is {"text": "b", "callback_data": "c", "url": "https://x.io"}; the contract says',
        ),
        (
            {"reply": "x", "buttons": [[{"text": "b", "callback_data": "c", "pay": True}]]},
            "buttons[0][0] must not contain {'pay'} properties",
        ),
        (
            {"reply": "x", "buttons": [[{"text": "b", "callback_data": "d" * 65}]]},
            "callback_data must be shorter than or equal to 64",
        ),
        ({"reply": "x", "buttons": [[{"text": "b", "callback_data": "\N{GRINNING FACE}" * 17}]]}, "1-64 bytes"),
        (
            {"reply": "x", "buttons": [[{"text": "b", "callback_data": ""}]]},
            "callback_data must be longer than or equal to 1",
        ),
        ({"reply": "x", "buttons": [[{"text": "b", "callback_data": 7}]]}, "callback_data must be string (it is 7)"),
        (
            {"reply": "x", "buttons": [[{"text": "b", "url": "javascript:alert(1)"}]]},
            'buttons[0][0].url is "javascript:alert(1)"',
        ),
        (
            {"reply": "x", "buttons": [[{"text": "b", "url": "https://x.io/" + "a" * 2048}]]},
            "buttons[0][0].url must be shorter than or equal to 2048",
        ),
        ({"reply": "x", "buttons": [[{"text": "b", "callback_data": "c"}]] * (MAX_BUTTONS + 1)}, "at most 100"),
        (
            {"reply": "x", "buttons": [[{"text": "b", "callback_data": "c"}], [{"text": "b", "url": 3}]]},
            "buttons[1][0].url must be string (it is 3)",
        ),
    ],
)
def test_answers_that_break_the_contract_are_bad_responses_naming_the_problem(body, names):
    assert names in bad(body)


@pytest.mark.parametrize("body", [None, "hi", ["hi"], 3])
def test_an_answer_that_is_not_an_object_is_a_bad_response(body):
    assert bad(body).startswith("agent reply must be object (it is ")


def test_the_reply_budget_covers_all_messages():
    half = "a" * (MAX_REPLY_UNITS // 2)

    result = reply({"reply": half, "messages": [half, "b" * 10, "never sent"]})

    assert result["text"] == half
    # The budget is used up exactly: the rest is left out, and the last message says so.
    assert result["more_messages"] == [{"text": half + CUT_NOTE}]
    cut = reply({"reply": half, "messages": [half[:-5], "b" * 10, "never sent"]})
    assert cut["more_messages"] == [{"text": half[:-5]}, {"text": "bbbbb" + CUT_NOTE}]


# --- what SendReply sends ---------------------------------------------------------------------------


def messages_of(update: dict, reply: dict) -> list[dict]:
    """The sendMessage payloads of `reply` (deliveries: a reply without files is only these)."""
    calls = deliveries(update, reply)
    assert {method for method, _ in calls} == {"sendMessage"}
    return [payload for _, payload in calls]


def test_a_private_reply_is_one_plain_message():
    assert messages_of(envelope("private_text"), {"text": "hi"}) == [{"chat_id": 284719365, "text": "hi"}]


def test_in_a_group_the_first_chunk_quotes_the_user_and_the_last_carries_the_buttons():
    buttons = [[{"text": "More", "callback_data": "more"}]]
    long = " ".join(["word"] * 1000)  # two chunks

    sent = messages_of(
        envelope("forum_topic_text"),
        {"text": long, "more_messages": [{"text": "and one more"}], "buttons": buttons},
    )

    assert len(sent) == 3
    assert sent[-1]["text"] == "and one more"
    assert all(message["message_thread_id"] == 7690 for message in sent)
    assert sent[0]["reply_parameters"] == {"message_id": 7712, "allow_sending_without_reply": True}
    assert ["reply_parameters" in message for message in sent] == [True, False, False]
    assert ["reply_markup" in message for message in sent] == [False, False, True]
    assert sent[-1]["reply_markup"] == {"inline_keyboard": buttons}


def test_a_button_press_in_a_group_is_not_quoted():
    pressed = envelope("callback_query")
    pressed["chat_type"] = "supergroup"

    (sent,) = messages_of(pressed, {"text": "ok"})

    assert "reply_parameters" not in sent


def test_the_flat_list_is_the_same_on_every_call():
    reply_ = {"text": "a " * 3000, "more_messages": [{"text": "b " * 2500}, {"text": "c"}]}

    first = messages_of(envelope("group_text"), reply_)

    assert first == messages_of(envelope("group_text"), reply_)
    assert len(first) == 5  # 2 + 2 chunks + 1


def test_buttons_too_big_for_the_workflow_state_are_refused_naming_them():
    from tgrelay.replies import MAX_REPLY_BYTES

    buttons = [[{"text": "b" * 200, "url": "https://example.com/" + "x" * 2000}] for _ in range(100)]
    with pytest.raises(AgentBadResponse, match='"buttons" take .* bytes as JSON'):
        reply_from_agent({"reply": "y" * 30000, "buttons": buttons}, "empty")
    assert MAX_REPLY_BYTES < 256 * 1024


def test_button_text_is_bounded():
    too_long = [[{"text": "t" * 257, "callback_data": "x"}]]
    with pytest.raises(AgentBadResponse, match=r"buttons\[0\]\[0\]\.text must be shorter than or equal to 256"):
        reply_from_agent({"reply": "hi", "buttons": too_long}, "empty")
    fits = [[{"text": "t" * 256, "callback_data": "x"}]]
    assert reply_from_agent({"reply": "hi", "buttons": fits}, "empty")["buttons"] == fits


# --- attachments (the agent's files) ----------------------------------------------------------------

PHOTO = {"kind": "photo", "url": "https://files.example/charts/q3%20sales.png"}


def test_an_attachment_is_passed_on_with_its_caption_rendered():
    answer = reply({"reply": "Here.", "format": "html", "attachments": [{**PHOTO, "caption": "<b>Q3</b> sales"}]})

    assert answer["attachments"] == [
        {
            "kind": "photo",
            "url": PHOTO["url"],
            "caption": "Q3 sales",
            "caption_entities": [{"type": "bold", "offset": 0, "length": 2}],
        }
    ]
    named = reply({"attachments": [{"kind": "document", "url": "https://x.example/", "file_name": "a.pdf"}]})
    assert named["attachments"][0]["file_name"] == "a.pdf"


def test_files_alone_are_an_answer_without_the_empty_reply_text():
    answer = reply({"attachments": [PHOTO]})
    assert answer["text"] == "" and len(answer["attachments"]) == 1
    calls = deliveries(envelope("private_text"), answer)
    assert [method for method, _ in calls] == ["sendPhoto"]
    assert calls[0][1]["photo"] == {"url": PHOTO["url"]}


def test_files_come_after_every_text_chunk_in_order():
    answer = reply({"reply": "a " * 3000, "attachments": [PHOTO, {"kind": "audio", "url": "https://x.example/s.mp3"}]})
    assert [method for method, _ in deliveries(envelope("private_text"), answer)] == [
        "sendMessage",
        "sendMessage",
        "sendPhoto",
        "sendAudio",
    ]


@pytest.mark.parametrize(
    ("attachments", "error"),
    [
        ({"kind": "photo"}, "attachments must be array or null"),
        ([PHOTO] * 11, "attachments must contain less than or equal to 10 items"),
        (["https://x.example/a.png"], 'attachments[0] must be object (it is "https://x.example/a.png")'),
        ([{**PHOTO, "mime_type": "image/png"}], "attachments[0] must not contain {'mime_type'} properties"),
        (
            [{**PHOTO, "kind": "sticker"}],
            "attachments[0].kind must be one of ['photo', 'document', 'voice', 'audio', 'video', 'animation']"
            ' (it is "sticker")',
        ),
        ([{"kind": "photo"}], "attachments[0] must contain ['url'] properties"),
        (
            [PHOTO, {**PHOTO, "url": "file:///etc/passwd"}],
            'attachments[1].url is "file:///etc/passwd"; the contract says: An https:// or http:// URL',
        ),
        (
            [{**PHOTO, "url": "https://x.example/" + "a" * 2048}],
            "attachments[0].url must be shorter than or equal to 2048 characters",
        ),
        # URLs urllib cannot read (urlsplit, .port raise ValueError) or without a host.
        ([{**PHOTO, "url": "http://[oops/x.pdf"}], "attachments[0].url does not parse as a URL with a host"),
        ([{**PHOTO, "url": "http://127.0.0.1:99999/x.pdf"}], "attachments[0].url does not parse as a URL with a host"),
        ([{**PHOTO, "url": "http://exa mple.com/x.pdf"}], "attachments[0].url does not parse as a URL with a host"),
        ([{**PHOTO, "url": "https:///x.pdf"}], "attachments[0].url does not parse as a URL with a host"),
        ([{**PHOTO, "file_name": ""}], 'attachments[0].file_name is ""; the contract says: The name'),
        ([{**PHOTO, "file_name": "a" * 256}], "attachments[0].file_name must be shorter than or equal to 255"),
        ([{**PHOTO, "caption": 7}], "attachments[0].caption must be string or null (it is 7)"),
    ],
)
def test_an_attachment_that_breaks_the_contract_is_named(attachments, error):
    assert error in bad({"reply": "hi", "attachments": attachments})


def test_a_caption_over_1024_characters_is_cut_with_the_cut_note_not_refused():
    caption = "**bold** " + "x" * 2000
    (file,) = reply({"reply": "hi", "format": "markdown", "attachments": [{**PHOTO, "caption": caption}]})[
        "attachments"
    ]

    assert utf16_len(file["caption"]) == MAX_CAPTION_UNITS
    assert file["caption"].startswith("bold xxx") and file["caption"].endswith(CUT_NOTE)
    assert file["caption_entities"] == [{"type": "bold", "offset": 0, "length": 4}]


def test_a_caption_of_1024_characters_is_kept():
    assert len(reply({"attachments": [{**PHOTO, "caption": "x" * 1024}]})["attachments"][0]["caption"]) == 1024
