"""The floors for bench/webhook.py's cold start: the least any Python webhook on Lambda
that enqueues to SQS with boto3 does — import boto3, make a Secrets Manager and an SQS
client, read the secret once, compare the header, send the body as it came. No parsing,
no validation, no logging. Both the baseline and tgrelay pay at least this (`handler`).

`handler_registering` is the same plus what tgrelay's turn registration needs at the least:
a DynamoDB client and one conditional PutItem of the message's QUEUED item (the attributes
turns.register_queued writes) before the send. tgrelay pays at least this; the baseline
registers nothing."""

import json
import os
import time

import boto3

_clients: dict = {}


def handler(event: dict, context) -> dict:
    return _handle(event, register=False)


def handler_registering(event: dict, context) -> dict:
    return _handle(event, register=True)


def _handle(event: dict, register: bool) -> dict:
    if not _clients:
        _clients["sqs"] = boto3.client("sqs")
        secrets = boto3.client("secretsmanager")
        _clients["secret"] = json.loads(secrets.get_secret_value(SecretId=os.environ["SECRET_ARN"])["SecretString"])
    if (event.get("headers") or {}).get("x-telegram-bot-api-secret-token") != _clients["secret"]["webhook_secret"]:
        return {"statusCode": 403, "body": json.dumps({"ok": False})}
    update = json.loads(event["body"])
    chat = update["message"]["chat"]["id"]
    if register:
        if "dynamodb" not in _clients:
            _clients["dynamodb"] = boto3.client("dynamodb")
        now = int(time.time())
        _clients["dynamodb"].put_item(
            TableName=os.environ["TURNS_TABLE_NAME"],
            Item={
                "conversation": {"S": f"telegram:{chat}"},
                "update_id": {"N": str(update["update_id"])},
                "status": {"S": "QUEUED"},
                "registered_at": {"N": str(now)},
                "expires_at": {"N": str(now + int(os.environ["DEDUPE_TTL_SECONDS"]))},
            },
            ConditionExpression="attribute_not_exists(conversation)",
        )
    _clients["sqs"].send_message(
        QueueUrl=os.environ["QUEUE_URL"],
        MessageBody=event["body"],
        MessageGroupId=str(chat),
        MessageDeduplicationId=str(update["update_id"]),
    )
    return {"statusCode": 200, "body": json.dumps({"ok": True})}
