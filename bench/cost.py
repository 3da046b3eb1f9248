"""Cost per update, counted from real executions on the local engine.

    .venv/bin/python bench/cost.py

Six paths run through the local stack (tgrelay_local.LocalRelay: the real ASL, the real
handlers, the template's settings; a recorded retry clock, so retries do not wait):

  happy path          one update, echo agent, one reply
  duplicate           the same update delivered again after SQS's 5-minute dedupe window:
                      it reaches the workflow and the DynamoDB claim stops it
  one agent retry     the agent answers 503 once, then the reply
  one flood wait      Telegram answers 429 retry_after 30 once: FloodWait waits it, then the reply
  terminal failure    the agent answers 400: compensation, apology, dead-letter queue
  merge               two quick messages of one chat while its previous turn is still with the
                      agent (QueuedMessages=merge): the first carries the second in one agent
                      request; printed per execution as "turn holder", "merge carrier" and
                      "merged message"
  photo               a photo (70 KB) with a caption: CallAgent fetches it (getFile, download,
                      S3 PutObject) and the agent GETs it by its presigned URL
  photo, download retried   the same, Telegram's file download answers 502 once: CallAgent
                      is retried (TelegramUnavailable) and stores the file once
  album               a two-photo album (media_group_id), QueuedMessages=merge: one agent turn
                      with both photos; printed as "album carrier" and "album photo merged"
  reply with a photo  a text message answered with text and a photo (70 KB) the agent serves:
                      SendReply downloads it and uploads it (sendPhoto) after the text
  reply with a photo, upload retried   the same, sendPhoto answers 502 once: SendReply is
                      retried (TelegramUnavailable) and sends the photo, not the text, again

For each, every billable request is counted from what actually happened, not read off the
ASL: state transitions from the execution's history (states entered, plus one per retry:
AWS bills each retry as a transition); Lambda invocations from a wrapper the bench puts
around every LocalFunction's handler (the workflow's tasks, the webhook, and the EventBridge
rule's deliveries to TurnsFunction alike); SQS requests from hooks on the webhook's and the
pipe's clients and the workflow's own sqs:sendMessage tasks; DynamoDB requests from hooks on
the handlers' clients (tgrelay.clients.dynamodb() and the webhook's webhook_dynamodb()) and the
workflow's own dynamodb tasks.

Each counted request is attributed to the update it was made for and the function that made
it: the handler wrapper keeps a thread-local "current function and update" (from the event:
its envelope, the rule event's execution input, or the webhook's body) while the handler runs,
and the botocore hooks read it. A request one execution makes on another's behalf stays with
the one that made it: the grant of a turn is paid by whoever grants it (a message's own
WaitForTurn when the conversation is idle, otherwise the previous holder's MarkDone), and
the clean-up of a merged message's items by its carrier's MarkDone.

DynamoDB units are computed per request from the sizes of the items involved (DynamoDB's
item size: attribute names plus values; the stored item is looked up, without being counted,
through the engine's own client before and after each write):
  - a write (PutItem, UpdateItem, DeleteItem) costs 1 WRU per 1 KB, rounded up, of the larger
    of the item before and after; at least 1 WRU. A write whose condition fails still costs
    (by the existing item's size, at least 1 WRU); so does a DeleteItem of nothing.
  - TransactWriteItems: each item of the transaction costs 2 WRU per 1 KB, rounded up per item
    (transactional writes are billed double). A cancelled transaction is counted the same
    (an assumption; none happens here unless two grants race).
  - GetItem: 1 RRU per 4 KB of the item, rounded up, strongly consistent; at least 1 (also for
    a missing item); half of that eventually consistent.
  - Query: 1 RRU per 4 KB of all items read, summed and rounded up per request (per page),
    strongly consistent; at least 1 (a small conversation is 1 RRU); half eventually consistent.
Step Functions SendTaskSuccess / SendTaskFailure (TurnsFunction handing out a turn) are API
calls, not transitions: listed for information at $0.

Prices (us-east-1, on-demand list prices, free tiers ignored), checked 2026-11-22:
  Step Functions Standard  $0.025 per 1,000 state transitions; "each retry will be charged as
                           an additional state transition". The page prices Standard workflows
                           by transitions only: SendTaskSuccess / SendTaskFailure have no price
                           of their own (shown at $0)   aws.amazon.com/step-functions/pricing/
  EventBridge Pipes        $0.40 per million requests (counted after filtering); each 64 KB
                           chunk of a payload is billed as one request
                                                                aws.amazon.com/eventbridge/pricing/
  EventBridge rule         the Step Functions status-change events TurnsFunction's rule
                           receives are AWS service events on the default bus: not charged
                           ("AWS management events are ingested by the event bus for free")
                                                                aws.amazon.com/eventbridge/pricing/
  SQS FIFO                 $0.50 per million requests (first 100 billion a month); each 64 KB
                           chunk is a request; empty receives are requests too
                                                                aws.amazon.com/sqs/pricing/
  Lambda                   $0.20 per million requests; duration $0.0000133334 per GB-second on
                           arm64 (first 7.5 billion GB-s a month)
                                                                aws.amazon.com/lambda/pricing/
  DynamoDB on-demand       $0.625 per million write request units, $0.125 per million read
                           request units (since the 2024-11-01 cut); a standard write of up to
                           1 KB is 1 WRU, a transactional write 2 WRU per 1 KB; a strongly
                           consistent read of up to 4 KB 1 RRU, eventually consistent 0.5
                                                                aws.amazon.com/dynamodb/pricing/on-demand/
                           (the stored copy of that page read here breaks off inside the write
                           unit definition; the x2 for transactional writes is also stated on
                           aws.amazon.com/dynamodb/pricing/provisioned/: "a transactional write
                           request of a 3 KB item would require six WCUs")
                           per-operation rules (Query sums the items read and rounds up once;
                           a failed conditional write still consumes write units; a delete
                           of a missing item 1 WRU): DynamoDB Developer Guide, "DynamoDB read
                           and write operations" (docs.aws.amazon.com/amazondynamodb/latest/
                           developerguide/read-write-operations.html)
  S3 Standard              $0.005 per 1,000 PUT, COPY, POST, LIST requests; $0.0004 per 1,000 GET,
                           SELECT and all other requests (HeadObject; the agent's GET by presigned
                           URL); storage ($0.023 per GB-month, FileRetentionDays) not counted
                                                                aws.amazon.com/s3/pricing/
  API Gateway HTTP API     $1.00 per million requests (first 300 million a month), metered in
                           512 KB increments                   aws.amazon.com/api-gateway/pricing/
"""

import argparse
import base64
import contextlib
import itertools
import json
import math
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from benchlib import ROOT, machine_line, quiet_engine, table

PRICE = {
    "transition": 0.025 / 1000,
    "pipe_request": 0.40 / 1e6,
    "sqs_fifo_request": 0.50 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_arm_gb_second": 0.0000133334,
    "wru": 0.625 / 1e6,
    "rru": 0.125 / 1e6,
    "http_api_request": 1.00 / 1e6,
    "s3_put_request": 0.005 / 1000,
    "s3_get_request": 0.0004 / 1000,
    "free": 0.0,
}
# Pipes and SQS both bill each 64 KB chunk of a payload as a request; SQS messages here are far smaller.
PIPE_CHUNK = 64 * 1024
WRITE_UNIT, READ_UNIT = 1024, 4096
# Billed transitions: happy path and duplicate are DESIGN.md section 4's budgets (the turn
# included), 5 and 2, each one more for CheckEnvelope (issue 14: a message that is not an envelope
# is dead-lettered instead of failing with States.Runtime); the merge rows are the paths of a
# carrier and of the message merged into it.
TARGETS = {
    "happy path": 6,
    "duplicate": 3,
    "merge carrier": 6,
    "merged message": 4,
    "photo": 6,
    "reply with a photo": 6,  # the files ride in SendReply: no state of their own
}
EVENTS = ROOT / "events" / "telegram"
PREFIX = "tgrelay-local-"
_calls = itertools.count(1)  # DynamoDB call numbers (next() on a count is atomic in CPython)


@dataclass(frozen=True)
class Request:
    """One counted request (or, for TransactWriteItems, one item of it)."""

    update_id: int | None  # the update it was made for; None: not tied to one (empty receives)
    caller: str  # the function that made it, "pipe", or "workflow <State>" for a service task
    service: str  # lambda, sqs, dynamodb, stepfunctions
    operation: str
    table: str = ""  # DynamoDB: "claims" or "turns"
    units: float = 1.0  # requests; DynamoDB: WRU or RRU
    note: str = ""
    size: int = 0  # DynamoDB: the bytes the units were computed from
    call: int = 0  # DynamoDB: which call (a transaction's items share one)


class Meter:
    """Counted requests, and which function is running on this thread for which update."""

    def __init__(self) -> None:
        self.records: list[Request] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def add(self, request: Request) -> None:
        with self._lock:
            self.records.append(request)

    def mark(self) -> int:
        with self._lock:
            return len(self.records)

    def since(self, mark: int) -> list[Request]:
        with self._lock:
            return list(self.records[mark:])

    @contextlib.contextmanager
    def running(self, function: str, update_id: int | None):
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append((function, update_id))
        try:
            yield
        finally:
            stack.pop()

    def current(self) -> tuple[str, int | None]:
        stack = self._local.__dict__.get("stack") or [("outside any function", None)]
        return stack[-1]


class Gate:
    """Holds one handler call until released (the merge scenario keeps a turn busy with it)."""

    def __init__(self) -> None:
        self.entered, self.released = threading.Event(), threading.Event()

    def hold(self, timeout: float = 60) -> None:
        self.entered.set()
        self.released.wait(timeout)


# -- DynamoDB sizes and units -----------------------------------------------------------


def attribute_size(value: dict) -> int:
    """DynamoDB's size of one typed attribute value."""
    (kind, data), *_ = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: element}) for element in data)
    if kind == "L":
        return 3 + sum(1 + attribute_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + attribute_size(element) for name, element in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict | None) -> int:
    """DynamoDB's item size: attribute names plus values (0 for no item)."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in (item or {}).items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT))
    return units if consistent else units / 2


class Tables:
    """Labels, key schemas and stored item sizes of the engine's tables, read through the
    engine's own client (not the handlers' one: these look-ups are not counted)."""

    def __init__(self, client, labels: dict[str, str]):
        self.client = client
        self.labels = labels  # table name -> short label
        self._keys: dict[str, list[str]] = {}

    def label(self, name: str) -> str:
        return self.labels.get(name, name)

    def key_of(self, name: str, item: dict) -> dict:
        if name not in self._keys:
            schema = self.client.describe_table(TableName=name)["Table"]["KeySchema"]
            self._keys[name] = [entry["AttributeName"] for entry in schema]
        return {attribute: item[attribute] for attribute in self._keys[name]}

    def stored_size(self, name: str, key: dict) -> int:
        return item_size(self.client.get_item(TableName=name, Key=key, ConsistentRead=True).get("Item"))


def _targets(operation: str, params: dict, tables: Tables) -> list[tuple[str, dict, dict | None]]:
    """(table, key, item written by a put) of each item a write touches."""
    if operation == "PutItem":
        return [(params["TableName"], tables.key_of(params["TableName"], params["Item"]), params["Item"])]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(params["TableName"], params["Key"], None)]
    if operation == "TransactWriteItems":
        targets = []
        for action in params["TransactItems"]:
            (kind, body), *_ = action.items()
            if kind == "Put":
                targets.append((body["TableName"], tables.key_of(body["TableName"], body["Item"]), body["Item"]))
            else:
                targets.append((body["TableName"], body["Key"], None))
        return targets
    return []


def dynamodb_requests(
    operation: str, params: dict, parsed: dict, before: list[int], tables: Tables, update_id, caller: str
) -> list[Request]:
    """What one DynamoDB call consumed, by the rules in the module docstring."""
    error = (parsed.get("Error") or {}).get("Code", "")
    failed = error == "ConditionalCheckFailedException"
    consistent = bool(params.get("ConsistentRead"))
    call = next(_calls)

    def request(table: str, units: float, size: int, note: str = "") -> Request:
        return Request(update_id, caller, "dynamodb", operation, tables.label(table), units, note, size, call)

    if error and error not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
        return [request(params.get("TableName", "?"), 0, 0, f"rejected: {error}")]
    if operation == "GetItem":
        size = item_size(parsed.get("Item"))
        note = "strongly consistent" if consistent else "eventually consistent"
        return [request(params["TableName"], read_units(size, consistent), size, note)]
    if operation == "Query":
        size = sum(item_size(item) for item in parsed.get("Items", []))
        note = f"{'strongly' if consistent else 'eventually'} consistent"
        return [request(params["TableName"], read_units(size, consistent), size, note)]
    targets = _targets(operation, params, tables)
    if not targets:
        return [request(params.get("TableName", "?"), 0, 0, "not priced here")]
    out = []
    for (table_name, key, put), old in zip(targets, before, strict=True):
        if error:  # the condition failed or the transaction was cancelled: nothing was written
            new = 0
        elif put is not None:
            new = item_size(put)
        elif operation == "DeleteItem" or "Delete" in _action_kinds(params, key):
            new = 0
        else:
            new = tables.stored_size(table_name, key)
        size = max(old, new)
        if operation == "TransactWriteItems":
            note = "cancelled" if error else ""
            out.append(request(table_name, 2 * write_units(size), size, note))
        else:
            out.append(request(table_name, write_units(size), size, "condition failed" if failed else ""))
    return out


def _action_kinds(params: dict, key: dict) -> set[str]:
    """The kinds of TransactWriteItems actions on `key` (Update, Delete, ...)."""
    return {
        kind for action in params.get("TransactItems", []) for kind, body in action.items() if body.get("Key") == key
    }


# -- hooks on the handlers' clients -------------------------------------------------------


def watch_dynamodb(meter: Meter, client, tables: Tables) -> None:
    def before(params, model, context, **_):
        caller, update_id = meter.current()
        sizes = [tables.stored_size(table, key) for table, key, _ in _targets(model.name, params, tables)]
        context["bench"] = (caller, update_id, dict(params), sizes)

    def after(parsed, model, context, **_):
        caller, update_id, params, sizes = context.pop("bench")
        for request in dynamodb_requests(model.name, params, parsed, sizes, tables, update_id, caller):
            meter.add(request)

    client.meta.events.register("before-parameter-build.dynamodb", before)
    client.meta.events.register("after-call.dynamodb", after)


def watch_stepfunctions(meter: Meter, client) -> None:
    def before(model, **_):
        caller, update_id = meter.current()
        meter.add(Request(update_id, caller, "stepfunctions", model.name))

    client.meta.events.register("before-parameter-build.states", before)


def watch_s3(meter: Meter, client) -> None:
    """CallAgent's S3 requests (HeadObject, PutObject); presigning is local and not a request."""

    def before_send(event_name, **_):  # sent requests only: a presigned URL builds its parameters too
        caller, update_id = meter.current()
        meter.add(Request(update_id, caller, "s3", event_name.rsplit(".", 1)[-1]))

    client.meta.events.register("before-send.s3", before_send)


def count_agent_downloads(meter: Meter, relay, update_ids: set[int]) -> None:
    """The agent's GETs of presigned URLs (the echo agent fetches each URL it is given)."""
    for call in relay.agent.calls_snapshot():
        if "request" in call and call["request"].get("update_id") in update_ids:  # not a GET of its own files
            for fetched in call.get("fetched", []):
                if fetched.get("status") is not None:
                    meter.add(Request(call["request"]["update_id"], "agent", "s3", "GetObject"))


def watch_webhook_sqs(meter: Meter, client, queue_url: str) -> None:
    def before(params, model, **_):
        if model.name == "SendMessage" and params.get("QueueUrl") == queue_url:
            caller, update_id = meter.current()
            meter.add(Request(update_id, caller, "sqs", "SendMessage"))

    client.meta.events.register("before-parameter-build.sqs", before)


def watch_pipe_sqs(meter: Meter, client, queue_url: str) -> None:
    """The pipe's ReceiveMessage (split over the updates it returned, or empty) and DeleteMessage."""
    receipts: dict[str, int | None] = {}

    def before(params, model, context, **_):
        if params.get("QueueUrl") != queue_url:
            return
        if model.name == "ReceiveMessage":
            context["bench_receive"] = True
        elif model.name == "DeleteMessage":
            meter.add(Request(receipts.pop(params["ReceiptHandle"], None), "pipe", "sqs", "DeleteMessage"))

    def after(parsed, model, context, **_):
        if not context.get("bench_receive") or model.name != "ReceiveMessage":
            return
        messages = parsed.get("Messages") or []
        if not messages:
            meter.add(Request(None, "pipe", "sqs", "ReceiveMessage", note="empty"))
        for message in messages:
            update_id = _body_update_id(message.get("Body"))
            receipts[message["ReceiptHandle"]] = update_id
            meter.add(Request(update_id, "pipe", "sqs", "ReceiveMessage", units=1 / len(messages)))

    client.meta.events.register("before-parameter-build.sqs", before)
    client.meta.events.register("after-call.sqs", after)


def _body_update_id(body) -> int | None:
    try:
        value = json.loads(body)
    except (TypeError, ValueError):
        return None
    return value.get("update_id") if isinstance(value, dict) else None


def event_update_id(event: dict) -> int | None:
    """The update a Lambda event is about: a workflow task's envelope, the rule event's
    execution input, or the webhook's HTTP body."""
    if isinstance(event.get("update"), dict):
        return event["update"].get("update_id")
    if event.get("source") == "aws.states":
        try:
            return json.loads(event["detail"]["input"])[0]["update"]["update_id"]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    if "body" in event:
        body = event.get("body") or ""
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        return _body_update_id(body)
    return None


def instrument(function, meter: Meter, durations: dict[str, list[float]], gates: dict) -> None:
    """Count each invocation of `function`, time it, and tell the hooks who is calling."""
    handler, name = function.handler, function.name.removeprefix(PREFIX)

    def instrumented(event, context):
        update_id = event_update_id(event)
        source = "rule" if event.get("source") == "aws.states" else ""
        meter.add(Request(update_id, name, "lambda", "Invoke", note=source))
        gate = gates.get((name, update_id))
        if gate is not None:
            gate.hold()
        with meter.running(name, update_id):
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                durations.setdefault(name, []).append(time.perf_counter() - started)

    function.handler = instrumented


# -- running the paths --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    print(machine_line())
    print()

    from tgrelay import clients

    meter = Meter()
    durations: dict[str, list[float]] = {}
    gates: dict[tuple[str, int], Gate] = {}
    with quiet_engine() as relay:
        turns_table = relay.template.refs["TurnsTable"]
        tables = Tables(relay.dynamodb, {relay.table_name: "claims", turns_table: "turns"})
        watch_pipe_sqs(meter, relay.sqs, relay.pipe.queue_url)
        # The handlers' own (cached) clients, made as a function would make them: with a function's
        # environment (AWS_ENDPOINT_URL_S3 among it), not the process's.
        with relay.as_function("CallAgentFunction"):
            watch_webhook_sqs(meter, clients.sqs(), relay.pipe.queue_url)
            watch_dynamodb(meter, clients.dynamodb(), tables)
            watch_dynamodb(meter, clients.webhook_dynamodb(), tables)
            watch_stepfunctions(meter, clients.stepfunctions())
            watch_s3(meter, clients.s3())
        functions = {id(f): f for f in relay.seams.functions.values()}
        functions[id(relay.webhook_function)] = relay.webhook_function
        for function in functions.values():
            instrument(function, meter, durations, gates)

        update = _update(1)
        results = [
            run_path(relay, meter, tables, "happy path", update),
            run_path(relay, meter, tables, "duplicate", update),  # the very same update again
        ]
        retry = _update(2)
        relay.agent.add_fault({"status": 503, "count": 1, "match": {"update_id": retry["update_id"]}})
        results.append(run_path(relay, meter, tables, "one agent retry", retry))
        flooded = _update(7)
        relay.telegram.add_fault(
            {"status": 429, "retry_after": 30, "count": 1, "match": {"chat_id": flooded["message"]["chat"]["id"]}}
        )
        results.append(run_path(relay, meter, tables, "one flood wait", flooded))
        failing = _update(3)
        relay.agent.add_fault({"status": 400, "count": 1, "match": {"update_id": failing["update_id"]}})
        results.append(run_path(relay, meter, tables, "terminal failure", failing))
        results += run_merge(relay, meter, tables, gates)
        results.append(run_path(relay, meter, tables, "photo", _photo_update(13)))  # 7 is the flood wait's
        relay.telegram.add_fault({"method": "download", "status": 502, "count": 1})
        results.append(run_path(relay, meter, tables, "photo, download retried", _photo_update(8)))
        results += run_album(relay, meter, tables)
        answered = _update(11)
        _answer_with_a_photo(relay, answered)
        results.append(run_path(relay, meter, tables, "reply with a photo", answered))
        retried = _update(12)
        _answer_with_a_photo(relay, retried)
        relay.telegram.add_fault({"method": "sendPhoto", "status": 502, "count": 1})
        results.append(run_path(relay, meter, tables, "reply with a photo, upload retried", retried))
        claim = relay.dynamodb.get_item(
            TableName=relay.table_name, Key={"pk": {"S": f"update#{update['update_id']}"}}, ConsistentRead=True
        ).get("Item")
        left_over = relay.dynamodb.scan(TableName=turns_table, ConsistentRead=True)["Items"]
        memory_mb = int(relay.webhook_function.memory_mb)
        records = meter.since(0)

    for result in results:
        print(path_table(result))
        print()
    print(summary_table(results))
    print()
    print(notes(results, durations, item_size(claim), memory_mb, records, left_over))
    return 0


def _update(n: int, chat: int | None = None) -> dict:
    update = json.loads((EVENTS / "private_text.json").read_text())
    update["update_id"] = 990_000_000 + n
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = chat or 880_000_000 + n
    update["message"]["text"] = f"cost benchmark, update {n}"
    return update


def _answer_with_a_photo(relay, update: dict) -> None:
    """The echo agent answers `update` with its text and a 70 KB photo it serves itself."""
    photo = {"kind": "photo", "url": "/files/cost-reply.png?size=70000", "caption": "the chart"}
    relay.agent.add_fault(
        {"reply": "Here is the chart.", "attachments": [photo], "match": {"update_id": update["update_id"]}}
    )


def _photo_update(n: int, chat: int | None = None) -> dict:
    """events/telegram/photo_with_caption.json with its own ids (files are stored per file)."""
    update = json.loads((EVENTS / "photo_with_caption.json").read_text())
    update["update_id"] = 990_000_000 + n
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = chat or 880_000_000 + n
    for size in update["message"]["photo"]:
        size["file_id"] += f"-cost-{n}"
        size["file_unique_id"] += f"-cost-{n}"
    return update


def _post(relay, name: str, update: dict) -> None:
    response = relay.post_update(update)
    if response.status_code != 200 or "skipped" in response.json():
        raise RuntimeError(f"{name}: the webhook did not enqueue the update: {response.status_code} {response.text}")


def run_path(relay, meter: Meter, tables: Tables, name: str, update: dict) -> dict:
    """POST `update` to the webhook once, wait for the workflow, count what it cost."""
    mark = meter.mark()
    before_executions = len(relay.pipe.started)
    _post(relay, name, update)
    _wait_for_executions(relay, before_executions + 1)
    relay.wait_idle(timeout=60)
    executions = relay.pipe.started[before_executions:]
    if len(executions) != 1:
        raise RuntimeError(f"{name}: expected one execution, got {len(executions)}")
    count_agent_downloads(meter, relay, {update["update_id"]})
    return _result(relay, tables, name, executions[0], update["update_id"], meter.since(mark))


def run_album(relay, meter: Meter, tables: Tables) -> list[dict]:
    """Two photos of one album, delivered one after the other (both registered at the webhook
    before the first one's execution starts, as Telegram sends an album within milliseconds)."""
    from unittest import mock

    chat = 880_000_200
    first, second = _photo_update(9, chat=chat), _photo_update(10, chat=chat)
    for photo in (first, second):
        photo["message"]["media_group_id"] = "cost-album"
    del second["message"]["caption"]
    mark = meter.mark()
    before_executions = len(relay.pipe.started)
    with mock.patch.object(relay.pipe, "poll_once", return_value=False):
        _post(relay, "album carrier", first)
        _post(relay, "album photo merged", second)
    _wait_for_executions(relay, before_executions + 2)
    relay.wait_idle(timeout=60)
    count_agent_downloads(meter, relay, {first["update_id"], second["update_id"]})
    results = _results(
        relay, meter, tables, mark, before_executions, (("album carrier", first), ("album photo merged", second))
    )
    if results[1]["path"] != ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "MergedIntoTurn"]:
        raise RuntimeError(f"the album's second photo was not merged: {results[1]['path']}")
    return results


def _results(relay, meter: Meter, tables: Tables, mark, first_execution: int, named: tuple) -> list[dict]:
    """_result of each (name, update) in `named`, from the executions started since index
    `first_execution` and the requests metered since `mark`."""
    by_update = {}
    for arn in relay.pipe.started[first_execution:]:
        by_update[json.loads(relay.describe(arn)["input"])[0]["update"]["update_id"]] = arn
    records = meter.since(mark)
    return [
        _result(relay, tables, name, by_update[update["update_id"]], update["update_id"], records)
        for name, update in named
    ]


def run_merge(relay, meter: Meter, tables: Tables, gates: dict) -> list[dict]:
    """A turn is busy (the holder's CallAgent is held back by a gate, so nothing depends on
    timing); two messages of the same chat come in one after the other and both wait for the
    turn; then the holder's agent call goes ahead, and its MarkDone grants the next turn to
    the first of the two with the second merged into it."""
    chat = 880_000_100
    holder, carrier, merged = (_update(n, chat=chat) for n in (4, 5, 6))
    gate = gates[("CallAgentFunction", holder["update_id"])] = Gate()
    mark = meter.mark()
    before_executions = len(relay.pipe.started)
    try:
        _post(relay, "turn holder", holder)
        if not gate.entered.wait(30):
            raise TimeoutError("the turn holder never reached CallAgent")
        _post(relay, "merge carrier", carrier)
        _post(relay, "merged message", merged)
        _wait_until_waiting(relay, tables, f"telegram:{chat}", {carrier["update_id"], merged["update_id"]})
    finally:
        gate.released.set()
    _wait_for_executions(relay, before_executions + 3)
    relay.wait_idle(timeout=60)
    results = _results(
        relay,
        meter,
        tables,
        mark,
        before_executions,
        (("turn holder", holder), ("merge carrier", carrier), ("merged message", merged)),
    )
    if results[2]["path"] != ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "MergedIntoTurn"]:
        raise RuntimeError(f"the second message was not merged: {results[2]['path']}")
    return results


def _wait_until_waiting(relay, tables: Tables, conversation: str, update_ids: set[int], timeout: float = 30) -> None:
    """Until every one of `update_ids` is WAITING in the turns table (read without being counted)."""
    turns_table = next(name for name, label in tables.labels.items() if label == "turns")
    deadline = time.monotonic() + timeout
    while True:
        items = relay.dynamodb.query(
            TableName=turns_table,
            KeyConditionExpression="conversation = :c",
            ExpressionAttributeValues={":c": {"S": conversation}},
            ConsistentRead=True,
        )["Items"]
        waiting = {int(item["update_id"]["N"]) for item in items if item["status"]["S"] == "WAITING"}
        if update_ids <= waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all of {sorted(update_ids)} came to WaitForTurn")
        time.sleep(0.02)


def _wait_for_executions(relay, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(relay.pipe.started) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("executions did not start")
        time.sleep(0.02)


def _result(relay, tables: Tables, name: str, arn: str, update_id: int, records: list[Request]) -> dict:
    from tgrelay_local.history import state_path

    history = relay.history(arn)
    description = relay.describe(arn)
    steps = state_path(history)
    own = [record for record in records if record.update_id == update_id]
    tasks = Counter()
    claim_size = tables.stored_size(relay.table_name, {"pk": {"S": f"update#{update_id}"}})
    for state, event, outcome in _task_attempts(history):
        details = event["taskScheduledEventDetails"]
        tasks[f"{details['resourceType']}:{details['resource']}"] += 1
        if details["resourceType"] == "dynamodb":
            # The workflow's own DynamoDB tasks write the claim (a small item: see the notes).
            failed = "ConditionalCheckFailed" in outcome
            own.append(
                Request(
                    update_id,
                    f"workflow {state}",
                    "dynamodb",
                    details["resource"],
                    "claims",
                    write_units(claim_size),
                    "condition failed" if failed else "",
                    claim_size,
                    next(_calls),
                )
            )
    return {
        "name": name,
        "status": description["status"],
        "path": [step.state for step in steps],
        "entered": sum(1 for event in history if event["type"].endswith("StateEntered")),
        "retries": sum(len(step.retries) for step in steps),
        "input_bytes": len(description["input"].encode()),
        "records": own,
        "tasks": tasks,
    }


def _task_attempts(history: list[dict]):
    """(state name, TaskScheduled event, error of the attempt or "") for every task attempt."""
    state, attempts = None, []
    for event in sorted(history, key=lambda e: e["id"]):
        if event["type"].endswith("StateEntered"):
            state = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "TaskScheduled":
            attempts.append([state, event, ""])
        elif event["type"] == "TaskFailed" and attempts:
            attempts[-1][2] = event.get("taskFailedEventDetails", {}).get("error", "failed")
    return [tuple(attempt) for attempt in attempts]


# -- the tables ---------------------------------------------------------------------------


def _dynamodb_rows(records: list[Request], reads: bool) -> list[tuple[str, str, float]]:
    """(caller: table, what, units) of the DynamoDB requests, writes or reads."""
    rows = []
    mine = [r for r in records if r.service == "dynamodb" and (r.operation in ("GetItem", "Query")) == reads]
    by_caller_table: dict[tuple[str, str], list[Request]] = defaultdict(list)
    for record in mine:
        by_caller_table[(record.caller, record.table)].append(record)
    for (caller, table_label), group in sorted(by_caller_table.items(), key=lambda kv: _caller_order(kv[0])):
        kinds: dict[tuple[str, str], list[Request]] = defaultdict(list)
        for record in group:
            kinds[(record.operation, record.note)].append(record)
        parts = []
        for (operation, note), same in kinds.items():
            calls = len({record.call for record in same})
            shown = [] if note in ("", "strongly consistent") else [note]
            if operation == "TransactWriteItems":
                shown.insert(0, f"{len(same)} item{'s' if len(same) > 1 else ''} here, transactional x2")
            parts.append(f"{operation} {calls}" + (f" ({', '.join(shown)})" if shown else ""))
        rows.append((f"{caller}: {table_label}", ", ".join(parts), sum(record.units for record in group)))
    return rows


_ORDER = ("WebhookFunction", "workflow ClaimUpdate", "TurnsFunction", "CallAgentFunction", "SendReplyFunction")


def _caller_order(key: tuple[str, str]) -> tuple[int, str, str]:
    caller, table_label = key
    rank = next((i for i, name in enumerate(_ORDER) if caller == name), len(_ORDER))
    return rank, caller, table_label


def line_items(result: dict) -> list[dict]:
    """What one update on this path costs, item by item (with attributed sub-rows)."""
    records, tasks = result["records"], result["tasks"]
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
    sqs_calls = Counter()
    for record in records:
        if record.service == "sqs":
            sqs_calls[f"{record.operation} ({'webhook' if record.caller == 'WebhookFunction' else record.caller})"] += (
                record.units
            )
    sqs_calls["SendMessage (DLQ state)"] = tasks["sqs:sendMessage"]
    items.append(
        {
            "item": "SQS FIFO requests",
            "counted": _listing(sqs_calls),
            "units": sum(sqs_calls.values()),  # every message here is far below 64 KB: one request each
            "price": PRICE["sqs_fifo_request"],
        }
    )
    invocations = Counter(r.caller for r in records if r.service == "lambda")
    items.append(
        {
            "item": "Lambda requests",
            "counted": _listing(dict(sorted(invocations.items()))),
            "units": sum(invocations.values()),
            "price": PRICE["lambda_request"],
        }
    )
    for reads, label, price in ((False, "DynamoDB write units", "wru"), (True, "DynamoDB read units", "rru")):
        rows = _dynamodb_rows(records, reads)
        items.append(
            {
                "item": label,
                "counted": "by caller and table:" if rows else "none",
                "units": sum(units for _, _, units in rows),
                "price": PRICE[price],
                "details": rows,
            }
        )
    sfn_api = Counter(f"{r.operation} ({r.caller})" for r in records if r.service == "stepfunctions")
    if sfn_api:
        items.append(
            {
                "item": "Step Functions API calls",
                "counted": _listing(sfn_api) + " (not billed)",
                "units": sum(sfn_api.values()),
                "price": PRICE["free"],
            }
        )
    s3_calls = Counter(f"{r.operation} ({r.caller.removesuffix('Function')})" for r in records if r.service == "s3")
    if s3_calls:
        puts = {name: n for name, n in s3_calls.items() if name.startswith("PutObject")}
        gets = {name: n for name, n in s3_calls.items() if not name.startswith("PutObject")}
        items.append(
            {
                "item": "S3 PUT requests",
                "counted": _listing(puts),
                "units": sum(puts.values()),
                "price": PRICE["s3_put_request"],
            }
        )
        items.append(
            {
                "item": "S3 GET requests",
                "counted": _listing(gets),
                "units": sum(gets.values()),
                "price": PRICE["s3_get_request"],
            }
        )
    rule = Counter(r.caller for r in records if r.service == "lambda" and r.note == "rule")
    if rule:
        items.append(
            {
                "item": "EventBridge rule event",
                "counted": f"execution status change to {_listing(rule)} (an AWS service event: not charged)",
                "units": sum(rule.values()),
                "price": PRICE["free"],
            }
        )
    items.append(
        {
            "item": "API Gateway HTTP API",
            "counted": "1 webhook POST",
            "units": invocations.get("WebhookFunction", 0),
            "price": PRICE["http_api_request"],
        }
    )
    return items


def _listing(counts: dict) -> str:
    shown = [f"{name} {n:g}" for name, n in counts.items() if n]
    return ", ".join(shown) if shown else "none"


def path_table(result: dict) -> str:
    items = line_items(result)
    rows = []
    for item in items:
        rows.append([item["item"], item["counted"], f"{item['units']:g}", f"{item['price'] * 1e6:.3f}", _dollars(item)])
        for caller, what, units in item.get("details", []):
            rows.append([f"  {caller}", what, f"{units:g}", "", ""])
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
        dynamodb = sum(item["units"] * item["price"] for item in items if item["item"].startswith("DynamoDB")) * 1e6
        target = TARGETS.get(result["name"])
        verdict = "-" if target is None else f"<= {target}: {'met' if transitions <= target else 'MISSED'}"
        rows.append(
            [
                result["name"],
                transitions,
                verdict,
                f"{sfn:.2f}",
                f"{dynamodb:.2f}",
                f"{total:.2f}",
                f"{sfn / total:.0%}",
            ]
        )
    return table(
        "Per million updates (us-east-1 list prices, no free tier, Lambda duration excluded)",
        ["path", "billed transitions", "target", "Step Functions $", "DynamoDB $", "total $", "Step Functions share"],
        rows,
    )


def notes(
    results: list[dict],
    durations: dict[str, list[float]],
    claim_bytes: int,
    memory_mb: int,
    records: list[Request],
    left_over: list[dict],
) -> str:
    gb = memory_mb / 1024
    per_second = gb * PRICE["lambda_arm_gb_second"] * 1e6
    measured = ", ".join(
        f"{name} {sorted(values)[len(values) // 2] * 1000:.0f} ms" for name, values in sorted(durations.items())
    )
    window = 1 * PRICE["http_api_request"] + 1 * PRICE["lambda_request"] + 1 * PRICE["sqs_fifo_request"]
    empty = sum(1 for r in records if r.note == "empty")
    stray = Counter(
        f"{r.caller} {r.operation}"
        for r in records
        if r.update_id is None and r.note != "empty" and r.service != "lambda"
    )
    dynamodb = [r for r in records if r.service == "dynamodb"]
    written = max((r for r in dynamodb if r.operation not in ("GetItem", "Query")), key=lambda r: r.size)
    queried = max((r for r in dynamodb if r.operation == "Query"), key=lambda r: r.size)
    by_name = {result["name"]: result for result in results}
    merge = [by_name[name] for name in ("turn holder", "merge carrier", "merged message") if name in by_name]
    merge_total = sum(_total(result) for result in merge)
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
        f"    invocation and an accepted-and-dropped SendMessage: ${window * 1e6:.2f} per million, no execution",
        f"    (plus the webhook's turns PutItem, 1 WRU, ${PRICE['wru'] * 1e6:.2f} per million; see QUEUED below).",
        "    (moto forgets a deduplication id once its message is consumed, so locally the copy always runs.)",
        f"  Item sizes: the claim is {claim_bytes} bytes; the largest item written was {written.size} bytes"
        f" ({written.table}, {written.operation}",
        f"    by {written.caller}), the most a Query read {queried.size} bytes ({queried.table}): every write here"
        " is 1 WRU per item",
        "    (2 in a transaction) and every GetItem or Query 1 RRU; a WAITING item carries its envelope and task",
        "    token, so a long message (or a replayed turn's carried messages) makes its writes cost more.",
        "  DynamoDB requests are attributed to the update whose handler made them. The turn's grant is paid by",
        "    whoever grants it: a message's own WaitForTurn when its chat is idle (a 1-item transaction, 2 WRU),",
        "    else the previous holder's MarkDone (the turn holder row: its MarkDone grants the carrier's turn",
        "    with the merged message in it, 3 transaction items). A merged message's items are cleaned up",
        "    by its carrier's MarkDone (the merged claim's outcome, the member's GetItem and DeleteItem).",
    ]
    if merge:
        lines += [
            f"  The merge scenario as a whole (three updates, two agent requests) costs ${merge_total:.2f} per million",
            f"    such bursts: ${merge_total / 3:.2f} per update, against "
            f"${_total(by_name['happy path']):.2f} for an update on its own.",
        ]
    if left_over:
        statuses = Counter(item["status"]["S"] for item in left_over)
        lines += [
            f"  Left in the turns table after the run: {_listing(statuses)}. A copy delivered after its original",
            "    finished registers a QUEUED item at the webhook that its execution (AlreadyHandled) never removes;",
            "    the chat's next message passes it over (a claims GetItem and a DeleteItem, paid then), or TTL does.",
        ]
    if stray:
        lines.append(f"  Requests on the shared clients outside any function (not in any row): {_listing(stray)}.")
    lines += [
        "  Step Functions Standard transitions are nearly the whole bill (the share column): the price of the",
        "    durable, exactly-once workflow with 90 days of history; every other service is cents per million.",
        "  Not counted: Secrets Manager reads (cached 300 s per Lambda environment), CloudWatch Logs and metrics,",
        "    X-Ray traces, the DLQ replay of a terminal failure, SDK retries of a DynamoDB request (none here),",
        "    DynamoDB storage, free tiers.",
    ]
    return "\n".join(lines)


def _total(result: dict) -> float:
    return sum(item["units"] * item["price"] for item in line_items(result)) * 1e6


if __name__ == "__main__":
    sys.exit(main())
