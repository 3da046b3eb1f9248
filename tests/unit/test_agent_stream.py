"""A streamed agent answer (README: Streaming replies): reading it, its named outcomes, and the drafts
a private chat is shown meanwhile (sendMessageDraft), against the loopback fakes."""

import gzip
import logging
import threading
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    AGENT_TOKEN,
    BOT_TOKEN,
    agent_server_fixture,
    envelope,
    fake_agent_fixture,
    fake_telegram_fixture,
    relay_fixture,
    telegram_server_fixture,
)
from fakes_fixtures import invoke_call_agent as invoke
from fakes_fixtures import raised_by_call_agent as raised

from tgrelay import call_agent, drafts, streaming
from tgrelay.errors import (
    AgentBadResponse,
    AgentStreamBroken,
    AgentStreamError,
    AgentStreamIdle,
    AgentTimeout,
    AgentUnavailable,
)
from tgrelay.replies import reply_from_agent
from tgrelay.text import utf16_len

ANSWER = "The quick brown fox jumps over the lazy dog and keeps on running far away."


# Generous: the machine may be busy; the tests that are about these timeouts set their own.
AGENT_TIMEOUT_SECONDS = 20
IDLE_SECONDS = 2.0


@pytest.fixture(autouse=True)
def _roomy_timeouts(request, monkeypatch):
    if "relay" in request.fixturenames:
        request.getfixturevalue("relay")  # its environment first, then these over it
        monkeypatch.setenv("AGENT_TIMEOUT_SECONDS", str(AGENT_TIMEOUT_SECONDS))
        monkeypatch.setenv("AGENT_STREAM_IDLE_SECONDS", str(IDLE_SECONDS))


def streamed(**fault) -> dict:
    """A fault that makes the echo agent stream `ANSWER` (or fault["reply"]) word by word, fast."""
    return {"reply": ANSWER, "stream": True, "word_delay": 0.005, **fault}


def draft_calls(relay) -> list[dict]:
    return [call for call in relay.telegram.calls_snapshot() if call["method"] == "sendMessageDraft"]


# --- reading the stream -----------------------------------------------------------------------------


def test_a_streamed_answer_is_the_deltas_joined_in_the_format_a_delta_names(relay, lambda_context):
    relay.agent.add_fault(streamed(reply="Some **bold** words here", format="markdown"))

    reply = invoke(envelope("group_text"), lambda_context)

    assert reply["text"] == "Some bold words here"
    assert reply["entities"] == [{"type": "bold", "offset": 5, "length": 4}]
    [call] = relay.agent.calls_snapshot()
    assert call["deltas"] == 4  # it was streamed, one delta per word


def test_a_reply_event_is_the_reply_whatever_the_deltas_said(relay, lambda_context):
    buttons = [[{"text": "More", "callback_data": "more"}]]
    relay.agent.add_fault(streamed(reply="<b>Done</b> now", parse_mode="HTML", buttons=buttons, reply_event=True))

    reply = invoke(envelope("group_text"), lambda_context)

    assert reply == {
        "text": "Done now",
        "entities": [{"type": "bold", "offset": 0, "length": 4}],
        "buttons": buttons,
    }


def test_an_error_event_is_agent_stream_error(relay, lambda_context):
    relay.agent.add_fault(streamed(error_after=3))

    error = raised(envelope("group_text"), lambda_context)

    assert type(error) is AgentStreamError
    assert "injected error" in str(error)


def test_an_error_event_saying_retryable_is_agent_unavailable(relay, lambda_context):
    relay.agent.add_fault(streamed(error_after=3, error_retryable=True))

    error = raised(envelope("group_text"), lambda_context)

    assert type(error) is AgentUnavailable
    assert "retryable error event" in str(error) and "injected error" in str(error)


@pytest.mark.parametrize(
    "data",
    ['{"retryable": "true"}', '{"retryable": 1}', '[{"retryable": true}]', "retryable: true", '{"retryable": false}'],
)
def test_only_retryable_exactly_true_makes_an_error_event_retried(data):
    with pytest.raises(AgentStreamError):
        read([f"event: error\ndata: {data}\n\n".encode()])


def test_a_stream_cut_off_mid_way_is_agent_stream_broken(relay, lambda_context):
    relay.agent.add_fault(streamed(break_after=4))

    error = raised(envelope("group_text"), lambda_context)

    assert type(error) is AgentStreamBroken
    assert "after 4 deltas" in str(error)


def test_silence_longer_than_the_idle_timeout_is_agent_stream_idle_long_before_the_attempt_timeout(
    relay, lambda_context
):
    # The attempt may take 20 s; the stream goes silent for 6 s after 2 words; the idle timeout is 2 s.
    relay.agent.add_fault(streamed(stall_after=2, stall=6.0))

    error = raised(envelope("group_text"), lambda_context)

    # Caught by the idle timeout (the body's read timeout): a reader that waited out the 6 s stall
    # (an idle timeout 3 x too long) would have the whole answer.
    assert type(error) is AgentStreamIdle
    assert "silent for more than 2 s" in str(error)


def test_a_stream_still_going_after_the_attempt_timeout_is_agent_timeout(relay, lambda_context, monkeypatch):
    # Every word comes within the idle timeout (2 s), but the answer (6 s) takes longer than the attempt may (1 s).
    monkeypatch.setenv("AGENT_TIMEOUT_SECONDS", "1")
    relay.agent.add_fault(streamed(reply="word " * 60, word_delay=0.1))

    assert type(raised(envelope("group_text"), lambda_context)) is AgentTimeout


def _agent_answers(relay, body: str) -> None:
    """The agent answers the next request with `body`, as a whole text/event-stream."""
    relay.agent.add_fault({"body": body, "content_type": "text/event-stream"})


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("event: delta\ndata: not json\n\n", "data is not JSON"),
        ("event: delta\ndata: [1]\n\n", "not a JSON object"),
        ('event: delta\ndata: {"text": 5}\n\n', "agent stream delta: text must be string (it is 5)"),
        (
            'event: delta\ndata: {"text": "a", "format": "bbcode"}\n\n',
            'agent stream delta: format is "bbcode"; the contract',
        ),
        ('event: reply\ndata: {"reply": 7}\n\n', "agent reply: reply must be string or null (it is 7)"),
    ],
)
def test_an_event_that_breaks_the_contract_is_agent_bad_response(relay, lambda_context, body, names):
    _agent_answers(relay, body)

    error = raised(envelope("group_text"), lambda_context)

    assert type(error) is AgentBadResponse
    assert names in str(error)


def test_comments_unknown_events_and_what_follows_a_reply_event_are_ignored(relay, lambda_context):
    _agent_answers(
        relay,
        ": keep-alive\n\nevent: ping\ndata: {}\n\nevent: done\ndata: not json\n\n"
        'event: delta\ndata: {"text": "Hello"}\n\nevent: delta\r\ndata: {"text": " there"}\r\n\r\n'
        'event: reply\ndata: {"reply": "Hello there!"}\n\nevent: error\ndata: {}\n\n',
    )

    assert invoke(envelope("group_text"), lambda_context) == {"text": "Hello there!"}


@pytest.mark.parametrize("name", ["", "event: message\n"], ids=["no event line", "event: message"])
def test_an_unnamed_event_is_a_delta(name):
    body = f'{name}data: {{"text": "The answer is 42."}}\n\n{name}data: {{"text": " Really.", "format": "text"}}\n\n'

    assert read([body.encode()]) == {"text": "The answer is 42. Really."}


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("data: [DONE]\n\n", "a `message` (no `event:` line: read as `event: delta`) event's data is not JSON"),
        ('data: {"choices": []}\n\n', "agent stream delta must contain ['text'] properties"),
    ],
)
def test_an_unnamed_event_that_is_not_a_delta_is_agent_bad_response(body, names):
    with pytest.raises(AgentBadResponse) as caught:
        read([body.encode()])

    assert names in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [b"", b": ping\n\n: ping\n\n", b"event: ping\ndata: {}\n\nid: 7\nretry: 100\n\n"],
    ids=["empty body", "comments only", "ignored events only"],
)
def test_a_stream_without_a_delta_or_a_reply_is_agent_bad_response_not_an_empty_answer(body):
    with pytest.raises(AgentBadResponse) as caught:
        read([body] if body else [])

    assert str(caught.value) == streaming.NO_ANSWER
    assert "`event: delta`" in str(caught.value) and "`event: reply`" in str(caught.value)


def test_empty_deltas_are_an_answer_with_nothing_to_say():
    assert read([b'event: delta\ndata: {"text": ""}\n\n']) == {"text": "(empty)"}


def test_the_agent_token_in_an_error_event_is_blanked(relay, lambda_context):
    _agent_answers(relay, f"event: error\ndata: bad auth {AGENT_TOKEN}\n\n")

    error = raised(envelope("group_text"), lambda_context)  # asserts the token is absent

    assert "bad auth [agent token]" in str(error)


def test_the_request_says_a_stream_is_welcome(relay, lambda_context):
    invoke(envelope("group_text"), lambda_context)

    [seen] = relay.agent.seen
    assert seen["headers"]["accept"] == "application/json, text/event-stream"


# --- reading a body that never completes, or too much of one (read_stream itself) ------------------------


def read(
    chunks: Iterable[bytes], *, seconds: float = 20.0, on_text: streaming.OnText | None = None, **headers: str
) -> dict:
    """read_stream of a text/event-stream body made of `chunks` (each read as it comes), within `seconds`."""
    headers = {"content-type": "text/event-stream", **headers}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers=headers, content=chunks))
    with httpx.Client(transport=transport) as client, client.stream("POST", "http://agent/") as response:
        return streaming.read_stream(
            response,
            on_text=on_text,
            idle_seconds=5.0,
            deadline=time.monotonic() + seconds,
            empty_text="(empty)",
            snippet=lambda text: text[:50],
        )


def trickle(
    first: bytes, then: bytes, *, gap: float = 0.01, count: int = 60, sent: list[bytes] | None = None
) -> Iterator[bytes]:
    """`first`, then `then` every `gap` seconds, `count` times (0.6 s at least by default: ends even
    unchecked); each chunk is appended to `sent` as it goes."""
    sent = [] if sent is None else sent
    sent.append(first)
    yield first
    for _ in range(count):
        time.sleep(gap)
        sent.append(then)
        yield then


HELLO = b'event: delta\ndata: {"text": "Hello"}\n\n'


@pytest.mark.parametrize(
    "then",
    [b": ping\n\n", b"data: more and more\n", b"an endless line "],
    ids=["comments", "data lines without the blank line", "one endless line"],
)
def test_bytes_that_never_make_an_event_do_not_keep_the_stream_past_its_deadline(then):
    sent: list[bytes] = []

    with pytest.raises(AgentTimeout):
        read(trickle(HELLO, then, sent=sent), seconds=0.2)

    # Given up while the body was still coming: it has 61 chunks and lasts 3 x the deadline at least
    # (the body is read in this thread, so a busy machine only makes it last longer).
    assert len(sent) < 61


@pytest.mark.parametrize(
    "then",
    [b"data: " + b"x" * 99_993 + b"\n", b"y" * 100_000],
    ids=["data lines without the blank line", "one endless line"],
)
def test_an_event_past_max_event_bytes_is_agent_bad_response(then):
    count = 2 * streaming.MAX_EVENT_BYTES // len(then)

    with pytest.raises(AgentBadResponse, match=f"more than {streaming.MAX_EVENT_BYTES} bytes without completing"):
        read(trickle(HELLO, then, gap=0, count=count))


def test_a_body_past_max_stream_bytes_is_agent_bad_response_though_each_event_is_small():
    then = b"event: ping\ndata: " + b"z" * 99_980 + b"\n\n"
    count = 2 * streaming.MAX_STREAM_BYTES // len(then)

    with pytest.raises(AgentBadResponse, match=f"longer than {streaming.MAX_STREAM_BYTES} bytes"):
        read(trickle(HELLO, then, gap=0, count=count))


def test_a_reply_just_under_the_caps_is_read():
    text = "a" * (streaming.MAX_EVENT_BYTES - 100)
    event = f'event: reply\ndata: {{"reply": "{text}"}}\n\n'.encode()

    assert read(trickle(HELLO * 1000, event, count=1))["text"].startswith("aaaa")


# --- drafts in a private chat -----------------------------------------------------------------------


def test_a_private_chat_sees_growing_drafts_ending_at_the_final_text(relay, lambda_context):
    relay.agent.add_fault(streamed(word_delay=0.02))

    reply = invoke(envelope("private_text"), lambda_context)

    texts = [payload["text"] for payload in relay.telegram.drafts()]
    assert len(texts) >= 2
    assert all(later.startswith(earlier) and later != earlier for earlier, later in zip(texts, texts[1:], strict=False))
    assert texts[-1] == reply["text"] == ANSWER
    assert {payload["chat_id"] for payload in relay.telegram.drafts()} == {284719365}
    [draft_id] = {payload["draft_id"] for payload in relay.telegram.drafts()}  # one draft, animated
    assert 0 < draft_id < 2**31
    assert relay.telegram.sent_messages() == []  # the final message is SendReply's


def test_drafts_are_rendered_in_the_format_a_delta_names(relay, lambda_context):
    relay.agent.add_fault(streamed(reply="Some **bold** words here", format="markdown", word_delay=0.02))

    invoke(envelope("private_text"), lambda_context)

    last = relay.telegram.drafts()[-1]
    assert (last["text"], last["entities"]) == ("Some bold words here", [{"type": "bold", "offset": 5, "length": 4}])


def test_drafts_come_at_most_once_per_interval(relay, lambda_context, monkeypatch):
    interval = 0.2
    monkeypatch.setenv("DRAFT_THROTTLE_SECONDS", str(interval))
    relay.agent.add_fault(streamed(reply="word " * 60, word_delay=0.01))  # 0.6 s of deltas

    made: list[drafts.Drafts] = []

    class Watched(drafts.Drafts):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    # Each draft's throttle stamp (the time.monotonic() it was taken at, + interval), read as it is
    # sent: the sender's own clock, so neither the machine's load nor the loopback shifts it.
    next_at: list[float] = []
    call = drafts.telegram.call

    def stamped(token, method, payload, **kwargs):
        if method == "sendMessageDraft":  # the module is shared with the typing indicator
            next_at.append(made[-1]._next_at)
        return call(token, method, payload, **kwargs)

    monkeypatch.setattr(call_agent, "Drafts", Watched)
    monkeypatch.setattr(drafts.telegram, "call", stamped)

    invoke(envelope("private_text"), lambda_context)

    assert len(next_at) == len(draft_calls(relay)) >= 3  # 60 deltas, a few drafts
    # A draft is taken only once the previous one's interval is over.
    assert min(later - earlier for earlier, later in zip(next_at, next_at[1:], strict=False)) >= interval


def test_a_long_throttle_does_not_hold_the_answer_back_for_a_last_draft(relay, lambda_context, monkeypatch):
    monkeypatch.setenv("DRAFT_THROTTLE_SECONDS", "30")
    relay.agent.add_fault(streamed(word_delay=0.02))
    made: list[drafts.Drafts] = []

    class Watched(drafts.Drafts):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(call_agent, "Drafts", Watched)

    assert invoke(envelope("private_text"), lambda_context)["text"] == ANSWER

    # finish() ended the drafts at once: its thread is over when the answer is passed on, not
    # waiting out the 30 s before the next draft (or the join's 6 s).
    (sender,) = made
    assert not sender._thread.is_alive()
    [draft] = relay.telegram.drafts()  # the first one only: the text so far when it left
    assert ANSWER.startswith(draft["text"]) and draft["text"] != ANSWER


def test_a_group_gets_no_drafts(relay, lambda_context):
    for sample in ("group_text", "forum_topic_text"):
        relay.agent.add_fault(streamed())
        assert invoke(envelope(sample), lambda_context)["text"] == ANSWER
    assert draft_calls(relay) == []


def test_a_draft_in_a_private_topic_names_its_thread(relay, lambda_context):
    update = {**envelope("private_text"), "thread_id": 77}
    relay.agent.add_fault(streamed())

    invoke(update, lambda_context)

    assert {payload.get("message_thread_id") for payload in relay.telegram.drafts()} == {77}


def test_typing_stops_once_the_first_draft_is_shown(relay, lambda_context, monkeypatch):
    monkeypatch.setattr(call_agent, "TYPING_INTERVAL_SECONDS", 0.03)
    # Typing for 0.5 s before the first word, then 0.6 s of words.
    relay.agent.add_fault(streamed(reply="word " * 30, word_delay=0.02, stall_after=0, stall=0.5))

    invoke(envelope("private_text"), lambda_context)

    calls = relay.telegram.calls_snapshot()
    first_draft = next(call["at"] for call in calls if call["method"] == "sendMessageDraft")
    typing = [call["at"] for call in calls if call["method"] == "sendChatAction"]
    assert len([at for at in typing if at < first_draft]) >= 2  # it was typing before
    # Stopped when the draft's answer came back: at most the actions sent meanwhile (a busy machine
    # may take a few of the 30 ms intervals for that); going on, 0.6 s of words would have had about 20.
    assert len([at for at in typing if at > first_draft]) <= 3


def test_refused_drafts_stop_the_drafts_not_the_turn_and_typing_goes_on(relay, lambda_context, monkeypatch):
    monkeypatch.setattr(call_agent, "TYPING_INTERVAL_SECONDS", 0.03)
    relay.telegram.add_fault({"method": "sendMessageDraft", "status": 400, "description": "Bad Request: nope"})
    relay.agent.add_fault(streamed(reply="word " * 30, word_delay=0.02))

    assert invoke(envelope("private_text"), lambda_context)["text"] == "word " * 30

    assert [call["status"] for call in draft_calls(relay)] == [400]  # one try, then no more this attempt
    calls = relay.telegram.calls_snapshot()
    refused = next(call["at"] for call in calls if call["method"] == "sendMessageDraft")
    assert len([call for call in calls if call["method"] == "sendChatAction" and call["at"] > refused]) >= 2


def test_a_rate_limited_draft_is_skipped_and_the_next_waits_as_asked(relay, lambda_context):
    relay.telegram.add_fault({"method": "sendMessageDraft", "status": 429, "retry_after": 1})
    relay.agent.add_fault(streamed(reply="word " * 75, word_delay=0.02))  # 1.5 s of deltas

    assert invoke(envelope("private_text"), lambda_context)["text"] == "word " * 75

    calls = draft_calls(relay)
    assert [call["status"] for call in calls[:2]] == [429, 200]
    assert calls[1]["at"] - calls[0]["at"] > 0.8  # retry_after: 1 s
    assert calls[-1]["status"] == 200 and calls[-1]["payload"]["text"] == "word " * 75


def test_drafts_that_fail_in_every_way_never_fail_the_turn_nor_log_the_token(relay, lambda_context, caplog):
    caplog.set_level(logging.INFO)
    relay.telegram.add_fault({"method": "sendMessageDraft", "status": 503, "count": 3})
    relay.telegram.add_fault({"method": "sendMessageDraft", "close": True, "count": 2})
    relay.agent.add_fault(streamed(word_delay=0.02))

    assert invoke(envelope("private_text"), lambda_context)["text"] == ANSWER

    assert [call["status"] for call in draft_calls(relay)][:3] == [503, 503, 503]
    # What tgrelay's own code logged (its messages and extra fields), not the libraries'.
    logged = " ".join(str(vars(record)) for record in caplog.records if "/tgrelay/" in record.pathname)
    assert "draft not shown" in logged
    assert BOT_TOKEN not in logged


def test_a_retried_attempt_starts_a_fresh_draft(relay, lambda_context):
    update = envelope("private_text")
    relay.agent.add_fault(streamed(break_after=10, word_delay=0.03))
    assert type(raised(update, lambda_context)) is AgentStreamBroken
    relay.agent.add_fault(streamed(word_delay=0.02))

    assert invoke(update, lambda_context)["text"] == ANSWER

    ids = [payload["draft_id"] for payload in relay.telegram.drafts()]
    first, second = ids[0], ids[-1]
    assert first != second
    assert ids == [first] * ids.count(first) + [second] * ids.count(second)  # the first attempt's, then the second's
    assert [p["text"] for p in relay.telegram.drafts() if p["draft_id"] == second][-1] == ANSWER


def test_a_json_answer_in_a_private_chat_makes_no_drafts(relay, lambda_context):
    assert invoke(envelope("private_text"), lambda_context)["text"].startswith("echo: ")
    assert draft_calls(relay) == []


# --- what one draft shows ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt"),
    [("Some **bold** and `code`", "markdown"), ("<b>b</b> <i>i</i>", "html"), ("*b* _i_", "markdownv2")],
)
def test_a_draft_is_rendered_like_the_final_message(text, fmt):
    final = reply_from_agent({"reply": text, "format": fmt}, empty_text="-")

    payload = drafts.draft_payload({"chat_id": 5}, 9, text, fmt)

    assert payload == {"chat_id": 5, "draft_id": 9, "text": final["text"], "entities": final["entities"]}


def test_markup_that_does_not_parse_yet_and_blank_text_make_no_draft():
    assert drafts.draft_payload({"chat_id": 5}, 9, "<b>still op", "html") is None
    assert drafts.draft_payload({"chat_id": 5}, 9, "  \n", "text") is None
    assert drafts.draft_payload({"chat_id": 5}, 9, "<b>closed</b> now", "html") is not None


def test_a_long_draft_shows_the_last_4096_utf16_units():
    text = "🙂" + "a" * 4092 + "**end**"  # rendered: 2 + 4092 + 3 = 4097 units; the cut falls inside the emoji
    payload = drafts.draft_payload({"chat_id": 5}, 9, text, "markdown")

    assert payload is not None
    assert payload["text"] == "a" * 4092 + "end"  # the emoji is left out whole, never cut in half
    assert payload["entities"] == [{"type": "bold", "offset": utf16_len(payload["text"]) - 3, "length": 3}]


# --- the fake Bot API's sendMessageDraft ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "description"),
    [
        ({"chat_id": 5, "draft_id": 0, "text": "x"}, "Bad Request: RANDOM_ID_INVALID"),
        ({"chat_id": 5, "text": "x"}, "Bad Request: RANDOM_ID_INVALID"),
        ({"chat_id": -1001, "draft_id": 3, "text": "x"}, "Bad Request: TEXTDRAFT_PEER_INVALID"),
        ({"chat_id": 5, "draft_id": 3, "text": ""}, "Bad Request: message text is empty"),
        ({"chat_id": 5, "draft_id": 3, "text": "x" * 4097}, "Bad Request: message is too long"),
    ],
)
def test_the_fake_bot_api_refuses_drafts_as_telegram_does(fake_telegram, payload, description):
    answer = httpx.post(f"{fake_telegram.url}/bot{BOT_TOKEN}/sendMessageDraft", json=payload, timeout=5)

    assert (answer.status_code, answer.json()["description"]) == (400, description)
    assert fake_telegram.drafts() == []


def test_the_fake_bot_api_records_an_accepted_draft(fake_telegram):
    payload = {"chat_id": 5, "draft_id": 3, "text": "hello", "message_thread_id": 2}

    answer = httpx.post(f"{fake_telegram.url}/bot{BOT_TOKEN}/sendMessageDraft", json=payload, timeout=5)

    assert answer.json() == {"ok": True, "result": True}
    assert fake_telegram.drafts(5) == [payload]


def test_a_big_chunk_of_small_events_is_not_one_big_event():
    # 30,000 deltas (1 MB) gzip-encoded: httpx decodes them in chunks far bigger than what was read.
    events = b'event: delta\ndata: {"text": "a"}\n\n' * 30_000

    reply = read([gzip.compress(events)], **{"content-encoding": "gzip"})

    assert reply["text"].startswith("aaaa")  # cut at MAX_REPLY_UNITS like any long answer


DELTA = b'event: delta\ndata: {"text": "a"}\n\n'


def test_a_delta_hands_on_the_text_so_far_without_copying_it():
    kept: list = []
    count = 4000
    body = DELTA * count
    tracemalloc.start()
    try:
        reply = read([body], on_text=lambda text, fmt: kept.append(text))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    assert reply == {"text": "a" * count}
    assert [kept[index]() for index in (0, 1999, count - 1)] == ["a", "a" * 2000, "a" * count]
    # Copies of the text so far at each delta would hold count²/2 bytes (8 MB).
    assert held < 2_000_000, held


def test_drafts_join_the_text_only_for_a_draft_they_send(monkeypatch):
    monkeypatch.setenv("DRAFT_THROTTLE_SECONDS", "30")
    sent: list[str] = []
    monkeypatch.setattr(drafts.telegram, "call", lambda token, method, payload, timeout: sent.append(payload["text"]))
    joined: list[int] = []

    def text_so_far(length: int):
        def text() -> str:
            joined.append(length)
            return "a" * length

        return text

    shown = threading.Event()
    sender = drafts.Drafts("token", {"chat_id": 5}, on_shown=shown.set)
    sender.show(text_so_far(1), "text")
    assert shown.wait(5)
    for length in range(2, 2001):
        sender.show(text_so_far(length), "text")
    sender.finish()  # the next draft would wait 30 s: not sent

    assert sent == ["a"]
    assert joined == [1]


def test_the_readme_states_the_stream_caps():
    readme = (Path(__file__).parents[2] / "README.md").read_text()

    assert f"at most {streaming.MAX_EVENT_BYTES:,} bytes between two complete events" in readme
    assert f"and {streaming.MAX_STREAM_BYTES:,} bytes in all" in readme
