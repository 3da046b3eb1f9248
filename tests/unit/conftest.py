"""Unit-test fixtures: moto as the AWS account, a Lambda context, the webhook driver, captured logs."""

import json
import sys
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws
from unit_helpers import (
    AGENT_TOKEN,
    BOT_TOKEN,
    DEDUPE_TTL_SECONDS,
    SAMPLES_BOT_USERNAME,
    TURNS_TABLE_NAME,
    WEBHOOK_SECRET,
    create_table,
    global_variable,
    load_event,
)

from tgrelay import clients, webhook
from tgrelay.webhook import SECRET_HEADER
from tgrelay_local.lambda_events import LambdaContext, http_api_event

REGION = "us-east-1"


@dataclass
class Aws:
    """The moto account one test runs against."""

    sqs: object
    secrets: object
    dynamodb: object
    queue_url: str
    secret_arn: str

    def turn_items(self) -> list[dict]:
        """Every item of the turns table, as DynamoDB returns it."""
        return self.dynamodb.scan(TableName=TURNS_TABLE_NAME, ConsistentRead=True)["Items"]

    def queued(self) -> list[dict]:
        """Every message on the updates queue, with its system attributes (receives them)."""
        messages = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            if not answer.get("Messages"):
                return messages
            messages.extend(answer["Messages"])

    def depth(self) -> int:
        """Messages on the queue, visible or in flight."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture(scope="session")
def _test_clients() -> tuple:
    """The tests' own SQS, Secrets Manager and DynamoDB clients, made once: moto intercepts clients made
    before it starts."""
    options = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return tuple(boto3.client(service, **options) for service in ("sqs", "secretsmanager", "dynamodb"))


@pytest.fixture(scope="session")
def _sdk_session() -> boto3.Session:
    """One boto3 session for the handlers' clients in every test of this process. mock_aws() resets
    boto3's default session when it starts, so each test would otherwise make a fresh one and parse
    the SDK's endpoint and service models again (about 0.1 s a test: half the unit tier's time). The
    clients themselves are still made anew in each test (clients.clear()), from its environment."""
    return boto3.Session()


@pytest.fixture
def aws(monkeypatch, _test_clients, _sdk_session):
    """moto with the updates FIFO queue, the bot secret and the turns table (as template.yaml declares it);
    the functions' environment points at them."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "POWERTOOLS_LOGGER_LOG_EVENT",
        "SECRET_MAX_AGE_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tgrelay")
    monkeypatch.setenv("DEDUPE_TTL_SECONDS", str(DEDUPE_TTL_SECONDS))
    # The bot the samples in events/telegram talk to; the other conversation settings at their
    # defaults (START_TEXT and HELP_TEXT come from tests/conftest.py, as the template gives them).
    monkeypatch.setenv("BOT_USERNAME", SAMPLES_BOT_USERNAME)
    for name in ("GROUP_MESSAGES", "EDITED_MESSAGES", "QUEUED_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    clients.clear()
    with mock_aws():
        boto3.DEFAULT_SESSION = _sdk_session  # moto puts back the one it found when it stops
        sqs, secrets, dynamodb = _test_clients
        queue_url = sqs.create_queue(
            QueueName="tgrelay-UpdatesQueue.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )["QueueUrl"]
        secret_arn = secrets.create_secret(
            Name="tgrelay-BotSecret",
            SecretString=json.dumps(
                {"bot_token": BOT_TOKEN, "webhook_secret": WEBHOOK_SECRET, "agent_token": AGENT_TOKEN}
            ),
        )["ARN"]
        monkeypatch.setenv("SECRET_ARN", secret_arn)
        monkeypatch.setenv("QUEUE_URL", queue_url)
        # Every function's environment (template Globals): the turns table and the turn's lease.
        create_table(dynamodb, "TurnsTable", TURNS_TABLE_NAME)
        monkeypatch.setenv("TURNS_TABLE_NAME", TURNS_TABLE_NAME)
        monkeypatch.setenv("TURN_LEASE_SECONDS", global_variable("TURN_LEASE_SECONDS"))
        yield Aws(sqs=sqs, secrets=secrets, dynamodb=dynamodb, queue_url=queue_url, secret_arn=secret_arn)
    clients.clear()


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@dataclass
class Answer:
    """The handler's HTTP answer, body parsed."""

    status: int
    body: dict
    raw_body: str
    headers: dict


_KEEP = object()


class Webhook:
    """Builds API Gateway HTTP API v2 events (tgrelay_local.lambda_events, the local engine's
    builder) with events/aws/http_api_v2_webhook.json's update as the default body, and invokes
    the handler."""

    def __init__(self, context: LambdaContext):
        self.context = context
        self.sample_body = load_event("aws/http_api_v2_webhook.json")["body"]

    def event(self, body=_KEEP, *, method: str = "POST", secret=WEBHOOK_SECRET, headers: dict | None = None) -> dict:
        """`body`: dict/list -> JSON text; str -> as is; bytes -> base64 with isBase64Encoded; None -> no body.

        `secret`: the header value, or None for no header. `headers`: extra headers (override).
        """
        if body is _KEEP:
            body = self.sample_body
        elif not isinstance(body, bytes | str | None):
            body = json.dumps(body, ensure_ascii=False)
        given = {"content-type": "application/json"}
        if secret is not None:
            given[SECRET_HEADER] = secret
        return http_api_event(
            body, method=method, headers={**given, **(headers or {})}, base64_encoded=isinstance(body, bytes)
        )

    def invoke(self, event: dict) -> Answer:
        response = webhook.handler(event, self.context)
        assert isinstance(response["body"], str)
        return Answer(
            status=response["statusCode"],
            body=json.loads(response["body"]),
            raw_body=response["body"],
            headers=response["headers"],
        )

    def post(self, body=_KEEP, **options) -> Answer:
        return self.invoke(self.event(body, **options))


@pytest.fixture
def post_webhook(aws, lambda_context) -> Webhook:
    """The webhook handler, wired to the moto account."""
    return Webhook(lambda_context)


class _CurrentStdout:
    """A stream that writes to whatever sys.stdout is at the time (capsys swaps it per test phase)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def handler_logs(capsys, monkeypatch):
    """Read the lines the handler's Powertools Logger printed (JSON, one per line).

    The Logger's stream handler keeps the sys.stdout of import time; point it at the current one.
    """
    monkeypatch.setattr(webhook.logger.logger_handler, "stream", _CurrentStdout())

    def read() -> list[str]:
        return [line for line in capsys.readouterr().out.splitlines() if line.strip()]

    return read
