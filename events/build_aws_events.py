"""Rebuild events/aws/*.json from events/telegram/private_text.json.

Run after changing the sample update or the envelope: `.venv/bin/python events/build_aws_events.py`.
tests/unit/test_events.py and tests/unit/test_webhook.py fail when these files drift from the code.
"""

import hashlib
import json
from pathlib import Path

from tgrelay.envelope import envelope_from_update, message_group_id
from tgrelay_local.pipe import apply_input_template
from tgrelay_local.template import load_template

EVENTS = Path(__file__).resolve().parent
RECEIVED_AT = 1763800000  # the webhook's int(time.time()) for the sample
DEDUPE_TTL_SECONDS = 1296000  # template.yaml, WebhookFunction DEDUPE_TTL_SECONDS
API_ID = "k3x9qv2m7d"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:tgrelay-UpdatesQueue-Qm7XvB2pL9sd.fifo"


def http_api_v2_event(update: dict) -> dict:
    """What API Gateway (HTTP API, payload format 2.0) gives WebhookFunction for Telegram's POST."""
    body = json.dumps(update, ensure_ascii=False, separators=(",", ":"))
    domain = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
    return {
        "version": "2.0",
        "routeKey": "POST /telegram/webhook",
        "rawPath": "/telegram/webhook",
        "rawQueryString": "",
        "headers": {
            "accept-encoding": "gzip, deflate",
            "content-length": str(len(body.encode("utf-8"))),
            "content-type": "application/json",
            "host": domain,
            "x-amzn-trace-id": "Root=1-6921737f-3b8a1f0c52e07d4a6c19e2b8",
            "x-forwarded-for": "91.108.6.42",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            "x-telegram-bot-api-secret-token": "local-webhook-secret",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": API_ID,
            "http": {
                "method": "POST",
                "path": "/telegram/webhook",
                "protocol": "HTTP/1.1",
                "sourceIp": "91.108.6.42",
                "userAgent": "",
            },
            "requestId": "UuS3fhqGoAMEVAw=",
            "routeKey": "POST /telegram/webhook",
            "stage": "$default",
            "time": "22/Nov/2025:08:26:39 +0000",
            "timeEpoch": 1763799999870,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def sqs_record(update: dict) -> dict:
    """One record of the UpdatesQueue as the EventBridge Pipe hands it to the state machine."""
    envelope = envelope_from_update(update, RECEIVED_AT, DEDUPE_TTL_SECONDS)
    body = json.dumps(envelope)  # as tgrelay/webhook.py serializes it
    return {
        "messageId": "5f0c7b9e-2d41-4c8a-9e57-1b3a6d8f4c20",
        "receiptHandle": (
            "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq0dxTzY1PqV8vNpQ6nM0JsdW2mT9kqYz7bLxG3cR5eF"
            "1aH8wK4pS2uD6nJ0vB9tM3xQ7rZ5yC1oE8gI4kL2jN6hA0sU9dV3fW7bX5zY1mR8qT2cP4eO6iK"
        ),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1763800000412",
            "SequenceNumber": "18899588118232418304",
            "MessageGroupId": message_group_id(envelope),
            "SenderId": "AROA4EXAMPLEEXAMPLE7XQ:tgrelay-WebhookFunction-Xk3rPq9LmN2b",
            "MessageDeduplicationId": str(envelope["update_id"]),
            "ApproximateFirstReceiveTimestamp": "1763800000437",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def execution_input(records: list[dict]) -> list:
    """What the pipe starts the state machine with for `records`: each under the pipe's
    InputTemplate from template.yaml (the body parsed into an object), still an array."""
    pipes = [resource for resource in load_template()["Resources"].values() if resource["Type"] == "AWS::Pipes::Pipe"]
    (pipe,) = pipes
    template = pipe["Properties"]["TargetParameters"]["InputTemplate"]
    return [apply_input_template(template, record) for record in records]


def main() -> None:
    update = json.loads((EVENTS / "telegram" / "private_text.json").read_text("utf-8"))
    record = sqs_record(update)
    files = {
        "http_api_v2_webhook.json": http_api_v2_event(update),
        "sqs_record.json": record,
        "pipe_input.json": [record],
        "execution_input.json": execution_input([record]),
    }
    for name, content in files.items():
        text = json.dumps(content, ensure_ascii=False, indent=2) + "\n"
        (EVENTS / "aws" / name).write_text(text, "utf-8")


if __name__ == "__main__":
    main()
