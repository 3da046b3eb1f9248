"""The local stack's fixed names. Kept apart from engine.py, which imports moto: the operator
commands use them without starting (or importing) an engine."""

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "tgrelay-local"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
FAKE_BOT_TOKEN = "123456789:local-fake-bot-token"
DEFAULT_WEBHOOK_SECRET = "local-webhook-secret"
