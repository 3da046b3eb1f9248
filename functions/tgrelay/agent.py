"""The agent server client: the request the contract (README) promises, one POST, and every
outcome named by the error classes the ASL retries or catches."""

import httpx

from tgrelay import clients
from tgrelay.envelope import session_key
from tgrelay.errors import AgentBadResponse, AgentRejected, AgentTimeout, AgentUnavailable
from tgrelay.replies import reply_from_agent
from tgrelay.secrets import secret_field
from tgrelay.settings import number_setting, setting
from tgrelay.shapes import Envelope


def agent_request(update: Envelope, attachments: list[dict] | None = None) -> dict:
    """The JSON body the agent server receives (contract in README.md). `messages` lists every
    message of the turn in order: this update's, then those merged into its turn
    (update["merged"], QueuedMessages=merge); `text` is their non-empty texts joined by newlines.
    A message's location, venue or contact rides in its `messages` entry; `attachments` are the
    turn's files as attachments.files_for_agent gives them (present only when there are some)."""
    turn = [update, *(update.get("merged") or [])]
    request = {
        "update_id": update["update_id"],
        "session_key": session_key(update),
        "text": "\n".join(message["text"] for message in turn if message["text"]),
        "messages": [_message(message) for message in turn],
        "kind": update["kind"],
        "chat": {"id": update["chat_id"], "type": update.get("chat_type"), "thread_id": update.get("thread_id")},
        "user": update.get("sender"),
        "message_id": update["message_id"],
    }
    if attachments:
        request["attachments"] = attachments
    return request


def _message(message: Envelope) -> dict:
    entry: dict = {key: message[key] for key in ("update_id", "message_id", "kind", "text")}
    entry.update({key: message[key] for key in ("location", "venue", "contact") if key in message})
    return entry


def ask_agent(request: dict) -> dict:
    """POST `request` to the agent server; the reply (replies.reply_from_agent) or a named error."""
    timeout = number_setting("AGENT_TIMEOUT_SECONDS")
    headers = {}
    token = secret_field("agent_token", required=False)
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = clients.http().post(
            setting("AGENT_URL"),
            json=request,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        )
    except httpx.ConnectTimeout:
        raise AgentUnavailable("could not connect to the agent server in time") from None
    except httpx.TimeoutException:
        raise AgentTimeout(f"agent server did not answer within {timeout:g} s") from None
    except httpx.HTTPError as error:
        # The class name only: some httpx messages quote the request's headers, token included.
        raise AgentUnavailable(f"agent server unreachable ({type(error).__name__})") from None

    status = response.status_code
    if status == 429 or status >= 500:
        raise AgentUnavailable(f"agent server answered {status}")
    if 400 <= status < 500:
        raise AgentRejected(f"agent server answered {status}: {_snippet(response, token)}")
    if status != 200:
        raise AgentBadResponse(f"agent server answered {status}, expected 200")
    return parse_agent_reply(response, token)


def _snippet(response: httpx.Response, token: str) -> str:
    """The start of the agent's answer for the error message (it reaches execution history
    and the DLQ), with the token blanked in case the agent echoes its request headers."""
    text = response.text[:300]
    return text.replace(token, "[agent token]") if token else text


def parse_agent_reply(response: httpx.Response, token: str = "") -> dict:
    try:
        body = response.json()
    except ValueError:
        raise AgentBadResponse(f"agent reply is not JSON: {_snippet(response, token)!r}") from None
    return reply_from_agent(body, empty_text=setting("EMPTY_REPLY_TEXT"))
