"""The webhook answers within its function Timeout even when an AWS service hangs (issue 14, finding 8).

botocore's defaults - 60 s to connect, 60 s to read, several attempts - exceed the webhook's 10 s
Timeout many times over: Lambda would cut the webhook off and Telegram see a timeout instead of a 503.
Here a service's endpoint is a socket on 127.0.0.1 that accepts and never answers.
"""

import socket
import threading
from collections.abc import Iterator

import pytest
from unit_helpers import update

from tgrelay import clients
from tgrelay_local.template import Template


def _timeout_seconds(logical_id: str) -> float:
    return float(Template().function_properties(logical_id)["Timeout"])


def _worst_case_seconds(client) -> float:
    """A call's longest time on this client: each attempt's connect and read timeouts (backoff between
    attempts not counted: there is one attempt)."""
    config = client.meta.config
    return config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout)


def test_the_webhooks_aws_calls_fit_in_its_timeout(aws):
    # At most three in a row: the secret (an expired cache), the turn's PutItem, SendMessage.
    calls = [clients.secretsmanager(), clients.webhook_dynamodb(), clients.sqs()]
    assert all(client.meta.config.retries["total_max_attempts"] == 1 for client in calls)
    assert sum(_worst_case_seconds(client) for client in calls) < _timeout_seconds("WebhookFunction")


def test_the_custom_resources_secret_read_fits_in_its_timeout(aws):
    assert 2 * _worst_case_seconds(clients.secretsmanager()) < _timeout_seconds("WebhookRegistrationFunction")


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<port>, where connections are accepted and never answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.parametrize("service", ["SQS", "SECRETS_MANAGER"])
def test_a_hanging_service_answers_503_within_the_webhook_timeout(
    aws, post_webhook, monkeypatch, silent_endpoint, service
):
    """Run as Lambda would: the answer must come before the function's Timeout."""
    monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", silent_endpoint)
    clients.clear()
    answers: list[dict] = []
    caller = threading.Thread(target=lambda: answers.append(post_webhook.post(update("private_text"))), daemon=True)

    caller.start()
    caller.join(timeout=_timeout_seconds("WebhookFunction"))

    assert answers, "no answer within the webhook's Timeout: Lambda would have cut it off"
    assert answers[0].status == 503, answers[0].body
    assert aws.depth() == 0
