"""The loopback fakes themselves, driven over real HTTP the way any test or the local engine drives them."""

import httpx
import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    AGENT_TOKEN,
    BOT_TOKEN,
    agent_server_fixture,
    fake_agent_fixture,
    fake_telegram_fixture,
    telegram_server_fixture,
)

EMOJI = "\N{GRINNING FACE}"  # 2 UTF-16 units


@pytest.fixture(name="http")
def http_fixture():
    with httpx.Client(timeout=5.0) as client:
        yield client


def ask_agent(http: httpx.Client, agent, text: str = "hi", chat_id: int = 42, token: str | None = AGENT_TOKEN):
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return http.post(f"{agent.url}/agent", json={"text": text, "chat": {"id": chat_id}}, headers=headers)


def send_message(http: httpx.Client, telegram, text, token: str = BOT_TOKEN, chat_id: int = 42):
    return http.post(f"{telegram.url}/bot{token}/sendMessage", json={"chat_id": chat_id, "text": text})


def test_a_fault_applies_to_exactly_count_calls(http, fake_agent):
    queued = http.post(f"{fake_agent.url}/_faults", json={"status": 503, "count": 2})
    assert queued.json() == {"ok": True, "queued": 1}

    statuses = [ask_agent(http, fake_agent, f"m{n}").status_code for n in range(4)]

    assert statuses == [503, 503, 200, 200]
    calls = http.get(f"{fake_agent.url}/_calls").json()
    assert [(call["request"]["text"], call["fault"]) for call in calls] == [
        ("m0", True),
        ("m1", True),
        ("m2", False),
        ("m3", False),
    ]


def test_faults_without_count_apply_once_and_a_list_queues_several(http, fake_telegram):
    http.post(f"{fake_telegram.url}/_faults", json=[{"status": 500}, {"status": 403}])

    statuses = [send_message(http, fake_telegram, "x").status_code for _ in range(3)]

    assert statuses == [500, 403, 200]


def test_a_null_count_lasts_until_reset(http, fake_telegram):
    http.post(f"{fake_telegram.url}/_faults", json={"status": 502, "count": None})

    assert [send_message(http, fake_telegram, "x").status_code for _ in range(3)] == [502, 502, 502]
    assert http.post(f"{fake_telegram.url}/_reset").json() == {"ok": True}

    assert http.get(f"{fake_telegram.url}/_calls").json() == []
    assert send_message(http, fake_telegram, "x").status_code == 200


@pytest.mark.parametrize("body", [b"", b"null", b"[1]", b"not json"], ids=repr)
def test_a_fault_that_is_not_an_object_is_refused_and_nothing_is_queued(http, fake_telegram, body):
    answer = http.post(f"{fake_telegram.url}/_faults", content=body)

    assert (answer.status_code, answer.json()["ok"]) == (400, False)
    assert fake_telegram.faults == []


def test_faults_match_only_their_chat_and_method(http, fake_telegram):
    http.post(f"{fake_telegram.url}/_faults", json={"status": 403, "match": {"chat_id": 7}})

    assert http.post(f"{fake_telegram.url}/bot{BOT_TOKEN}/getMe", json={}).status_code == 200
    assert send_message(http, fake_telegram, "x", chat_id=8).status_code == 200
    assert send_message(http, fake_telegram, "x", chat_id=7).status_code == 403
    assert send_message(http, fake_telegram, "x", chat_id=7).status_code == 200


def test_calls_list_what_telegram_received_in_order(http, fake_telegram):
    send_message(http, fake_telegram, "first")
    send_message(http, fake_telegram, "")

    calls = http.get(f"{fake_telegram.url}/_calls").json()

    assert [(call["method"], call["payload"]["text"], call["status"]) for call in calls] == [
        ("sendMessage", "first", 200),
        ("sendMessage", "", 400),
    ]
    assert fake_telegram.sent_messages(42) == [{"chat_id": 42, "text": "first"}]


def test_telegram_429_carries_retry_after(http, fake_telegram):
    http.post(f"{fake_telegram.url}/_faults", json={"status": 429, "retry_after": 12})

    answer = send_message(http, fake_telegram, "x")

    assert answer.status_code == 429
    assert answer.json()["parameters"] == {"retry_after": 12}


def test_telegram_rejects_a_wrong_token(http, fake_telegram):
    answer = send_message(http, fake_telegram, "x", token="654321:WRONG")

    assert answer.status_code == 401
    assert answer.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


@pytest.mark.parametrize("text", ["", "  \n "])
def test_telegram_rejects_empty_text(http, fake_telegram, text):
    answer = send_message(http, fake_telegram, text)

    assert answer.status_code == 400
    assert answer.json()["description"] == "Bad Request: message text is empty"


def test_telegram_counts_the_limit_in_utf16_units(http, fake_telegram):
    at_limit = EMOJI * 2048  # 2048 characters, 4096 units
    over_limit = EMOJI * 2048 + "a"  # 2049 characters, 4097 units

    assert send_message(http, fake_telegram, at_limit).status_code == 200
    answer = send_message(http, fake_telegram, over_limit)

    assert answer.status_code == 400
    assert answer.json()["description"] == "Bad Request: message is too long"
    assert fake_telegram.sent_messages() == [{"chat_id": 42, "text": at_limit}]


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_agent_requires_its_bearer_token(http, fake_agent, token):
    answer = ask_agent(http, fake_agent, token=token)

    assert answer.status_code == 401


def test_agent_echoes_with_the_right_token(http, fake_agent):
    answer = ask_agent(http, fake_agent, "ping")

    assert answer.status_code == 200
    assert answer.json() == {"reply": "echo: ping"}


def test_agent_without_a_configured_token_needs_no_header(http, fake_agent):
    fake_agent.token = ""

    assert ask_agent(http, fake_agent, "ping", token=None).json() == {"reply": "echo: ping"}


def test_agent_faults_shape_the_reply_and_the_body(http, fake_agent):
    http.post(
        f"{fake_agent.url}/_faults",
        json=[{"reply": "", "parse_mode": "HTML"}, {"status": 200, "body": "not json"}, {"close": True}],
    )

    assert ask_agent(http, fake_agent).json() == {"reply": "", "parse_mode": "HTML"}
    assert ask_agent(http, fake_agent).text == "not json"
    with pytest.raises(httpx.TransportError):  # dropped without an answer
        ask_agent(http, fake_agent)
    assert ask_agent(http, fake_agent).json() == {"reply": "echo: hi"}


def test_a_zero_count_fault_applies_to_no_call(http, fake_telegram):
    http.post(f"{fake_telegram.url}/_faults", json={"status": 500, "count": 0})

    assert send_message(http, fake_telegram, "x").status_code == 200


# --- sendMessage formatting: parse_mode parsed as Telegram parses it, entities checked ---------------


def send(http: httpx.Client, telegram, **payload):
    return http.post(f"{telegram.url}/bot{BOT_TOKEN}/sendMessage", json={"chat_id": 42, **payload})


@pytest.mark.parametrize(
    ("text", "parse_mode", "description"),
    [
        ("<pre>a < b</pre>", "HTML", 'Unsupported start tag "" at byte offset 7'),
        ("<b>bold</b> & <i>unclosed", "html", 'Can\'t find end tag corresponding to start tag "i"'),
        ("Version 1.5", "MarkdownV2", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("[link](https://example.com", "markdownv2", "Can't find end of a URL at byte offset 7"),
        ("snake_case", "Markdown", "Can't find end of the entity starting at byte offset 5"),
    ],
)
def test_markup_telegram_cannot_parse_is_refused_with_its_description(
    http, fake_telegram, text, parse_mode, description
):
    answer = send(http, fake_telegram, text=text, parse_mode=parse_mode)

    assert answer.status_code == 400
    assert answer.json()["description"] == f"Bad Request: can't parse entities: {description}"
    assert fake_telegram.received() == []


def test_markup_is_shown_as_telegram_renders_it(http, fake_telegram):
    for text, parse_mode in [("<B>hi</B> &lt;3", "Html"), ("*hi* <3", "MARKDOWNV2"), ("*hi* <3", "Markdown")]:
        assert send(http, fake_telegram, text=text, parse_mode=parse_mode).status_code == 200
    assert send(http, fake_telegram, text="*hi*", parse_mode="none").status_code == 200
    assert send(http, fake_telegram, text="*hi*", parse_mode="BBCode").json()["description"] == (
        "Bad Request: unsupported parse_mode"
    )

    bold = [{"type": "bold", "offset": 0, "length": 2}]
    assert fake_telegram.received() == [
        {"text": "hi <3", "entities": bold},
        {"text": "hi <3", "entities": bold},  # MarkdownV2: "<" needs no escape
        {"text": "hi <3", "entities": bold},
        {"text": "*hi*", "entities": []},
    ]


def test_entities_must_lie_in_the_text_counted_in_utf16_units(http, fake_telegram):
    text = EMOJI + "ab"  # 4 UTF-16 units, 3 code points
    fits = [{"type": "bold", "offset": 0, "length": 4}]
    past_the_end = [{"type": "bold", "offset": 2, "length": 3}]  # fits 3 code points, not 4 units

    assert send(http, fake_telegram, text=text, entities=fits).status_code == 200
    refused = send(http, fake_telegram, text=text, entities=past_the_end)
    unknown = send(http, fake_telegram, text=text, entities=[{"type": "blink", "offset": 0, "length": 1}])
    empty = send(http, fake_telegram, text=text, entities=[{"type": "bold", "offset": 1, "length": 0}])

    assert refused.status_code == unknown.status_code == empty.status_code == 400
    assert "covers UTF-16 units 2..5 of a 4-unit text" in refused.json()["description"]
    assert "unknown type 'blink'" in unknown.json()["description"]
    assert fake_telegram.received() == [{"text": text, "entities": fits}]


def test_the_length_limit_applies_to_the_text_the_chat_shows(http, fake_telegram):
    assert send(http, fake_telegram, text="&lt;" * 4096, parse_mode="HTML").status_code == 200
    too_long = send(http, fake_telegram, text="&lt;" * 4097, parse_mode="HTML")
    assert too_long.json()["description"] == "Bad Request: message is too long"
    empty = send(http, fake_telegram, text="<b> </b>", parse_mode="HTML")
    assert empty.json()["description"] == "Bad Request: message text is empty"
