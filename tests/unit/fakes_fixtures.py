"""Fixtures for the CallAgent / SendReply / Telegram-client tests: the loopback fakes as HTTP peers.

Import the fixtures explicitly in a test module (they are not in conftest.py):

    from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
        agent_server_fixture, fake_agent_fixture, fake_telegram_fixture, relay_fixture, telegram_server_fixture,
    )

(the session-scoped servers too: pytest resolves a fixture's own fixtures from the test's module).

`relay` builds on conftest.py's `aws` fixture (moto, the bot secret, the turns table, caches cleared)
and adds the claim table (both as template.yaml declares them), the secret values these tests use,
and the environment CallAgentFunction and SendReplyFunction read, pointed at a FakeTelegram and a
FakeAgent on 127.0.0.1.
"""

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from unit_helpers import CLAIMS_TABLE_NAME, DEDUPE_TTL_SECONDS, SAMPLE_RECEIVED_AT, create_table, hold_turn, update

from tgrelay import call_agent, clients
from tgrelay.envelope import envelope_from_update
from tgrelay_local.fakes import FakeAgent, FakeServer, FakeTelegram

BOT_TOKEN = "123456:TEST-bot-token"
AGENT_TOKEN = "agent-secret-token"
SECRET = {"bot_token": BOT_TOKEN, "webhook_secret": "whsec", "agent_token": AGENT_TOKEN}
TABLE_NAME = CLAIMS_TABLE_NAME
EMPTY_REPLY_TEXT = "The agent had nothing to say this time."
APOLOGY_TEXT = "Sorry, I could not answer that message. Please try again later."
AGENT_TIMEOUT_SECONDS = 0.5
AGENT_STREAM_IDLE_SECONDS = 0.3
DRAFT_THROTTLE_SECONDS = 0.05


def envelope(name: str = "private_text") -> dict:
    """The envelope the webhook would enqueue for events/telegram/<name>.json."""
    return envelope_from_update(update(name), received_at=SAMPLE_RECEIVED_AT, ttl_seconds=DEDUPE_TTL_SECONDS)


# The execution CallAgent runs for in these tests (it holds the conversation's turn).
CALL_AGENT_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tgrelay-relay:0f6c2d7e"


def invoke_call_agent(update: dict, context) -> dict:
    """CallAgent of an execution that holds its conversation's turn (WaitForTurn granted it)."""
    hold_turn(update, CALL_AGENT_EXECUTION)
    return call_agent.handler({"update": update, "execution": CALL_AGENT_EXECUTION}, context)


def raised_by_call_agent(update: dict, context) -> Exception:
    """The exception CallAgent raised; its message must never carry the agent token."""
    with pytest.raises(Exception) as caught:
        invoke_call_agent(update, context)
    error = caught.value
    assert AGENT_TOKEN not in str(error)
    assert AGENT_TOKEN not in repr(error)
    return error


def closed_port_url() -> str:
    """http://127.0.0.1:<port> where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class RecordingAgent(FakeAgent):
    """The echo agent, also remembering each request's path and headers (FakeAgent records bodies only)."""

    def __init__(self, token: str = ""):
        super().__init__(token)
        self.seen: list[dict[str, Any]] = []
        self._seen_lock = threading.Lock()

    def handle(self, path: str, body: Any, headers: dict) -> tuple[int, Any]:
        with self._seen_lock:
            self.seen.append({"path": path, "headers": dict(headers)})
        return super().handle(path, body, headers)


# The fakes run for the whole session and are reset before each test: stopping one waits out its
# server's shutdown poll (http_api.SHUTDOWN_POLL_SECONDS), which per test would add up. Every module
# that imports the session fixtures gets its own fixture definition, so the servers themselves are
# shared here.
_servers: dict[str, FakeServer] = {}


def _shared_server(kind: str, make) -> FakeServer:
    if kind not in _servers:
        _servers[kind] = make().start()
    return _servers[kind]


def _stop_server(kind: str) -> None:
    server = _servers.pop(kind, None)
    if server is not None:
        # Not joined: the stop overlaps the rest of the teardown; the interpreter waits for it at exit.
        threading.Thread(target=server.stop, name=f"stop-{kind}").start()


@pytest.fixture(name="telegram_server", scope="session")
def telegram_server_fixture() -> Iterator[FakeTelegram]:
    yield _shared_server("telegram", lambda: FakeTelegram(BOT_TOKEN))
    _stop_server("telegram")


@pytest.fixture(name="agent_server", scope="session")
def agent_server_fixture() -> Iterator["RecordingAgent"]:
    yield _shared_server("agent", lambda: RecordingAgent(AGENT_TOKEN))
    _stop_server("agent")


@pytest.fixture(name="fake_telegram")
def fake_telegram_fixture(telegram_server) -> FakeTelegram:
    """A FakeTelegram for BOT_TOKEN with no calls and no faults."""
    telegram_server.reset()
    telegram_server.token = BOT_TOKEN
    return telegram_server


@pytest.fixture(name="fake_agent")
def fake_agent_fixture(agent_server) -> "RecordingAgent":
    """A FakeAgent requiring AGENT_TOKEN, with no calls and no faults."""
    agent_server.reset()
    agent_server.seen.clear()
    agent_server.token = AGENT_TOKEN
    return agent_server


def _drop_http_client() -> None:
    if clients.http.cache_info().currsize:
        clients.http().close()
    clients.http.cache_clear()


@pytest.fixture(name="telegram_api")
def telegram_api_fixture(monkeypatch, fake_telegram) -> Iterator[FakeTelegram]:
    """Only what tgrelay.telegram.call reads (no AWS): TELEGRAM_API_URL at the fake, a fresh HTTP client."""
    monkeypatch.setenv("TELEGRAM_API_URL", fake_telegram.url)
    _drop_http_client()
    yield fake_telegram
    _drop_http_client()


@dataclass
class Relay:
    """The moto account and the fakes one test runs against."""

    telegram: FakeTelegram
    agent: RecordingAgent
    secrets: Any
    secret_arn: str
    dynamodb: Any

    def set_secret(self, values: dict) -> None:
        """Replace the bot secret's JSON and drop the cached copy."""
        self.secrets.put_secret_value(SecretId=self.secret_arn, SecretString=json.dumps(values))
        clients.clear()

    def put_claim(self, update_id: int, execution: str, **extra: Any) -> None:
        item = {"pk": {"S": f"update#{update_id}"}, "status": {"S": "IN_PROGRESS"}, "execution": {"S": execution}}
        item.update(extra)
        self.dynamodb.put_item(TableName=TABLE_NAME, Item=item)

    def claim(self, update_id: int) -> dict | None:
        answer = self.dynamodb.get_item(TableName=TABLE_NAME, Key={"pk": {"S": f"update#{update_id}"}})
        return answer.get("Item")

    def table_items(self) -> list[dict]:
        return self.dynamodb.scan(TableName=TABLE_NAME)["Items"]


@pytest.fixture(name="relay")
def relay_fixture(aws, monkeypatch, fake_telegram, fake_agent) -> Relay:
    """conftest's moto account (turns table included) + the claim table + the CallAgent/SendReply
    environment, pointed at the fakes. A CallAgent or SendReply test holds its conversation's turn
    first (unit_helpers.hold_turn), as WaitForTurn leaves it."""
    dynamodb = aws.dynamodb
    create_table(dynamodb, "UpdatesTable", TABLE_NAME)
    relay = Relay(
        telegram=fake_telegram, agent=fake_agent, secrets=aws.secrets, secret_arn=aws.secret_arn, dynamodb=dynamodb
    )
    relay.set_secret(SECRET)
    for name, value in {
        "TABLE_NAME": TABLE_NAME,
        "AGENT_URL": f"{fake_agent.url}/agent",
        "AGENT_FILES_URL": f"{fake_agent.url}/files/",
        "AGENT_TIMEOUT_SECONDS": str(AGENT_TIMEOUT_SECONDS),
        "AGENT_STREAM_IDLE_SECONDS": str(AGENT_STREAM_IDLE_SECONDS),
        "DRAFT_THROTTLE_SECONDS": str(DRAFT_THROTTLE_SECONDS),
        "EMPTY_REPLY_TEXT": EMPTY_REPLY_TEXT,
        "APOLOGY_TEXT": APOLOGY_TEXT,
        "RETRY_APOLOGY_TEXT": "Sorry, I could not answer that just now. I will try again in a while.",
        "AUTO_REPLAY": "true",
        "AUTO_REPLAY_DELAYS_SECONDS": "900,3600,14400",
        "TELEGRAM_API_URL": fake_telegram.url,
        "TELEGRAM_MAX_INLINE_WAIT_SECONDS": "1",
        "POWERTOOLS_SERVICE_NAME": "tgrelay",
    }.items():
        monkeypatch.setenv(name, value)
    return relay
