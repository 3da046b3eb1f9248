"""One cold-start sample for bench/webhook.py, run in a fresh interpreter.

    python bench/_cold_child.py ours|baseline|floor|floor+put EVENT.json

Imports the handler, answers one request, prints one line `BENCH {json}` with
time.monotonic() readings (one clock for every process on Linux, so the parent can
subtract the moment it spawned this process). Only the standard library is imported before
the handler, so the import phase is the handler's own.
"""

import time

STARTED = time.monotonic()

import json  # noqa: E402
import sys  # noqa: E402

variant, event_path = sys.argv[1], sys.argv[2]
if variant == "ours":
    from tgrelay.webhook import handler
elif variant == "baseline":
    from baseline_webhook import handler  # bench/ is sys.path[0]
elif variant == "floor":
    from bare_producer import handler
elif variant == "floor+put":
    from bare_producer import handler_registering as handler
else:
    raise SystemExit(f"unknown variant {variant!r}")
IMPORTED = time.monotonic()


class Context:
    """The parts of the Lambda context object the handlers read."""

    function_name = "bench-WebhookFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-WebhookFunction"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/bench-WebhookFunction"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


with open(event_path, encoding="utf-8") as file:
    event = json.load(file)
answer = handler(event, Context())
ANSWERED = time.monotonic()

result = {
    "started": STARTED,
    "imported": IMPORTED,
    "answered": ANSWERED,
    "status": answer.get("statusCode"),
    "body": answer.get("body"),
}
print("BENCH " + json.dumps(result), flush=True)
