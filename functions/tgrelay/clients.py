"""AWS and HTTP clients, made once per Lambda environment and reused (keep-alive)."""

import logging
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    import httpx
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

# httpx logs every request URL at INFO, and Telegram's URLs contain the bot token.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


# AWS answers these calls in milliseconds: one that hangs fails after connect + read seconds per
# attempt, not botocore's 60 s defaults.
CONNECT_TIMEOUT_SECONDS = 1
READ_TIMEOUT_SECONDS = 2

# The webhook's calls - the secret, the turn's PutItem, SendMessage - at most three in a row within
# its 10 s Timeout (template.yaml): one attempt each, 3 x (1 + 2) = 9 s at worst, so a slow
# dependency answers 503 and Telegram delivers the update again (its redelivery is the retry).
# The secret is read the same way by every function: the others' failures are DependencyUnavailable,
# retried by the ASL.
SINGLE_ATTEMPT = Config(
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "total_max_attempts": 1},
)
# The workflow's functions: a throttled call is retried by the SDK at once; what gets through is
# DependencyUnavailable, retried by the ASL.
SDK_RETRIES = Config(
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "max_attempts": 3},
)


@cache
def sqs():
    """SQS for the webhook's SendMessage and DeadLetterReplayFunction (SINGLE_ATTEMPT: the replay
    function looks again on its next schedule)."""
    return boto3.client("sqs", config=SINGLE_ATTEMPT)


@cache
def dynamodb():
    """The workflow functions' DynamoDB calls (SDK_RETRIES)."""
    return boto3.client("dynamodb", config=SDK_RETRIES)


@cache
def webhook_dynamodb():
    """The webhook's one DynamoDB call, the turn's PutItem (SINGLE_ATTEMPT)."""
    return boto3.client("dynamodb", config=SINGLE_ATTEMPT)


@cache
def secretsmanager():
    """GetSecretValue for every function, behind Powertools' cache (SINGLE_ATTEMPT)."""
    return boto3.client("secretsmanager", config=SINGLE_ATTEMPT)


@cache
def secrets_provider() -> "SecretsProvider":
    """Powertools' SecretsProvider on secretsmanager(): its cache (max_age per call) lives as long as
    this environment, and clear() drops it. On boto3's default session, which the other clients use:
    Powertools' own default provider opens a second session and loads the SDK's models again (~0.1 s
    of a cold start)."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=secretsmanager())


@cache
def stepfunctions():
    # Hands the turn to a waiting execution (SendTaskSuccess / SendTaskFailure).
    return boto3.client("stepfunctions")


@cache
def s3():
    # Signature Version 4: what presigned URLs need in every region (and up to 7 days of validity).
    return boto3.client(
        "s3",
        config=Config(
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )


@cache
def http() -> "httpx.Client":
    # Imported here: the webhook never calls HTTP, and httpx is a fifth of its cold import.
    import httpx

    # Timeouts are given per request by the caller.
    return httpx.Client(follow_redirects=False)


def clear() -> None:
    """Forget every client made so far, and the cached secret with its provider (tests and the local
    engine: a new moto, new environment)."""
    for client in (sqs, dynamodb, webhook_dynamodb, secretsmanager, secrets_provider, stepfunctions, s3):
        client.cache_clear()
    if http.cache_info().currsize:
        http().close()
    http.cache_clear()
