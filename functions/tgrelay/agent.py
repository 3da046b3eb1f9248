"""The agent server client: the request the contract (README) promises, one POST, and every
outcome named by the error classes the ASL retries or catches."""

import json
import os
import time

import httpx

from tgrelay import clients
from tgrelay.envelope import session_key
from tgrelay.errors import AgentBadResponse, AgentRejected, AgentTimeout, AgentUnavailable
from tgrelay.replies import reply_from_agent
from tgrelay.reply_files import on_private_address, under_prefix
from tgrelay.secrets import secret_field
from tgrelay.settings import number_setting, setting
from tgrelay.shapes import AgentFile, AgentMessage, AgentRequest, Envelope, Reply
from tgrelay.streaming import EVENT_STREAM, MAX_EVENT_BYTES, OnText, is_event_stream, read_stream


def agent_request(envelope: Envelope, attachments: list[AgentFile] | None = None) -> AgentRequest:
    """The JSON body the agent server receives (contract/agent-request.schema.json, which
    tests/unit/test_contract.py holds this to). `messages` lists every
    message of the turn in order: this update's, then those merged into its turn
    (envelope["merged"], QueuedMessages=merge); `text` is their non-empty texts joined by newlines.
    A message's location, venue or contact rides in its `messages` entry; `attachments` are the
    turn's files as attachments.files_for_agent gives them (present only when there are some)."""
    turn = [envelope, *(envelope.get("merged") or [])]
    request: AgentRequest = {
        "update_id": envelope["update_id"],
        "session_key": session_key(envelope),
        "text": "\n".join(message["text"] for message in turn if message["text"]),
        "messages": [_message(message) for message in turn],
        "kind": envelope["kind"],
        "chat": {"id": envelope["chat_id"], "type": envelope.get("chat_type"), "thread_id": envelope.get("thread_id")},
        "user": envelope.get("sender"),
        "message_id": envelope["message_id"],
    }
    if attachments:
        request["attachments"] = attachments
    return request


def _message(message: Envelope) -> AgentMessage:
    entry: AgentMessage = {
        "update_id": message["update_id"],
        "message_id": message["message_id"],
        "kind": message["kind"],
        "text": message["text"],
    }
    if "location" in message:
        entry["location"] = message["location"]
    if "venue" in message:
        entry["venue"] = message["venue"]
    if "contact" in message:
        entry["contact"] = message["contact"]
    return entry


def ask_agent(request: AgentRequest, on_text: OnText | None = None) -> Reply:
    """POST `request` to the agent server; the reply (replies.reply_from_agent) or a named error.

    A streamed answer (text/event-stream, streaming.read_stream) calls `on_text(text so far,
    format)` after each delta; a JSON answer is read whole (_read_answer: within the deadline, at most
    MAX_EVENT_BYTES). Either
    way the reply's attachments are marked `agent_origin` here (marked_origins)."""
    timeout = number_setting("AGENT_TIMEOUT_SECONDS")
    deadline = time.monotonic() + timeout
    # Says the agent may stream; a JSON answer is read the same as ever.
    headers = {"accept": f"application/json, {EVENT_STREAM}"}
    token = secret_field("agent_token", required=False)
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        with clients.http().stream(
            "POST",
            setting("AGENT_URL"),
            json=request,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        ) as response:
            if response.status_code == 200 and is_event_stream(response):
                reply = read_stream(
                    response,
                    on_text=on_text,
                    idle_seconds=number_setting("AGENT_STREAM_IDLE_SECONDS"),
                    deadline=deadline,
                    empty_text=setting("EMPTY_REPLY_TEXT"),
                    snippet=lambda text: _blanked(text[:300], token),
                )
            else:
                reply = _json_reply(response, _read_answer(response, deadline), token)
    except httpx.ConnectTimeout:
        raise AgentUnavailable("could not connect to the agent server in time") from None
    except httpx.TimeoutException:
        raise AgentTimeout(f"agent server did not answer within {timeout:g} s") from None
    except httpx.HTTPError as error:
        # The class name only: some httpx messages quote the request's headers, token included.
        raise AgentUnavailable(f"agent server unreachable ({type(error).__name__})") from None
    # One place for both answers: a streamed `reply` event's attachments are marked as a JSON answer's.
    return marked_origins(reply)


def _read_answer(response: httpx.Response, deadline: float) -> bytes:
    """A JSON (not streamed) answer's body, checked per chunk as a stream's is: AgentTimeout once
    `deadline` (time.monotonic()) has passed - a body that drips is not read past
    AgentTimeoutSeconds - and AgentBadResponse past MAX_EVENT_BYTES, the most a stream's one
    `reply` event may carry (the same answer as JSON; streaming.py says why it is enough)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        if time.monotonic() > deadline:
            raise AgentTimeout("agent answer did not end within the per-attempt timeout (AgentTimeoutSeconds)")
        body += chunk
        if len(body) > MAX_EVENT_BYTES:
            raise AgentBadResponse(f"agent answer is longer than {MAX_EVENT_BYTES} bytes")
    return bytes(body)


def _json_reply(response: httpx.Response, body: bytes, token: str = "") -> Reply:
    """The reply (replies.reply_from_agent, attachments not yet marked) of the agent's answer
    `response` with its `body` (read whole, not a stream); AgentUnavailable (429, 5xx),
    AgentRejected (other 4xx), AgentBadResponse (another status, or a 200 that is not the
    contract's JSON)."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise AgentUnavailable(f"agent server answered {status}")
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if 400 <= status < 500:
        raise AgentRejected(f"agent server answered {status}: {_blanked(text[:300], token)}")
    if status != 200:
        raise AgentBadResponse(f"agent server answered {status}, expected 200")
    try:
        parsed = json.loads(body)
    except ValueError:
        raise AgentBadResponse(f"agent reply is not JSON: {_blanked(text[:300], token)!r}") from None
    return reply_from_agent(parsed, empty_text=setting("EMPTY_REPLY_TEXT"))


def _blanked(text: str, token: str) -> str:
    return text.replace(token, "[agent token]") if token else text


def marked_origins(reply: Reply) -> Reply:
    """`reply` (JSON or streamed) with each attachment marked for SendReply (reply_files.py):
    `agent_origin`, its URL is under AGENT_FILES_URL (AgentFilesUrl; empty or unset: never), so
    the agent token goes along; `private_hosts`, AGENT_URL's host is on a loopback or private
    address (reply_files.on_private_address), so such addresses may be fetched. Decided here:
    SendReply's environment has neither setting (Lambda's 4 KB of environment)."""
    files = reply.get("attachments", [])
    if files:
        prefix = os.environ.get("AGENT_FILES_URL", "")
        private = on_private_address(setting("AGENT_URL"))
        for file in files:
            file["agent_origin"] = under_prefix(file["url"], prefix)
            file["private_hosts"] = private
    return reply
