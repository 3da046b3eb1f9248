"""The floor for bench/webhook.py's cold start: the least any Python webhook on Lambda
that enqueues to SQS with boto3 does — import boto3, make a Secrets Manager and an SQS
client, read the secret once, compare the header, send the body as it came. No parsing,
no validation, no logging. Both the baseline and tgrelay pay at least this."""

import json
import os

import boto3

_clients: dict = {}


def handler(event: dict, context) -> dict:
    if not _clients:
        _clients["sqs"] = boto3.client("sqs")
        secrets = boto3.client("secretsmanager")
        _clients["secret"] = json.loads(secrets.get_secret_value(SecretId=os.environ["SECRET_ARN"])["SecretString"])
    if (event.get("headers") or {}).get("x-telegram-bot-api-secret-token") != _clients["secret"]["webhook_secret"]:
        return {"statusCode": 403, "body": json.dumps({"ok": False})}
    update = json.loads(event["body"])
    chat = update["message"]["chat"]["id"]
    _clients["sqs"].send_message(
        QueueUrl=os.environ["QUEUE_URL"],
        MessageBody=event["body"],
        MessageGroupId=str(chat),
        MessageDeduplicationId=str(update["update_id"]),
    )
    return {"statusCode": 200, "body": json.dumps({"ok": True})}
