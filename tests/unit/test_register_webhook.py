"""WebhookRegistrationFunction against the loopback FakeTelegram, with a loopback stand-in for
CloudFormation's presigned response URL: what Telegram is told, and what CloudFormation hears."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    BOT_TOKEN,
    SECRET,
    agent_server_fixture,
    fake_agent_fixture,
    fake_telegram_fixture,
    relay_fixture,
    telegram_server_fixture,
)

from tgrelay import register_webhook
from tgrelay.envelope import HANDLED_UPDATE_KINDS
from tgrelay_local.http_api import SHUTDOWN_POLL_SECONDS

WEBHOOK_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/telegram/webhook"


class CloudFormationResponses:
    """Records the PUTs a custom resource makes to its ResponseURL."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                recorder.received.append({"body": json.loads(body), "content-type": self.headers.get("content-type")})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/presigned?X-Amz-Signature=abc"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloudformation():
    responses = CloudFormationResponses()
    yield responses
    responses.stop()


def custom_resource_event(request_type: str, response_url: str) -> dict:
    return {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:tgrelay-WebhookRegistrationFunction",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/tgrelay/1",
        "RequestId": "req-1",
        "ResourceType": "Custom::TelegramWebhook",
        "LogicalResourceId": "TelegramWebhook",
        "PhysicalResourceId": "telegram-webhook",
        "ResourceProperties": {"ServiceToken": "...", "WebhookUrl": WEBHOOK_URL},
    }


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_set_the_webhook_and_report_success(relay, cloudformation, lambda_context, request_type):
    register_webhook.handler(custom_resource_event(request_type, cloudformation.url), lambda_context)

    (call,) = relay.telegram.calls_snapshot()
    assert call["method"] == "setWebhook"
    assert call["payload"] == {
        "url": WEBHOOK_URL,
        "secret_token": SECRET["webhook_secret"],
        "allowed_updates": list(HANDLED_UPDATE_KINDS),
    }
    assert relay.telegram.webhook["url"] == WEBHOOK_URL
    (answer,) = cloudformation.received
    assert answer["body"]["Status"] == "SUCCESS"
    assert answer["body"]["PhysicalResourceId"] == "telegram-webhook"
    assert answer["body"]["RequestId"] == "req-1" and answer["body"]["LogicalResourceId"] == "TelegramWebhook"
    assert answer["content-type"] == ""  # presigned S3 URLs are signed without a content type


def test_with_edits_answered_telegram_is_asked_for_edited_messages_too(
    relay, cloudformation, lambda_context, monkeypatch
):
    monkeypatch.setenv("EDITED_MESSAGES", "answer")

    register_webhook.handler(custom_resource_event("Update", cloudformation.url), lambda_context)

    (call,) = relay.telegram.calls_snapshot()
    assert call["payload"]["allowed_updates"] == ["message", "callback_query", "edited_message"]


def test_delete_removes_the_webhook(relay, cloudformation, lambda_context):
    relay.telegram.webhook = {"url": WEBHOOK_URL}
    register_webhook.handler(custom_resource_event("Delete", cloudformation.url), lambda_context)
    assert [call["method"] for call in relay.telegram.calls_snapshot()] == ["deleteWebhook"]
    assert relay.telegram.webhook["url"] == ""
    assert cloudformation.received[0]["body"]["Status"] == "SUCCESS"


def test_a_telegram_refusal_fails_the_stack_with_the_reason(relay, cloudformation, lambda_context):
    relay.telegram.add_fault({"method": "setWebhook", "status": 400, "description": "Bad Request: bad webhook"})
    result = register_webhook.handler(custom_resource_event("Create", cloudformation.url), lambda_context)

    (answer,) = cloudformation.received
    assert answer["body"]["Status"] == "FAILED"
    assert "TelegramRejected" in answer["body"]["Reason"] and "bad webhook" in answer["body"]["Reason"]
    assert result["status"] == "FAILED"
    for secret in (BOT_TOKEN, SECRET["webhook_secret"]):
        assert secret not in json.dumps(answer["body"])


def test_telegram_down_fails_the_stack_instead_of_hanging(relay, cloudformation, lambda_context):
    relay.telegram.add_fault({"method": "setWebhook", "close": True})
    register_webhook.handler(custom_resource_event("Update", cloudformation.url), lambda_context)
    (answer,) = cloudformation.received
    assert answer["body"]["Status"] == "FAILED"
    assert "TelegramUnavailable" in answer["body"]["Reason"]


def test_a_failed_delete_does_not_block_the_stack_deletion(relay, cloudformation, lambda_context):
    relay.telegram.add_fault({"method": "deleteWebhook", "status": 500})
    register_webhook.handler(custom_resource_event("Delete", cloudformation.url), lambda_context)
    (answer,) = cloudformation.received
    assert answer["body"]["Status"] == "SUCCESS"
    assert "TelegramUnavailable" in answer["body"]["Reason"]


def test_an_empty_bot_token_succeeds_and_says_what_to_do(relay, cloudformation, lambda_context):
    relay.set_secret({**SECRET, "bot_token": ""})
    register_webhook.handler(custom_resource_event("Create", cloudformation.url), lambda_context)
    assert relay.telegram.calls_snapshot() == []
    (answer,) = cloudformation.received
    assert answer["body"]["Status"] == "SUCCESS"
    assert "bot_token is empty" in answer["body"]["Reason"] and "register-webhook" in answer["body"]["Reason"]


def test_direct_invocation_registers_again(relay, lambda_context):
    result = register_webhook.handler({"url": WEBHOOK_URL}, lambda_context)
    assert result == {"result": f"webhook registered: {WEBHOOK_URL}"}
    assert relay.telegram.webhook["url"] == WEBHOOK_URL


def test_the_rollback_of_a_failed_create_leaves_the_bots_webhook_alone(relay, cloudformation, lambda_context):
    """A Create that failed answers with an id of its own; CloudFormation's rollback sends a Delete with
    it, and that Delete must not remove the webhook the bot has (set by hand, or by another stack)."""
    relay.telegram.webhook = {"url": "https://example.com/set-by-hand"}
    relay.telegram.add_fault({"method": "setWebhook", "status": 400, "description": "Bad Request: bad webhook"})
    create = custom_resource_event("Create", cloudformation.url)
    del create["PhysicalResourceId"]  # a Create has none yet

    register_webhook.handler(create, lambda_context)
    failed = cloudformation.received[0]["body"]
    assert (failed["Status"], failed["PhysicalResourceId"]) == ("FAILED", register_webhook.NOT_REGISTERED_ID)

    rollback = {
        **custom_resource_event("Delete", cloudformation.url),
        "PhysicalResourceId": failed["PhysicalResourceId"],
    }
    register_webhook.handler(rollback, lambda_context)
    assert [call["method"] for call in relay.telegram.calls_snapshot()] == ["setWebhook"]
    assert relay.telegram.webhook["url"] == "https://example.com/set-by-hand"
    deleted = cloudformation.received[1]["body"]
    assert (deleted["Status"], deleted["PhysicalResourceId"]) == ("SUCCESS", register_webhook.NOT_REGISTERED_ID)


def test_an_update_keeps_the_physical_id_cloudformation_knows(relay, cloudformation, lambda_context):
    relay.telegram.add_fault({"method": "setWebhook", "status": 400, "description": "Bad Request: bad webhook"})
    register_webhook.handler(custom_resource_event("Update", cloudformation.url), lambda_context)
    (answer,) = cloudformation.received
    # Another id on Update would tell CloudFormation the webhook was replaced: it would then delete it.
    assert (answer["body"]["Status"], answer["body"]["PhysicalResourceId"]) == ("FAILED", "telegram-webhook")
