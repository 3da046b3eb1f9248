"""A streamed agent answer: `200` with `Content-Type: text/event-stream` (README: Streaming replies).

Events (parsed by httpx-sse, which follows the HTML standard's event-stream rules):
    event: delta   data: {"text": "<next piece>", "format"?: ..., "parse_mode"?: ...}
    event: reply   data: the usual JSON reply object (replies.reply_from_agent); ends the answer
    event: error   data: anything (its start is quoted in the error); the agent could not finish
Other event names (e.g. a `ping`) and comment lines are ignored. Without a `reply` event the
reply is the deltas joined, in the format the last delta naming one gave (plain text if none),
once the response body ends.

Outcomes, each an error name of the ASL: an `error` event is AgentStreamError, a connection lost
before the body's end AgentStreamBroken, no bytes for AGENT_STREAM_IDLE_SECONDS AgentStreamIdle, an
answer still going after AGENT_TIMEOUT_SECONDS (checked at each event) AgentTimeout, an event whose
data breaks the contract AgentBadResponse.
"""

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import EventSource

from tgrelay.errors import AgentBadResponse, AgentStreamBroken, AgentStreamError, AgentStreamIdle, AgentTimeout
from tgrelay.replies import answer_format, reply_from_agent

EVENT_STREAM = "text/event-stream"
# The fields of a delta or a reply object that name the answer's format.
FORMAT_FIELDS = ("format", "parse_mode")

# (text so far, its format: one of formatting.FORMATS) after each delta.
OnText = Callable[[str, str], None]


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
) -> dict:
    """The reply (replies.reply_from_agent's shape) of the streamed answer `response`, whose
    headers have arrived and whose body is read here. `on_text(text so far, format)` is called
    after each delta (its exceptions propagate: it must not raise). `deadline` is a
    time.monotonic() value (the attempt's AGENT_TIMEOUT_SECONDS); `idle_seconds` the longest
    silence between two reads of the body. `snippet(text)` shortens a quoted text (token blanked).

    Raises AgentStreamError, AgentStreamBroken, AgentStreamIdle, AgentTimeout, AgentBadResponse
    (module docstring)."""
    # The body's reads wait at most idle_seconds each. httpcore reads the read timeout when the
    # body's first read starts (httpcore 1.x, HTTP11Connection._receive_response_body), after the
    # headers were awaited with AGENT_TIMEOUT_SECONDS; tests/unit/test_agent_stream.py shows it.
    response.request.extensions["timeout"] = {**response.request.extensions.get("timeout", {}), "read": idle_seconds}
    pieces: list[str] = []
    fields: dict[str, Any] = {}
    fmt = "text"
    try:
        for event in EventSource(response).iter_sse():
            if time.monotonic() > deadline:
                raise AgentTimeout("agent stream did not end within the per-attempt timeout (AgentTimeoutSeconds)")
            if event.event == "delta":
                data = _event_data(event.data, "delta", snippet)
                text = data.get("text")
                if not isinstance(text, str):
                    raise AgentBadResponse(f'agent stream: a delta\'s "text" is not a string: {snippet(event.data)!r}')
                if any(data.get(field) is not None for field in FORMAT_FIELDS):
                    fmt = answer_format(data)
                    fields = {field: data[field] for field in FORMAT_FIELDS if field in data}
                pieces.append(text)
                if on_text is not None and text:
                    on_text("".join(pieces), fmt)
            elif event.event == "reply":
                return reply_from_agent(_event_data(event.data, "reply", snippet), empty_text=empty_text)
            elif event.event == "error":
                raise AgentStreamError(f"agent stream sent an error event: {snippet(event.data)!r}")
    except httpx.TimeoutException:
        raise AgentStreamIdle(f"agent stream was silent for more than {idle_seconds:g} s") from None
    except httpx.HTTPError as error:
        # The class name only, as for the request itself (agent.py).
        raise AgentStreamBroken(f"agent stream broke off after {len(pieces)} deltas ({type(error).__name__})") from None
    return reply_from_agent({"reply": "".join(pieces), **fields}, empty_text=empty_text)


def _event_data(data: str, name: str, snippet: Callable[[str], str]) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        raise AgentBadResponse(f"agent stream: a {name} event's data is not JSON: {snippet(data)!r}") from None
    if not isinstance(value, dict):
        raise AgentBadResponse(f"agent stream: a {name} event's data is not a JSON object: {snippet(data)!r}")
    return value
