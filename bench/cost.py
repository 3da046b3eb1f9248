"""Cost per update, counted from real executions on the local engine.

    .venv/bin/python bench/cost.py

Four paths run through the local stack (tgrelay_local.LocalRelay: the real ASL, the real
handlers, the template's settings; a recorded retry clock, so retries do not wait):

  happy path          one update, echo agent, one reply
  duplicate           the same update delivered again after SQS's 5-minute dedupe window:
                      it reaches the workflow and the DynamoDB claim stops it
  one agent retry     the agent answers 503 once, then the reply
  terminal failure    the agent answers 400: compensation, apology, dead-letter queue

For each, every billable request is counted from what actually happened, not read off the
ASL: state transitions from the execution's history (states entered, plus one per retry:
AWS bills each retry as a transition), Lambda invocations from the engine's seams plus the
webhook's, SQS requests from hooks on the webhook's and the pipe's clients and the
workflow's own sqs:sendMessage tasks, DynamoDB requests from the workflow's tasks and hooks
on SendReply's client. Then list prices turn them into dollars per million updates.

Prices (us-east-1, on-demand list prices, free tiers ignored), checked 2026-11-22:
  Step Functions Standard  $0.025 per 1,000 state transitions; "each retry will be charged as
                           an additional state transition"     aws.amazon.com/step-functions/pricing/
  EventBridge Pipes        $0.40 per million requests (counted after filtering); each 64 KB
                           chunk of a payload is billed as one request
                                                                aws.amazon.com/eventbridge/pricing/
  SQS FIFO                 $0.50 per million requests (first 100 billion a month); each 64 KB
                           chunk is a request; empty receives are requests too
                                                                aws.amazon.com/sqs/pricing/
  Lambda                   $0.20 per million requests; duration $0.0000133334 per GB-second on
                           arm64 (first 7.5 billion GB-s a month)
                                                                aws.amazon.com/lambda/pricing/
  DynamoDB on-demand       $0.625 per million write request units, $0.125 per million read
                           request units (since the 2024-11-01 cut); a write of up to 1 KB is
                           1 WRU, a strongly consistent read of up to 4 KB 1 RRU; a failed
                           conditional write still consumes write units
                                                                aws.amazon.com/dynamodb/pricing/on-demand/
  API Gateway HTTP API     $1.00 per million requests (first 300 million a month), metered in
                           512 KB increments                   aws.amazon.com/api-gateway/pricing/
"""

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

from benchlib import ROOT, machine_line, table

PRICE = {
    "transition": 0.025 / 1000,
    "pipe_request": 0.40 / 1e6,
    "sqs_fifo_request": 0.50 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_arm_gb_second": 0.0000133334,
    "wru": 0.625 / 1e6,
    "rru": 0.125 / 1e6,
    "http_api_request": 1.00 / 1e6,
}
PIPE_CHUNK = SQS_CHUNK = 64 * 1024
TARGETS = {"happy path": 5, "duplicate": 2}  # billed transitions, DESIGN.md section 4 (the turn included)
EVENTS = ROOT / "events" / "telegram"


class Calls:
    """Thread-safe counts of AWS API calls seen by botocore hooks."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.counts)

    def watch_sqs(self, client, label: str, queue_url: str, operations: tuple[str, ...]) -> None:
        """Count `operations` on `queue_url` made through `client`; ReceiveMessage split into
        receives that returned messages and empty ones."""

        def before(params, model, context, **_):
            if params.get("QueueUrl") == queue_url and model.name in operations:
                context["bench_counted"] = True
                if model.name != "ReceiveMessage":
                    self.add(f"{label} {model.name}")

        def after(parsed, model, context, **_):
            if context.get("bench_counted") and model.name == "ReceiveMessage":
                empty = not parsed.get("Messages")
                self.add(f"{label} ReceiveMessage{' (empty)' if empty else ''}")

        client.meta.events.register("before-parameter-build.sqs", before)
        client.meta.events.register("after-call.sqs", after)

    def watch_dynamodb(self, client, label: str) -> None:
        def before(params, model, **_):
            consistency = " strongly consistent" if params.get("ConsistentRead") else ""
            self.add(f"{label} {model.name}{consistency if model.name == 'GetItem' else ''}")

        client.meta.events.register("before-parameter-build.dynamodb", before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    print(machine_line())
    print()
    # Powertools Metrics needs a namespace once a metric is added (the tests set the same default).
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "tgrelay")
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    from tgrelay import clients
    from tgrelay_local.clock import RetryClock
    from tgrelay_local.engine import LocalRelay
    from tgrelay_local.history import state_path

    calls = Calls()
    durations: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "stdout.log", "w") as handler_stdout:
        relay = LocalRelay(clock=RetryClock("recorded", jitter=1.0), log_path=Path(tmp) / "handlers.log")
        # Powertools Metrics prints its EMF lines to stdout: into a file, not between the tables.
        with contextlib.redirect_stdout(handler_stdout), relay:
            calls.watch_sqs(clients.sqs(), "webhook", relay.pipe.queue_url, ("SendMessage",))
            calls.watch_sqs(relay.sqs, "pipe", relay.pipe.queue_url, ("ReceiveMessage", "DeleteMessage"))
            calls.watch_dynamodb(clients.dynamodb(), "SendReply")
            functions = {id(f): f for f in relay.seams.functions.values()}
            functions[id(relay.webhook_function)] = relay.webhook_function
            for function in functions.values():
                function.handler = _timed(function.handler, function.name, durations)

            update = _update(1)
            results = [
                run_path(relay, calls, state_path, "happy path", update),
                run_path(relay, calls, state_path, "duplicate", update),  # the very same update again
            ]
            retry = _update(2)
            relay.agent.add_fault({"status": 503, "count": 1, "match": {"update_id": retry["update_id"]}})
            results.append(run_path(relay, calls, state_path, "one agent retry", retry))
            failing = _update(3)
            relay.agent.add_fault({"status": 400, "count": 1, "match": {"update_id": failing["update_id"]}})
            results.append(run_path(relay, calls, state_path, "terminal failure", failing))
            claim_bytes = _item_size(relay.claim(update["update_id"]))
            memory_mb = int(relay.webhook_function.memory_mb)
            empty_receives = calls.snapshot()["pipe ReceiveMessage (empty)"]

    for result in results:
        print(path_table(result))
        print()
    print(summary_table(results))
    print()
    print(notes(results, durations, claim_bytes, memory_mb, empty_receives))
    return 0


def _update(n: int) -> dict:
    update = json.loads((EVENTS / "private_text.json").read_text())
    update["update_id"] = 990_000_000 + n
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = 880_000_000 + n
    update["message"]["text"] = f"cost benchmark, update {n}"
    return update


def _timed(handler, name: str, durations: dict[str, list[float]]):
    def timed(event, context):
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            durations.setdefault(name, []).append(time.perf_counter() - started)

    return timed


def run_path(relay, calls: Calls, state_path, name: str, update: dict) -> dict:
    """POST `update` to the webhook once, wait for the workflow, count what it cost."""
    before_calls = calls.snapshot()
    before_invocations = len(relay.seams.invocations)
    before_executions = len(relay.pipe.started)
    response = relay.post_update(update)
    if response.status_code != 200 or "skipped" in response.json():
        raise RuntimeError(f"{name}: the webhook did not enqueue the update: {response.status_code} {response.text}")
    _wait_for_execution(relay, before_executions)
    relay.wait_idle(timeout=60)
    executions = relay.pipe.started[before_executions:]
    if len(executions) != 1:
        raise RuntimeError(f"{name}: expected one execution, got {len(executions)}")
    arn = executions[0]
    history = relay.history(arn)
    description = relay.describe(arn)
    steps = state_path(history)
    counted = calls.snapshot() - before_calls
    invocations = Counter(function for function, _ in relay.seams.invocations[before_invocations:])
    invocations[relay.webhook_function.name] += 1  # the webhook is invoked by the HTTP API, not the workflow
    tasks = Counter(
        f"{event['taskScheduledEventDetails']['resourceType']}:{event['taskScheduledEventDetails']['resource']}"
        for event in history
        if event["type"] == "TaskScheduled"
    )
    tasks_by_state = Counter()
    for step, event in _scheduled_in_state(history):
        details = event["taskScheduledEventDetails"]
        if details["resourceType"] == "dynamodb":
            tasks_by_state[f"{details['resource']} ({step})"] += 1
    return {
        "name": name,
        "status": description["status"],
        "path": [step.state for step in steps],
        "entered": sum(1 for event in history if event["type"].endswith("StateEntered")),
        "retries": sum(len(step.retries) for step in steps),
        "input_bytes": len(description["input"].encode()),
        "calls": counted,
        "invocations": invocations,
        "tasks": tasks,
        "dynamodb_tasks": tasks_by_state,
    }


def _wait_for_execution(relay, before: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(relay.pipe.started) <= before:
        if time.monotonic() > deadline:
            raise TimeoutError("no execution started")
        time.sleep(0.02)


def _scheduled_in_state(history: list[dict]):
    """(state name, TaskScheduled event) for every task attempt, retries included."""
    state = None
    for event in sorted(history, key=lambda e: e["id"]):
        if event["type"].endswith("StateEntered"):
            state = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "TaskScheduled":
            yield state, event


def line_items(result: dict) -> list[dict]:
    """What one update on this path costs, item by item."""
    c, inv, tasks = result["calls"], result["invocations"], result["tasks"]
    items = []
    transitions = result["entered"] + result["retries"]
    items.append(
        {
            "item": "Step Functions Standard",
            "counted": f"{result['entered']} states entered + {result['retries']} retries",
            "units": transitions,
            "price": PRICE["transition"],
        }
    )
    pipe_requests = math.ceil(result["input_bytes"] / PIPE_CHUNK)
    items.append(
        {
            "item": "EventBridge Pipes",
            "counted": f"1 execution started, input {result['input_bytes'] / 1024:.1f} KB",
            "units": pipe_requests,
            "price": PRICE["pipe_request"],
        }
    )
    sqs = {
        "SendMessage (webhook)": c["webhook SendMessage"],
        "ReceiveMessage (pipe)": c["pipe ReceiveMessage"],
        "DeleteMessage (pipe)": c["pipe DeleteMessage"],
        "SendMessage (DLQ state)": tasks["sqs:sendMessage"],
    }
    items.append(
        {
            "item": "SQS FIFO requests",
            "counted": _listing(sqs),
            "units": sum(sqs.values()),  # every message here is far below 64 KB: one request each
            "price": PRICE["sqs_fifo_request"],
        }
    )
    items.append(
        {
            "item": "Lambda requests",
            "counted": _listing({name.replace("tgrelay-local-", ""): n for name, n in sorted(inv.items())}),
            "units": sum(inv.values()),
            "price": PRICE["lambda_request"],
        }
    )
    writes = dict(result["dynamodb_tasks"])
    writes["UpdateItem (SendReply, per chunk)"] = c["SendReply UpdateItem"]
    items.append(
        {
            "item": "DynamoDB write units",
            "counted": _listing(writes),
            "units": sum(writes.values()),  # items < 1 KB: 1 WRU per write, failed conditional writes included
            "price": PRICE["wru"],
        }
    )
    reads = {
        "GetItem strongly consistent (SendReply)": c["SendReply GetItem strongly consistent"],
        "GetItem (SendReply)": c["SendReply GetItem"],
    }
    items.append(
        {
            "item": "DynamoDB read units",
            "counted": _listing(reads),
            "units": reads["GetItem strongly consistent (SendReply)"] + 0.5 * reads["GetItem (SendReply)"],
            "price": PRICE["rru"],
        }
    )
    items.append(
        {
            "item": "API Gateway HTTP API",
            "counted": "1 webhook POST",
            "units": 1,
            "price": PRICE["http_api_request"],
        }
    )
    return items


def _listing(counts: dict) -> str:
    shown = [f"{name} {n:g}" for name, n in counts.items() if n]
    return ", ".join(shown) if shown else "none"


def path_table(result: dict) -> str:
    items = line_items(result)
    rows = [
        [item["item"], item["counted"], f"{item['units']:g}", f"{item['price'] * 1e6:.3f}", _dollars(item)]
        for item in items
    ]
    total = sum(item["units"] * item["price"] for item in items) * 1e6
    rows.append(["total", "(Lambda duration extra: see notes)", "", "", f"{total:.2f}"])
    title = f"{result['name']}: {' > '.join(result['path'])}  [{result['status']}]"
    headers = ["item", "counted on the local engine", "units", "$ per 1M units", "$ per 1M updates"]
    return table(title, headers, rows, align="llrrr")


def _dollars(item: dict) -> str:
    return f"{item['units'] * item['price'] * 1e6:.2f}"


def summary_table(results: list[dict]) -> str:
    rows = []
    for result in results:
        items = line_items(result)
        transitions = result["entered"] + result["retries"]
        total = sum(item["units"] * item["price"] for item in items) * 1e6
        sfn = transitions * PRICE["transition"] * 1e6
        target = TARGETS.get(result["name"])
        verdict = "-" if target is None else f"<= {target}: {'met' if transitions <= target else 'MISSED'}"
        rows.append([result["name"], transitions, verdict, f"{sfn:.2f}", f"{total:.2f}", f"{sfn / total:.0%}"])
    return table(
        "Per million updates (us-east-1 list prices, no free tier, Lambda duration excluded)",
        ["path", "billed transitions", "target", "Step Functions $", "total $", "Step Functions share"],
        rows,
    )


def notes(results: list[dict], durations: dict[str, list[float]], claim_bytes: int, memory_mb: int, empty: int) -> str:
    gb = memory_mb / 1024
    per_second = gb * PRICE["lambda_arm_gb_second"] * 1e6
    measured = ", ".join(
        f"{name.replace('tgrelay-local-', '')} {sorted(values)[len(values) // 2] * 1000:.0f} ms"
        for name, values in sorted(durations.items())
    )
    window = 1 * PRICE["http_api_request"] + 1 * PRICE["lambda_request"] + 1 * PRICE["sqs_fifo_request"]
    lines = [
        "Notes",
        f"  Lambda duration is extra: {memory_mb} MB arm64 costs ${per_second:.2f} per million updates per second of",
        "    billed duration. CallAgent's duration is the agent's latency (the function waits for the answer):",
        f"    a 5 s agent turn adds ${5 * per_second:.2f} per million updates. Handler durations here (median,"
        " this machine, loopback fakes):",
        f"    {measured}.",
        "  SQS empty receives are extra and not per update: the pipe polls the queue whether or not anything",
        f"    arrives (here the local poller made {empty} empty receives in this run; the real pipe long-polls).",
        "  Within SQS's 5-minute dedupe window a repeated delivery costs only the HTTP API request, the webhook",
        f"    invocation and an accepted-and-dropped SendMessage: ${window * 1e6:.2f} per million, no execution.",
        "    (moto forgets a deduplication id once its message is consumed, so locally the copy always runs.)",
        f"  The claim item is about {claim_bytes} bytes (< 1 KB): 1 WRU per write, 1 RRU per strongly consistent read.",
        "  Step Functions Standard transitions are nearly the whole bill (the share column): the price of the",
        "    durable, exactly-once workflow with 90 days of history; every other service is cents per million.",
        "  Not counted: Secrets Manager reads (cached 300 s per Lambda environment), CloudWatch Logs and metrics,",
        "    X-Ray traces, the DLQ replay of a terminal failure, free tiers.",
    ]
    return "\n".join(lines)


def _item_size(item: dict | None) -> int:
    """Approximate DynamoDB item size: attribute names plus values as stored."""
    if not item:
        return 0
    return sum(len(name.encode()) + len(str(value).encode()) for name, value in item.items())


if __name__ == "__main__":
    sys.exit(main())
