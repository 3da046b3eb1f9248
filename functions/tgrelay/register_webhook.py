"""WebhookRegistrationFunction: tells Telegram where to post updates.

As a CloudFormation custom resource it calls setWebhook on Create and Update (the stack's
URL, the secret's webhook_secret as secret_token, the update kinds the webhook handles)
and deleteWebhook on Delete. Invoked directly with {"url": ...} (`tgrelay register-webhook`)
it registers again, e.g. after the bot token was put into the secret or rotated.

It always answers CloudFormation, with the reason on failure, so a stack never hangs on it (and
where it cannot - a timeout, out of memory, a failed import - the template's ServiceTimeout ends
the wait in 5 minutes). A failed Create answers with NOT_REGISTERED_ID, whose Delete is a no-op.
"""

import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from tgrelay import clients, conversation, telegram
from tgrelay.envelope import handled_update_kinds
from tgrelay.secrets import secret_field
from tgrelay.settings import declare

PHYSICAL_ID = "telegram-webhook"
# The physical id of a Create that failed. CloudFormation's rollback then sends a Delete with it,
# which must not call deleteWebhook: the bot's webhook may be one set by hand or by another stack.
NOT_REGISTERED_ID = "telegram-webhook-not-registered"

# Every setting this handler reads (tests/unit/test_declared_settings.py); checked at its cold start.
SETTINGS = declare(
    __name__, required=("SECRET_ARN",), optional=("EDITED_MESSAGES", "SECRET_MAX_AGE_SECONDS", "TELEGRAM_API_URL")
)

logger = Logger()


@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    if "RequestType" not in event:
        return {"result": register(event["url"])}
    request = CloudFormationCustomResourceEvent(event)
    # Update and Delete keep the id CloudFormation knows (a new one on Update would make it delete the old).
    physical_id = event.get("PhysicalResourceId") or PHYSICAL_ID
    try:
        if request.request_type == "Delete" and physical_id == NOT_REGISTERED_ID:
            status, reason = "SUCCESS", "nothing was registered (the Create failed): deleteWebhook not called"
        elif request.request_type == "Delete":
            status, reason = "SUCCESS", unregister()
        else:
            status, reason = "SUCCESS", register(request.resource_properties["WebhookUrl"])
    except Exception as error:  # whatever happened, CloudFormation must hear it now, not in an hour
        reason = f"{type(error).__name__}: {error}"
        # A webhook left behind must not stop a stack from being deleted; say so and move on.
        status = "SUCCESS" if request.request_type == "Delete" else "FAILED"
        if request.request_type == "Create":
            physical_id = NOT_REGISTERED_ID
    logger.info("custom resource answered", extra={"status": status, "reason": reason, "physical_id": physical_id})
    answer_cloudformation(request, status, reason, physical_id)
    return {"status": status, "reason": reason}


def register(url: str) -> str:
    token = secret_field("bot_token", required=False)
    if not token:
        # The first deploy creates the secret empty: succeed, and say what to do next.
        return (
            "webhook not registered: bot_token is empty in the bot secret; fill it, then run tgrelay register-webhook"
        )
    telegram.call(
        token,
        "setWebhook",
        {
            "url": url,
            "secret_token": secret_field("webhook_secret"),
            # Edits are delivered only when they are answered (EDITED_MESSAGES=answer).
            "allowed_updates": handled_update_kinds(conversation.answers_edits()),
        },
    )
    return f"webhook registered: {url}"


def unregister() -> str:
    token = secret_field("bot_token", required=False)
    if not token:
        return "no bot_token: nothing to delete"
    telegram.call(token, "deleteWebhook", {})
    return "webhook deleted"


def answer_cloudformation(
    request: CloudFormationCustomResourceEvent, status: str, reason: str, physical_id: str
) -> None:
    """PUT the custom resource's answer to CloudFormation's presigned ResponseURL (10 s timeout)."""
    body = {
        "Status": status,
        "Reason": reason[:1000],
        "PhysicalResourceId": physical_id,
        "StackId": request.stack_id,
        "RequestId": request.request_id,
        "LogicalResourceId": request.logical_resource_id,
    }
    # The response URL is a presigned S3 URL: PUT, and no content type it did not sign.
    response = clients.http().put(
        request.response_url, content=json.dumps(body).encode(), headers={"content-type": ""}, timeout=10
    )
    response.raise_for_status()
