"""A streamed agent answer: `200` with `Content-Type: text/event-stream` (README: Streaming replies).

Events (parsed by httpx-sse, which follows the HTML standard's event-stream rules):
    event: delta   data: {"text": "<next piece>", "format"?: ..., "parse_mode"?: ...} (the schema's stream_delta)
    event: reply   data: the usual JSON reply object (replies.reply_from_agent); ends the answer
    event: error   data: anything (its start is quoted in the error); the agent could not finish.
                   Terminal unless the data is a JSON object with "retryable": true (a passing
                   trouble the agent knows of: AgentUnavailable, retried).
An event without an `event:` line (the SSE default type, `message`: the shape most LLM servers
send) is read as a delta. Other event names (e.g. a `ping`) and comment lines are ignored.
Without a `reply` event the reply is the deltas joined, in the format the last delta naming one
gave (plain text if none), once the response body ends; a body that ends with neither a delta nor
a `reply` is AgentBadResponse, never an empty answer.

Outcomes, each an error name of the ASL: an `error` event is AgentStreamError (AgentUnavailable
when it says "retryable": true), a connection lost
before the body's end AgentStreamBroken, no bytes for AGENT_STREAM_IDLE_SECONDS AgentStreamIdle, an
answer still going after AGENT_TIMEOUT_SECONDS (checked at each chunk of the body read, so bytes
that never make an event do not keep it going) AgentTimeout, an event whose data breaks the
contract, or a body past MAX_EVENT_BYTES without an event or past MAX_STREAM_BYTES in all,
AgentBadResponse.
"""

import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, cast

import httpx
from httpx_sse import EventSource

from tgrelay.contract import check
from tgrelay.errors import (
    AgentBadResponse,
    AgentStreamBroken,
    AgentStreamError,
    AgentStreamIdle,
    AgentTimeout,
    AgentUnavailable,
)
from tgrelay.replies import MAX_REPLY_BYTES, answer_format, reply_from_agent
from tgrelay.shapes import Reply, StreamDelta

EVENT_STREAM = "text/event-stream"
# The fields of a delta or a reply object that name the answer's format.
FORMAT_FIELDS = ("format", "parse_mode")

# The most bytes (of the body as decoded, Content-Encoding undone) read since the last complete
# event: a `reply` event carries the whole answer at most. What tgrelay keeps of an answer is
# MAX_REPLY_UNITS of shown text and MAX_REPLY_BYTES of state (replies.py); 4 x MAX_REPLY_BYTES
# holds the source of any answer that fits, even one written wholly as JSON \uXXXX escapes (6 bytes
# a UTF-16 unit: 196,608 bytes for MAX_REPLY_UNITS) with as much markup again. Checked per
# CHECK_BYTES read, so the count is right to within that.
MAX_EVENT_BYTES = 4 * MAX_REPLY_BYTES
# The body is checked (deadline, sizes) and parsed in pieces of at most this many bytes: httpcore's
# own read size. A bigger chunk (a gzip-encoded body decodes into several) is cut up first, so the
# events in one piece are complete before the next piece is counted as pending.
CHECK_BYTES = 64 * 1024
# The most bytes of the whole body: the answer twice (deltas, then a `reply` event) with the SSE
# framing of its deltas (33 bytes a delta: a delta per character of a MAX_REPLY_UNITS answer is
# 1.1 MB). Bounds the memory of the pieces kept (CallAgent has 256 MB) and the rendering time.
MAX_STREAM_BYTES = 16 * MAX_REPLY_BYTES
# The event names read as a delta: `message` is what an event without an `event:` line is (the
# HTML standard's default type), as most LLM SSE servers send them.
DELTA_EVENTS = ("delta", "message")
NO_ANSWER = (
    'agent stream ended without an answer: no `event: delta` (data {"text": ...}) and no `event: reply`'
    " (README: Streaming replies)"
)
# The answer so far, joined when called: a delta costs O(1), and only a draft that is actually
# sent (drafts.py: one per DraftThrottleSeconds) pays for joining, so N deltas are not O(N²).
TextSoFar = Callable[[], str]
# (text so far, its format: one of formatting.FORMATS) after each delta.
OnText = Callable[[TextSoFar, str], None]


def is_event_stream(response: httpx.Response) -> bool:
    """True when the answer is a stream (Content-Type text/event-stream, parameters ignored)."""
    return response.headers.get("content-type", "").partition(";")[0].strip().lower() == EVENT_STREAM


def read_stream(
    response: httpx.Response,
    *,
    on_text: OnText | None,
    idle_seconds: float,
    deadline: float,
    empty_text: str,
    snippet: Callable[[str], str],
) -> Reply:
    """The reply (replies.reply_from_agent's shape) of the streamed answer `response`, whose
    headers have arrived and whose body is read here. `on_text(text so far, format)` is called
    after each delta that adds text; `text so far()` joins the deltas up to that one when called
    (TextSoFar). Its exceptions propagate: it must not raise. `deadline` is a
    time.monotonic() value (the attempt's AGENT_TIMEOUT_SECONDS); `idle_seconds` the longest
    silence between two reads of the body. `snippet(text)` shortens a quoted text (token blanked).

    Raises AgentStreamError, AgentStreamBroken, AgentStreamIdle, AgentTimeout, AgentBadResponse
    (module docstring)."""
    # The body's reads wait at most idle_seconds each. httpcore reads the read timeout when the
    # body's first read starts (httpcore 1.x, HTTP11Connection._receive_response_body), after the
    # headers were awaited with AGENT_TIMEOUT_SECONDS; tests/unit/test_agent_stream.py shows it.
    response.request.extensions["timeout"] = {**response.request.extensions.get("timeout", {}), "read": idle_seconds}
    body = _Body(response, deadline)
    # httpx-sse reads `checked`: the same body, its chunks counted and timed as they come.
    checked = httpx.Response(200, headers={"content-type": response.headers["content-type"]}, content=body.chunks())
    pieces: list[str] = []
    fields: dict[str, Any] = {}
    fmt = "text"
    try:
        for event in EventSource(checked).iter_sse():
            body.pending = 0
            if event.event == "message" and not event.data:
                # Only `id:` or `retry:` fields: the HTML standard dispatches no event (httpx-sse does).
                continue
            if event.event in DELTA_EVENTS:
                data = _event_data(event.data, _DELTA_NAMES[event.event], snippet)
                check(data, "agent stream delta", definition="stream_delta")
                delta = cast(StreamDelta, data)  # checked: the schema's stream_delta
                text = delta["text"]
                if any(delta.get(field) is not None for field in FORMAT_FIELDS):
                    fmt = answer_format(delta)
                    fields = {field: data[field] for field in FORMAT_FIELDS if field in data}
                pieces.append(text)
                if on_text is not None and text:
                    on_text(partial(_joined, pieces, len(pieces)), fmt)
            elif event.event == "reply":
                return reply_from_agent(_event_data(event.data, "reply", snippet), empty_text=empty_text)
            elif event.event == "error":
                if _retryable(event.data):
                    raise AgentUnavailable(f"agent stream sent a retryable error event: {snippet(event.data)!r}")
                raise AgentStreamError(f"agent stream sent an error event: {snippet(event.data)!r}")
    except httpx.TimeoutException:
        raise AgentStreamIdle(f"agent stream was silent for more than {idle_seconds:g} s") from None
    except httpx.HTTPError as error:
        # The class name only, as for the request itself (agent.py).
        raise AgentStreamBroken(f"agent stream broke off after {len(pieces)} deltas ({type(error).__name__})") from None
    if not pieces:
        raise AgentBadResponse(NO_ANSWER)
    return reply_from_agent({"reply": "".join(pieces), **fields}, empty_text=empty_text)


def _joined(pieces: list[str], count: int) -> str:
    """The first `count` pieces joined (the list may have grown since: later ones are left out)."""
    return "".join(pieces[:count])


# How an error names the event it quotes.
_DELTA_NAMES = {"delta": "delta", "message": "`message` (no `event:` line: read as `event: delta`)"}


class _Body:
    """The streamed body's chunks (decoded bytes), each checked as it comes: the deadline, the bytes
    since the last event (`pending`, which read_stream zeroes at each event) and in all."""

    def __init__(self, response: httpx.Response, deadline: float):
        self.response = response
        self.deadline = deadline
        self.pending = 0
        self.total = 0

    def chunks(self) -> Iterator[bytes]:
        for whole in self.response.iter_bytes():
            for start in range(0, len(whole), CHECK_BYTES):
                yield self._checked(whole[start : start + CHECK_BYTES])

    def _checked(self, chunk: bytes) -> bytes:
        self.pending += len(chunk)
        self.total += len(chunk)
        if time.monotonic() > self.deadline:
            raise AgentTimeout("agent stream did not end within the per-attempt timeout (AgentTimeoutSeconds)")
        if self.pending > MAX_EVENT_BYTES:
            raise AgentBadResponse(f"agent stream sent more than {MAX_EVENT_BYTES} bytes without completing an event")
        if self.total > MAX_STREAM_BYTES:
            raise AgentBadResponse(f"agent stream is longer than {MAX_STREAM_BYTES} bytes")
        return chunk


def _retryable(data: str) -> bool:
    """True when an `error` event's data is a JSON object saying "retryable": true (exactly)."""
    try:
        value = json.loads(data)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("retryable") is True


def _event_data(data: str, name: str, snippet: Callable[[str], str]) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        raise AgentBadResponse(f"agent stream: a {name} event's data is not JSON: {snippet(data)!r}") from None
    if not isinstance(value, dict):
        raise AgentBadResponse(f"agent stream: a {name} event's data is not a JSON object: {snippet(data)!r}")
    return value
