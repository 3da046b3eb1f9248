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


# After IMPORTED: what the handler's import costs is measured alone.
from tgrelay_local.lambda_events import LambdaContext  # noqa: E402

with open(event_path, encoding="utf-8") as file:
    event = json.load(file)
answer = handler(event, LambdaContext("bench-WebhookFunction", timeout_s=10))
ANSWERED = time.monotonic()

result = {
    "started": STARTED,
    "imported": IMPORTED,
    "answered": ANSWERED,
    "status": answer.get("statusCode"),
    "body": answer.get("body"),
}
print("BENCH " + json.dumps(result), flush=True)
