"""Issue 13's formatting kinds at unit level: the agent's markup rendered as Telegram renders it,
split with its entities, every budget in its own unit, parse_mode read as Telegram reads it.

"What the chat shows" is what the fake Bot API (tgrelay_local.fakes, a real HTTP server) answers
for each sendMessage: its own checks of `entities` (UTF-16 ranges inside the text, known types)
are independent of the splitter's code.
"""

import httpx
import pytest
from fakes_fixtures import BOT_TOKEN, fake_telegram_fixture, telegram_server_fixture  # noqa: F401

from tgrelay.errors import AgentBadResponse
from tgrelay.formatting import EntityParseError, parse_html, parse_markdown, parse_markdown_v2, render
from tgrelay.replies import CUT_NOTE, MAX_REPLY_BYTES, MAX_REPLY_UNITS, deliveries, reply_from_agent, state_bytes
from tgrelay.text import split_entities, utf16_len

CHAT = {"chat_id": 4242, "message_id": 7, "chat_type": "private", "kind": "message"}
EMOJI = "\N{GRINNING FACE}"  # 2 UTF-16 units, 4 UTF-8 bytes


def shown_in_chat(telegram, body: dict) -> list[dict]:
    """Render the agent's answer as CallAgent does, send it as SendReply does (over HTTP, to the
    fake Bot API): what the chat shows, {"text", "entities"} per message. Any 400 fails the test."""
    reply = reply_from_agent(body, empty_text="(empty)")
    with httpx.Client(timeout=5.0) as http:
        for _, payload in deliveries(CHAT, reply):
            answer = http.post(f"{telegram.url}/bot{BOT_TOKEN}/sendMessage", json=payload)
            assert answer.status_code == 200, answer.json()
    return telegram.received(CHAT["chat_id"])


def covered(message: dict, entity: dict) -> str:
    units = message["text"].encode("utf-16-le")
    return units[2 * entity["offset"] : 2 * (entity["offset"] + entity["length"])].decode("utf-16-le")


# --- kind 1: formatting broken by splitting ---------------------------------------------------------


def test_issue_input_html_pre_of_5411_characters_arrives_as_one_formatted_message(fake_telegram):
    source = "<pre>" + "a &lt; b\n" * 600 + "</pre>"
    assert len(source) == 5411

    shown = shown_in_chat(fake_telegram, {"reply": source, "parse_mode": "HTML"})

    # 3,600 characters once rendered: one message, the block as `pre`, no "<pre>" or "&lt;" in sight.
    assert shown == [{"text": "a < b\n" * 600, "entities": [{"type": "pre", "offset": 0, "length": 3600}]}]


def test_html_code_block_longer_than_a_message_is_cut_at_lines_and_reopened(fake_telegram):
    code = "".join(f"x_{n:04d} = 1 &lt; 2\n" for n in range(1000))  # 16 visible characters a line
    source = f'Here:\n<pre><code class="language-python">{code}</code></pre>\n<b>done</b>'

    shown = shown_in_chat(fake_telegram, {"reply": source, "parse_mode": "HTML"})

    assert len(shown) == 4
    visible = "".join(message["text"] for message in shown)
    assert visible.replace("\n", "") == ("Here:" + code.replace("&lt;", "<") + "done").replace("\n", "")
    for message in shown[:3]:
        pre = [entity for entity in message["entities"] if entity["type"] == "pre"]
        assert [entity.get("language") for entity in pre] == ["python"]
        lines = covered(message, pre[0]).rstrip("\n").split("\n")
        assert all(line.startswith("x_") and line.endswith(" = 1 < 2") for line in lines)  # whole lines
    assert shown[-1]["entities"][-1] == {"type": "bold", "offset": utf16_len(shown[-1]["text"]) - 4, "length": 4}


def test_markdownv2_link_crossing_the_cut_is_closed_and_reopened_with_its_url(fake_telegram):
    words = " ".join(f"w{n}" for n in range(2000))  # 10,889 characters of link text
    source = f"See the docs\\. [{words}](https://example.com/a_\\(b\\)) \\- end\\!"

    shown = shown_in_chat(fake_telegram, {"reply": source, "parse_mode": "MarkdownV2"})

    assert len(shown) == 3
    links = [entity for message in shown for entity in message["entities"]]
    assert {entity["type"] for entity in links} == {"text_link"}
    assert {entity["url"] for entity in links} == {"https://example.com/a_(b)"}
    linked = " ".join(covered(message, entity) for message, entity in zip(shown, links, strict=True))
    assert linked == words  # every word linked once, none lost at a cut
    assert shown[0]["text"].startswith("See the docs. w0") and shown[-1]["text"].endswith(" - end!")


def test_bold_over_surrogate_pairs_is_cut_between_code_points(fake_telegram):
    source = "<b>" + f"{EMOJI} " * 3000 + "</b>"  # 9,000 UTF-16 units, spaces to cut at

    shown = shown_in_chat(fake_telegram, {"reply": source, "parse_mode": "html"})

    # The spaces cut at are dropped (Telegram trims them anyway); every emoji arrives whole.
    assert "".join(message["text"] for message in shown).replace(" ", "") == EMOJI * 3000
    assert all(utf16_len(message["text"]) <= 4096 for message in shown)
    for message in shown:
        [bold] = message["entities"]
        assert bold["type"] == "bold" and covered(message, bold).strip(f"{EMOJI} ") == ""
        assert "\ufffd" not in message["text"]


def test_a_code_block_that_fits_a_message_moves_whole_to_the_next_with_its_indentation(fake_telegram):
    # Blank lines inside the block: paragraph breaks a splitter blind to `pre` would cut at.
    block = "    indented line\n\n" * 60  # 1,140 characters
    source = "A" * 3000 + "\n\n<pre>" + block + "</pre>\n\nThe end."

    shown = shown_in_chat(fake_telegram, {"reply": source, "parse_mode": "HTML"})

    assert shown == [
        {"text": "A" * 3000, "entities": []},
        {"text": block + "\n\nThe end.", "entities": [{"type": "pre", "offset": 0, "length": len(block)}]},
    ]


def test_split_entities_keeps_nested_entities_and_drops_the_cut_white_space():
    text = "para one\n\n" + "x" * 4090 + " tail"
    # Bold covers "one\n\n" and the x's: from unit 5 to 4100.
    entities = [{"type": "italic", "offset": 0, "length": len(text)}, {"type": "bold", "offset": 5, "length": 4095}]

    chunks = split_entities(text, entities, limit=4096)

    assert [chunk for chunk, _ in chunks] == ["para one", "x" * 4090 + " tail"]
    assert chunks[0][1] == [{"type": "italic", "offset": 0, "length": 8}, {"type": "bold", "offset": 5, "length": 3}]
    assert chunks[1][1] == [
        {"type": "italic", "offset": 0, "length": 4095},
        {"type": "bold", "offset": 0, "length": 4090},
    ]


def test_unparsable_markup_is_shown_as_the_agent_wrote_it(fake_telegram):
    shown = shown_in_chat(fake_telegram, {"reply": "<b>bold</b> & <i>unclosed", "parse_mode": "HTML"})

    assert shown == [{"text": "<b>bold</b> & <i>unclosed", "entities": []}]


def test_standard_markdown_renders_headings_lists_code_and_links(fake_telegram):
    source = "# Notes\n\n- **bold** item\n- `code` item\n\n```sh\nls -l\n```\n\nSee [docs](https://example.com)."

    [shown] = shown_in_chat(fake_telegram, {"reply": source, "format": "markdown"})

    kinds = {entity["type"]: covered(shown, entity) for entity in shown["entities"]}
    assert kinds["code"] == "code" and kinds["pre"] == "ls -l" and kinds["text_link"] == "docs"
    assert "bold" in kinds and "**" not in shown["text"] and "```" not in shown["text"]


# --- the Telegram parsers: Telegram's own results and error messages ------------------------------


def test_html_parser_follows_telegram():
    text, entities = parse_html(
        '<b>b</b><strong>s</strong><i>i</i><u>u</u><s>s</s><span class="tg-spoiler">p</span>'
        '<a href="http://www.example.com/">l</a><code>c</code><pre><code class="language-python">x</code></pre>'
        "<blockquote>q</blockquote> &lt;&gt;&amp;&quot;&#65;&#x42;&nbsp;"
    )
    assert text == "bsiuspl" + 'cxq <>&"AB&nbsp;'
    assert [entity["type"] for entity in entities] == [
        "bold", "bold", "italic", "underline", "strikethrough", "spoiler", "text_link", "code", "pre", "blockquote",
    ]  # fmt: skip
    assert entities[8] == {"type": "pre", "offset": 8, "length": 1, "language": "python"}


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b>bold</b> & <i>unclosed", 'Can\'t find end tag corresponding to start tag "i"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("ü<b", "Unclosed start tag at byte offset 2"),  # bytes of UTF-8, as Telegram counts
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_html_parser_refuses_what_telegram_refuses(source, error):
    with pytest.raises(EntityParseError) as caught:
        parse_html(source)
    assert str(caught.value) == error


def test_markdown_v2_parser_follows_telegram():
    text, entities = parse_markdown_v2(
        "*b* _i_ __u__ ~s~ ||p|| [l](http://www.example.com/) `c` ```python\nx\n``` \\. \\*"
    )
    assert text == "b i u s p l c x\n . *"
    assert [(entity["type"], entity["offset"], entity["length"]) for entity in entities] == [
        ("bold", 0, 1), ("italic", 2, 1), ("underline", 4, 1), ("strikethrough", 6, 1), ("spoiler", 8, 1),
        ("text_link", 10, 1), ("code", 12, 1), ("pre", 14, 2),
    ]  # fmt: skip


def test_markdown_v2_quotes_plain_and_expandable():
    assert parse_markdown_v2(">quote\n>two\nafter") == (
        "quote\ntwo\nafter",
        [{"type": "blockquote", "offset": 0, "length": 10}],
    )
    assert parse_markdown_v2("**>hidden\n>more||") == (
        "hidden\nmore",
        [{"type": "expandable_blockquote", "offset": 0, "length": 11}],
    )


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("Version 1.5", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("*unclosed bold", "Can't find end of Bold entity at byte offset 0"),
        ("[link](https://example.com", "Can't find end of a URL at byte offset 7"),
        ("a - b", "Character '-' is reserved and must be escaped with the preceding '\\'"),
    ],
)
def test_markdown_v2_parser_refuses_what_telegram_refuses(source, error):
    with pytest.raises(EntityParseError) as caught:
        parse_markdown_v2(source)
    assert str(caught.value) == error


def test_legacy_markdown_parser_follows_telegram():
    assert parse_markdown("*b* 1.5 - _i_") == (
        "b 1.5 - i",
        [{"type": "bold", "offset": 0, "length": 1}, {"type": "italic", "offset": 8, "length": 1}],
    )
    with pytest.raises(EntityParseError, match="Can't find end of the entity starting at byte offset 5"):
        parse_markdown("snake_case")


# --- kind 6: budgets in their own units --------------------------------------------------------------


def test_issue_input_25100_chinese_characters_are_delivered_like_25100_ascii(fake_telegram):
    chinese = ("这是一个很长的中文回答，用来检查长度的单位。" * 1200)[:25_100]

    reply = reply_from_agent({"reply": chinese}, empty_text="(empty)")
    shown = shown_in_chat(fake_telegram, {"reply": chinese})

    assert state_bytes(reply) < MAX_REPLY_BYTES < len(str(reply).encode("unicode_escape"))
    assert [message["text"] for message in shown] == [chinese[n : n + 4096] for n in range(0, 25_100, 4096)]
    fake_telegram.reset()
    assert len(shown_in_chat(fake_telegram, {"reply": "a" * 25_100})) == len(shown) == 7


def test_emoji_count_two_units_and_the_cut_says_so(fake_telegram):
    shown = shown_in_chat(fake_telegram, {"reply": EMOJI * 20_000})  # 40,000 UTF-16 units

    visible = "".join(message["text"] for message in shown)
    assert visible == EMOJI * (MAX_REPLY_UNITS // 2) + CUT_NOTE
    assert all(utf16_len(message["text"]) <= 4096 for message in shown)


def test_markup_does_not_count_only_what_the_chat_shows(fake_telegram):
    source = "&lt;" * 30_000  # 120,000 characters of HTML, 30,000 shown: within the budget

    shown = shown_in_chat(fake_telegram, {"reply": source, "parse_mode": "HTML"})

    assert "".join(message["text"] for message in shown) == "<" * 30_000


def test_a_reply_whose_entities_outgrow_the_state_is_cut_with_the_note_not_refused(fake_telegram):
    source = "**bold** " * 20_000  # 100,000 units of text, 20,000 entities: too big as state

    reply = reply_from_agent({"reply": source, "format": "markdown"}, empty_text="(empty)")
    shown = shown_in_chat(fake_telegram, {"reply": source, "format": "markdown"})

    assert state_bytes(reply) <= MAX_REPLY_BYTES
    assert shown[-1]["text"].endswith(CUT_NOTE)
    *whole, last = [covered(message, entity) for message in shown for entity in message["entities"]]
    assert set(whole) == {"bold"} and "bold".startswith(last)  # the budget may end inside a word


def test_state_bytes_count_utf8_not_ascii_escapes():
    assert state_bytes({"text": "中"}) == len('{"text": "中"}'.encode()) == 15
    assert state_bytes({"text": EMOJI}) == 16


# --- kind 7: accept what Telegram accepts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse_mode", "source"),
    [("html", "<b>hi</b>"), ("Html", "<B>hi</B>"), ("markdownv2", "*hi*"), ("MARKDOWN", "*hi*"), ("Markdown", "*hi*")],
)
def test_issue_input_and_others_parse_mode_in_any_case_is_rendered(fake_telegram, parse_mode, source):
    shown = shown_in_chat(fake_telegram, {"reply": source, "parse_mode": parse_mode})

    assert shown == [{"text": "hi", "entities": [{"type": "bold", "offset": 0, "length": 2}]}]


@pytest.mark.parametrize("parse_mode", ["none", "None", "", None])
def test_parse_mode_none_and_empty_mean_plain_text(fake_telegram, parse_mode):
    shown = shown_in_chat(fake_telegram, {"reply": "<b>hi</b> *x*", "parse_mode": parse_mode})

    assert shown == [{"text": "<b>hi</b> *x*", "entities": []}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reply": "x", "parse_mode": "markdown_v2"}, 'parse_mode is "markdown_v2"; the contract says'),
        # Telegram does not trim either.
        ({"reply": "x", "parse_mode": " HTML"}, 'parse_mode is " HTML"; the contract says'),
        ({"reply": "x", "format": "commonmark"}, 'format is "commonmark"; the contract says'),
    ],
)
def test_only_what_telegram_refuses_is_refused_and_the_field_named(body, field):
    with pytest.raises(AgentBadResponse) as caught:
        reply_from_agent(body, empty_text="(empty)")
    assert field in str(caught.value)


def test_render_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        render("x", "bbcode")


def test_the_webhook_cold_start_does_not_load_the_markdown_library():
    """Only a function that renders Markdown pays for importing it (README: Benchmarks)."""
    import subprocess
    import sys

    probe = (
        "import sys, tgrelay.webhook, tgrelay.send_reply, tgrelay.call_agent;"
        "print(sorted(m for m in ('telegramify_markdown', 'pyromark') if m in sys.modules));"
        "from tgrelay.formatting import render; render('**x**', 'markdown');"
        "print(sorted(m for m in ('telegramify_markdown', 'pyromark') if m in sys.modules))"
    )
    lines = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    assert lines == ["[]", "['pyromark',", "'telegramify_markdown']"]
