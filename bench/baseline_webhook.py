"""The baseline for bench/webhook.py: a webhook producer written the way Telegram bots on
Lambda usually are, with python-telegram-bot.

It does the same I/O as tgrelay's WebhookFunction (the secret from Secrets Manager once,
then one SQS SendMessage per update, same queue, same group and deduplication ids) but the
usual way: module-level boto3 clients, a `telegram.Bot(token)` object, the whole update
parsed into python-telegram-bot objects with `Update.de_json(data, bot)` and the update
enqueued as `update.to_json()`. It checks the secret header too, so both reject the same
forged requests; it does no other validation and logs nothing (tgrelay's handler writes one
structured log line per update), which only makes the baseline cheaper.
"""

import json
import os

import boto3
from telegram import Bot, Update

sqs = boto3.client("sqs")
secrets = boto3.client("secretsmanager")
_config: dict | None = None
_bot: Bot | None = None


def _setup() -> tuple[dict, Bot]:
    global _config, _bot
    if _config is None or _bot is None:
        _config = json.loads(secrets.get_secret_value(SecretId=os.environ["SECRET_ARN"])["SecretString"])
        _bot = Bot(_config["bot_token"])
    return _config, _bot


def handler(event: dict, context) -> dict:
    config, bot = _setup()
    headers = event.get("headers") or {}
    if headers.get("x-telegram-bot-api-secret-token") != config["webhook_secret"]:
        return {"statusCode": 403, "body": json.dumps({"ok": False})}
    update = Update.de_json(json.loads(event["body"]), bot)
    chat = update.effective_chat
    message = update.effective_message
    if chat is None or message is None:
        return {"statusCode": 200, "body": json.dumps({"ok": True, "skipped": "no chat"})}
    group = f"{chat.id}:{message.message_thread_id}" if message.is_topic_message else str(chat.id)
    sqs.send_message(
        QueueUrl=os.environ["QUEUE_URL"],
        MessageBody=update.to_json(),
        MessageGroupId=group,
        MessageDeduplicationId=str(update.update_id),
    )
    return {"statusCode": 200, "body": json.dumps({"ok": True})}
