"""AWS and HTTP clients, made once per Lambda environment and reused (keep-alive)."""

import logging
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    import httpx

# httpx logs every request URL at INFO, and Telegram's URLs contain the bot token.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


@cache
def sqs():
    # The webhook must answer Telegram quickly: short timeouts, few SDK retries.
    return boto3.client(
        "sqs",
        config=Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}),
    )


@cache
def dynamodb():
    # Short timeouts: DynamoDB answers in milliseconds, and the webhook registers turns with it.
    return boto3.client(
        "dynamodb",
        config=Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}),
    )


@cache
def stepfunctions():
    # Hands the turn to a waiting execution (SendTaskSuccess / SendTaskFailure).
    return boto3.client("stepfunctions")


@cache
def http() -> "httpx.Client":
    # Imported here: the webhook never calls HTTP, and httpx is a fifth of its cold import.
    import httpx

    # Timeouts are given per request by the caller.
    return httpx.Client(follow_redirects=False)
