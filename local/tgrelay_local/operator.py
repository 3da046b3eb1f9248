"""What the operator commands work on: a deployed stack (by its CloudFormation outputs) or a
running `tgrelay local` (by its AWS endpoint). The same boto3 calls serve both."""

import json
import os
from dataclasses import dataclass
from typing import Any, TypedDict

import boto3
import botocore.exceptions
from botocore.config import Config

from tgrelay.claims import release_parked_claims
from tgrelay.turns import error_message
from tgrelay_local.history import Step, state_path
from tgrelay_local.names import ACCOUNT, REGION, STACK

# Step Functions Standard list price, us-east-1: $0.025 per 1,000 state transitions
# (checked 2026-11-22; retries count as transitions).
DOLLARS_PER_TRANSITION = 0.025 / 1000


@dataclass
class Deployment:
    sfn: Any
    sqs: Any
    lambda_: Any
    dynamodb: Any
    table_name: str
    state_machine_arn: str
    queue_url: str
    dead_letter_queue_url: str
    webhook_url: str | None = None
    registration_function: str | None = None

    def queue_arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def session_for(region: str | None) -> boto3.session.Session:
    """A boto3 session in `region`, else AWS_REGION, else the profile's (the AWS SDKs read
    AWS_REGION; boto3 alone reads only AWS_DEFAULT_REGION)."""
    return boto3.session.Session(region_name=region or os.environ.get("AWS_REGION"))


def deployed(stack_name: str, region: str | None = None) -> Deployment:
    """The resources of a `sam deploy`ed stack, from its outputs."""
    session = session_for(region)
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    missing = sorted({"UpdatesTableName", "StateMachineArn", "UpdatesQueueUrl", "DeadLetterQueueUrl"} - set(outputs))
    if missing:
        raise ValueError(f"stack {stack_name} has no output {missing[0]}: is it a tgrelay stack?")
    registration = None
    try:
        registration = session.client("cloudformation").describe_stack_resource(
            StackName=stack_name, LogicalResourceId="WebhookRegistrationFunction"
        )["StackResourceDetail"]["PhysicalResourceId"]
    except botocore.exceptions.ClientError:  # RegisterWebhook=false: the function does not exist
        registration = None
    return Deployment(
        sfn=session.client("stepfunctions"),
        sqs=session.client("sqs"),
        lambda_=session.client("lambda"),
        dynamodb=session.client("dynamodb"),
        table_name=outputs["UpdatesTableName"],
        state_machine_arn=outputs["StateMachineArn"],
        queue_url=outputs["UpdatesQueueUrl"],
        dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
        webhook_url=outputs.get("WebhookUrl"),
        registration_function=registration,
    )


class _ClientOptions(TypedDict):
    region_name: str
    endpoint_url: str
    aws_access_key_id: str
    aws_secret_access_key: str
    config: Config


def local(endpoint: str) -> Deployment:
    """The resources of a running `tgrelay local`, through its AWS endpoint (moto server)."""
    options: _ClientOptions = {
        "region_name": REGION,
        "endpoint_url": endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        # A local endpoint that refuses a connection is not running: say so at once, not after
        # the SDK's retries with backoff (about 20 s).
        "config": Config(connect_timeout=2, retries={"mode": "standard", "total_max_attempts": 1}),
    }
    sqs = boto3.client("sqs", **options)
    return Deployment(
        sfn=boto3.client("stepfunctions", **options),
        sqs=sqs,
        lambda_=boto3.client("lambda", **options),
        dynamodb=boto3.client("dynamodb", **options),
        table_name=f"{STACK}-UpdatesTable",
        state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-RelayStateMachine",
        queue_url=sqs.get_queue_url(QueueName=f"{STACK}-UpdatesQueue.fifo")["QueueUrl"],
        dead_letter_queue_url=sqs.get_queue_url(QueueName=f"{STACK}-DeadLetterQueue.fifo")["QueueUrl"],
    )


def execution_path(deployment: Deployment, execution_arn: str) -> list[Step]:
    events = []
    for page in deployment.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return state_path(events)


def dead_letter_count(deployment: Deployment) -> int:
    """About how many messages the DLQ holds (SQS's approximate counts: visible and in flight)."""
    counts = deployment.sqs.get_queue_attributes(
        QueueUrl=deployment.dead_letter_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in counts.values())


def dead_letters(deployment: Deployment) -> list[dict]:
    """The DLQ's messages with their error attributes, left in place.

    A body is an envelope: the webhook's (a message the queue's redrive policy parked) or the one
    the workflow re-serialised (States.JsonToString), whose "merged" lists the envelopes answered
    in the same turn; `merged` is their update_ids ([] for the webhook's)."""
    from tgrelay_local.engine import peek_queue

    entries = []
    for message in peek_queue(deployment.sqs, deployment.dead_letter_queue_url):
        attributes = {name: value.get("StringValue") for name, value in message.get("MessageAttributes", {}).items()}
        update_id, merged = _parked_update_ids(message["Body"])
        entries.append(
            {
                "update_id": update_id,
                "merged": merged,
                # No error attribute: the queue's redrive policy put it there (executions failed to start).
                "error": attributes.get("error", "failed to start (queue redrive)"),
                "cause": readable_cause(attributes.get("cause", "")),
                "execution": attributes.get("execution", ""),
                "sent": message.get("Attributes", {}).get("SentTimestamp"),
            }
        )
    return entries


def readable_cause(cause: str) -> str:
    """The DLQ's cause attribute ("<Error>: <Cause>") with a Lambda error's Cause, the runtime's
    JSON with its stack trace, shown as its errorMessage: "AgentRejected: agent server answered 400 ..."."""
    error, separator, rest = cause.partition(": ")
    return f"{error}{separator}{error_message(rest)}" if separator else cause


def _parked_update_ids(body: str) -> tuple[int | None, list[int]]:
    """(update_id, update_ids merged into its turn) of a dead letter's body; None if unreadable."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return None, []
    if not isinstance(envelope, dict):
        return None, []
    merged = envelope.get("merged") or []
    merged_ids = [item["update_id"] for item in merged if isinstance(item, dict) and "update_id" in item]
    return envelope.get("update_id"), merged_ids


def release_claims(deployment: Deployment) -> int:
    """Before a replay: every dead letter's claims its parking execution still holds IN_PROGRESS
    are set FAILED (tgrelay.claims.release_parked_claims, which DeadLetterReplayFunction uses too)."""
    released = 0
    for entry in dead_letters(deployment):
        if entry["execution"] and entry["update_id"] is not None:
            turn = [entry["update_id"], *entry["merged"]]
            released += release_parked_claims(deployment.dynamodb, deployment.table_name, entry["execution"], turn)
    return released
