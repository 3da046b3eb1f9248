"""What Lambda hands a handler, built one way for the local engine, the tests and the benchmarks:
the context object and API Gateway HTTP API (payload format 2.0) events.

The shapes follow the AWS docs ("Lambda context object in Python"; "Working with AWS Lambda proxy
integrations for HTTP APIs", payload format 2.0); events/aws/http_api_v2_webhook.json is a sample
of the same shape (tests/unit/test_events.py compares them)."""

import base64
import time
import uuid
from typing import Any

from tgrelay_local.names import ACCOUNT, REGION

WEBHOOK_PATH = "/telegram/webhook"  # template.yaml: WebhookFunction's HttpApi event


class LambdaContext:
    """The parts of the Lambda context object Powertools and the handlers read. The remaining time
    is `remaining_ms` (the whole timeout unless a test sets it): nothing here counts it down."""

    def __init__(
        self,
        function_name: str = "tgrelay-WebhookFunction-Xk3rPq9LmN2b",
        function_arn: str | None = None,
        memory_mb: int = 256,
        timeout_s: int = 120,
    ):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn or f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self.remaining_ms = timeout_s * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def http_api_event(
    body: bytes | str | None,
    *,
    method: str = "POST",
    path: str = WEBHOOK_PATH,
    route_key: str | None = None,
    headers: dict[str, str] | None = None,
    base64_encoded: bool | None = None,
) -> dict[str, Any]:
    """The HTTP API payload 2.0 event API Gateway passes to the function for one request.

    `body`: str as is; bytes as UTF-8 text, or base64 with isBase64Encoded when they are not UTF-8
    or `base64_encoded` is True (as API Gateway does for binary bodies); None: no body.
    `route_key`: the matched route, "<method> <path>" by default. Header names are lower-cased
    (HTTP APIs do); content-length is set from the body when not given."""
    if isinstance(body, bytes):
        try:
            text, encoded = (None, True) if base64_encoded else (body.decode("utf-8"), False)
        except UnicodeDecodeError:
            text, encoded = None, True
        if encoded:
            text = base64.b64encode(body).decode("ascii")
    else:
        text, encoded = body, False
    given = {key.lower(): value for key, value in (headers or {}).items()}
    if text is not None:
        given.setdefault("content-length", str(len(text.encode("utf-8", "surrogatepass"))))
    route_key = route_key or f"{method} {path}"
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": given,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": given.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if text is not None:
        event["body"] = text
    return event
