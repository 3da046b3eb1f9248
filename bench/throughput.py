"""Throughput of the local stack: N updates across many chats, posted concurrently over HTTP.

    .venv/bin/python bench/throughput.py [--updates 1000] [--chats 100] [--workers 8]

Starts the local engine (tgrelay_local.LocalRelay: moto in-process, the real ASL and
handlers, the pipe poller, the loopback webhook, the fake Telegram and the echo agent; a
recorded retry clock, though no fault is injected) and POSTs --updates distinct updates,
round-robin over --chats chats, from a bounded pool of --workers threads, to the webhook on
127.0.0.1. Then waits (bounded by --timeout) until the fake Telegram has recorded a reply for
every update and reports:

  - updates per second end to end: first POST sent -> last reply recorded by the fake Telegram
  - per update, reply recorded by the fake Telegram - webhook's 200 received: median and p99
  - accounting: replies == updates sent, no update answered twice, none lost, every
    execution SUCCEEDED; and how many chats got their replies in another order than their
    webhook answers (the pipe starts executions FIRE_AND_FORGET, so a chat's updates run
    side by side once they are out of SQS)

Everything runs in one Python process on this machine: moto's SQS, DynamoDB and ASL
interpreter, every handler, both fakes and the HTTP servers share one interpreter lock.
The figure is the local engine's capacity, not AWS's.
"""

import argparse
import json
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from benchlib import ROOT, machine_line, median, percentile, quiet_engine, table

EVENTS = ROOT / "events" / "telegram"
FIRST_UPDATE_ID = 660_000_000
FIRST_CHAT_ID = 770_000_000
# Telegram delivers an update again after a non-2xx answer; here after this pause, this many times.
REDELIVERIES = 20
REDELIVERY_PAUSE_SECONDS = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=1000, help="updates to post (1000)")
    parser.add_argument("--chats", type=int, default=100, help="distinct chats they are spread over (100)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent HTTP clients (8)")
    parser.add_argument("--timeout", type=float, default=900, help="give up waiting for replies after this (900 s)")
    args = parser.parse_args(argv)
    if args.updates < 1 or args.chats < 1 or not 1 <= args.workers <= 64:
        parser.error("--updates and --chats must be >= 1, --workers 1..64")

    print(machine_line())
    print()
    result = run(args.updates, args.chats, args.workers, args.timeout)
    print(report(result, args))
    return 0 if result["ok"] else 1


def make_updates(count: int, chats: int) -> list[dict]:
    sample = json.loads((EVENTS / "private_text.json").read_text())
    updates = []
    for index in range(count):
        update = json.loads(json.dumps(sample))
        update["update_id"] = FIRST_UPDATE_ID + index
        chat = FIRST_CHAT_ID + index % chats  # round-robin: a chat's updates are `chats` apart
        update["message"]["chat"]["id"] = update["message"]["from"]["id"] = chat
        update["message"]["message_id"] = 1 + index // chats
        update["message"]["text"] = f"throughput {update['update_id']}"
        updates.append(update)
    return updates


def run(count: int, chats: int, workers: int, timeout: float) -> dict:
    import httpx

    from tgrelay_local.engine import SECRET_HEADER

    updates = make_updates(count, chats)
    local = threading.local()
    answers: dict[int, tuple[float, float, int]] = {}  # update_id -> (sent, answered, status) of the last POST
    redelivered = [0]  # POSTs made again after a 5xx
    lock = threading.Lock()

    with quiet_engine() as relay:
        url, secret = relay.webhook_url, relay.webhook_secret
        print(f"local stack up; posting {count} updates over {chats} chats with {workers} workers", file=sys.stderr)

        def post(update: dict) -> None:
            """POST like Telegram: a 5xx answer (the webhook's AWS calls timed out on the
            saturated engine) is delivered again, after a pause, until a 2xx or 4xx."""
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(timeout=60)
            body = json.dumps(update).encode()
            for attempt in range(REDELIVERIES + 1):
                sent = time.time()
                response = client.post(
                    url, content=body, headers={SECRET_HEADER: secret, "content-type": "application/json"}
                )
                answered = time.time()
                if response.status_code < 500 or attempt == REDELIVERIES:
                    break
                with lock:
                    redelivered[0] += 1
                time.sleep(REDELIVERY_PAUSE_SECONDS)
            with lock:
                answers[update["update_id"]] = (sent, answered, response.status_code)

        started = time.time()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(post, update) for update in updates]:
                future.result()
        posted = time.time()
        print(f"posted in {posted - started:.1f} s; waiting for replies", file=sys.stderr)

        deadline = time.monotonic() + timeout
        replies = _replies(relay)
        last_progress = time.monotonic()
        while len(replies) < count and time.monotonic() < deadline:
            time.sleep(0.5)
            replies = _replies(relay)
            if time.monotonic() - last_progress > 15:
                print(f"  {len(replies)}/{count} replies", file=sys.stderr)
                last_progress = time.monotonic()
        timed_out = len(replies) < count
        relay.wait_idle(timeout=120)
        replies = _replies(relay)
        statuses: Counter = Counter()
        start_order: dict[int, int] = {}  # update_id -> position its execution started at (queue order)
        for position, arn in enumerate(relay.pipe.started):
            description = relay.describe(arn)
            statuses[description["status"]] += 1
            update_id = json.loads(description["input"])[0]["update"]["update_id"]
            start_order.setdefault(update_id, position)

    return {
        **account(updates, answers, replies, statuses, start_order, started, posted, timed_out),
        "redelivered": redelivered[0],
    }


def _replies(relay) -> list[tuple[int, int, float]]:
    """(update_id, chat_id, recorded at) for each update a sendMessage the fake Telegram accepted
    answers. A merged turn (QueuedMessages=merge: messages that queued while their chat's turn was
    taken) is one reply echoing every message of the turn, one per line: each counts as answered."""
    found = []
    for call in relay.telegram.calls_snapshot():
        if call["method"] == "sendMessage" and call["status"] == 200:
            text = call["payload"].get("text", "")
            if text.startswith("echo: throughput "):
                for update_id in re.findall(r"^(?:echo: )?throughput (\d+)$", text, re.MULTILINE):
                    found.append((int(update_id), call["payload"]["chat_id"], call["at"]))
    return found


def account(updates, answers, replies, statuses, start_order, started, posted, timed_out) -> dict:
    sent_ids = {update["update_id"] for update in updates}
    accepted = {update_id for update_id, (_, _, status) in answers.items() if status == 200}
    per_update = Counter(update_id for update_id, _, _ in replies)
    duplicates = sorted(update_id for update_id, n in per_update.items() if n > 1)
    lost = sorted(sent_ids - set(per_update))
    first_reply = {}
    for update_id, chat, at in sorted(replies, key=lambda reply: reply[2]):
        first_reply.setdefault(update_id, (chat, at))
    latencies = [first_reply[u][1] - answers[u][1] for u in first_reply if u in answers]
    ack = [answered - sent for sent, answered, _ in answers.values()]
    last_reply = max((at for _, _, at in replies), default=float("nan"))

    # Per chat: did the replies come back in the order the executions started (SQS FIFO order)?
    by_chat = defaultdict(list)
    for update_id, (chat, at) in first_reply.items():
        by_chat[chat].append((start_order.get(update_id, -1), at))
    out_of_order = sum(
        1
        for pairs in by_chat.values()
        if [position for position, _ in sorted(pairs, key=lambda pair: pair[1])] != sorted(p for p, _ in pairs)
    )
    ok = not timed_out and not duplicates and not lost and accepted == sent_ids and len(replies) == len(sent_ids)
    return {
        "sent": len(sent_ids),
        "accepted": len(accepted),
        "replies": len(replies),
        "duplicates": duplicates,
        "lost": lost,
        "executions": sum(statuses.values()),
        "statuses": statuses,
        "post_seconds": posted - started,
        "end_to_end_seconds": last_reply - started,
        "latencies": latencies,
        "ack": ack,
        "chats": len(by_chat),
        "out_of_order": out_of_order,
        "timed_out": timed_out,
        "ok": ok,
    }


def report(result: dict, args) -> str:
    lat, ack = result["latencies"], result["ack"]
    rate = result["sent"] / result["end_to_end_seconds"]
    rows = [
        ["updates posted (distinct update_id)", result["sent"]],
        ["chats", f"{args.chats} ({args.workers} concurrent HTTP clients, 127.0.0.1)"],
        ["webhook answered 200", result["accepted"]],
        ["webhook 5xx, delivered again as Telegram does", result["redelivered"]],
        ["posting took", f"{result['post_seconds']:.1f} s ({result['sent'] / result['post_seconds']:.0f} POST/s)"],
        ["webhook ack (POST -> 200), p50 / p99", f"{median(ack) * 1000:.1f} / {percentile(ack, 99) * 1000:.1f} ms"],
        ["end to end: first POST -> last reply", f"{result['end_to_end_seconds']:.1f} s"],
        ["throughput end to end", f"{rate:.1f} updates/s"],
        ["200 -> reply recorded, median", f"{median(lat):.2f} s"],
        ["200 -> reply recorded, p99", f"{percentile(lat, 99):.2f} s"],
        ["200 -> reply recorded, max", f"{max(lat, default=float('nan')):.2f} s"],
        ["executions started", result["executions"]],
        ["execution statuses", ", ".join(f"{status} {n}" for status, n in sorted(result["statuses"].items()))],
        ["replies recorded by the fake Telegram", result["replies"]],
        ["updates answered twice", len(result["duplicates"])],
        ["updates lost (no reply)", len(result["lost"])],
        ["chats whose replies left queue order", f"{result['out_of_order']} of {result['chats']}"],
    ]
    verdict = (
        "OK: every update accounted for (replies == sent, no duplicates)"
        if result["ok"]
        else "FAILED: " + ("timed out waiting; " if result["timed_out"] else "") + "updates lost or answered twice"
    )
    notes = [
        verdict,
        "One process, one interpreter lock: moto (SQS, DynamoDB, the ASL interpreter), every handler, the pipe",
        "poller, both fakes and the HTTP servers. The rate is the local engine's, not AWS's; the latency column is",
        "queueing behind that lock more than work. The pipe poller is serial (receive, StartExecution, delete).",
        "Queue order = the order the pipe started the executions (SQS FIFO order per chat). FIRE_AND_FORGET starts",
        "the next update of a chat while the previous one still runs, so a chat's replies can overtake each other.",
    ]
    return table("Local stack throughput", ["measure", "value"], rows, notes, align="lr")


if __name__ == "__main__":
    sys.exit(main())
