"""Turn latency of the local stack, uncontended: webhook 200 -> agent request, and -> reply.

    .venv/bin/python bench/turn_latency.py [--updates 60]

Starts the local engine (tgrelay_local.LocalRelay: moto in-process, the real ASL and
handlers, the pipe poller, the loopback webhook, the fake Telegram and the echo agent; a
recorded retry clock, so a retry would not wait, though no fault is injected) and posts
--updates updates one at a time, each in a chat of its own. The next is posted only after
the previous reply reached the fake Telegram and the engine is idle again (queue empty, no
execution running), so nothing contends. 5 updates before them warm up and are not counted.

For each update:
  t0  right after relay.post_update() returned 200
  t1  the fake agent received the request (the `at` it records)
  t2  the fake Telegram recorded the sendMessage carrying the reply (its `at`)
and the median, p90, p99 and max of t1 - t0, t2 - t0 and t2 - t1 in milliseconds.
The fakes stamp their calls with time.time(), so t0 is taken with time.time() too.
"""

import argparse
import json
import sys
import time

from benchlib import ROOT, machine_line, median, percentile, quiet_engine, table

EVENTS = ROOT / "events" / "telegram"
WARMUP = 5
FIRST_UPDATE_ID = 550_000_000
FIRST_CHAT_ID = 440_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=60, help="updates measured, after 5 warm-up ones (60)")
    args = parser.parse_args(argv)
    if args.updates < 1:
        parser.error("--updates must be >= 1")

    import tgrelay
    import tgrelay_local

    print(machine_line())
    print(f"modules: tgrelay_local {tgrelay_local.__file__}, tgrelay {tgrelay.__file__}")
    print()
    turns, retries = run(WARMUP + args.updates)
    print(report(turns[WARMUP:], retries))
    return 0


def make_update(n: int) -> dict:
    update = json.loads((EVENTS / "private_text.json").read_text())
    update["update_id"] = FIRST_UPDATE_ID + n
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = FIRST_CHAT_ID + n  # a new chat each time
    update["message"]["text"] = f"turn latency {n}"
    return update


def run(count: int) -> tuple[list[tuple[float, float, float]], int]:
    """(t0, t1, t2) of `count` updates posted one at a time, and how many ASL retries happened."""

    turns = []
    with quiet_engine() as relay:
        for n in range(count):
            update = make_update(n)
            response = relay.post_update(update)
            t0 = time.time()
            if response.status_code != 200 or "skipped" in response.json():
                raise RuntimeError(f"update {n} not enqueued: {response.status_code} {response.text}")
            t1, t2 = _wait_for_reply(relay, update)
            relay.wait_idle(timeout=30)
            turns.append((t0, t1, t2))
    return turns, len(relay.clock.take_waits())


def _wait_for_reply(relay, update: dict, timeout: float = 30) -> tuple[float, float]:
    """(agent received the request, fake Telegram recorded the reply), once the reply is there."""
    deadline = time.monotonic() + timeout
    while (t2 := _reply_at(relay, update["message"]["chat"]["id"])) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"update {update['update_id']}: no reply within {timeout:g} s")
        time.sleep(0.002)
    t1 = _agent_at(relay, update["update_id"])
    if t1 is None:
        raise RuntimeError(f"update {update['update_id']}: replied to, but the agent never saw it")
    return t1, t2


def _agent_at(relay, update_id: int) -> float | None:
    return next((c["at"] for c in relay.agent.calls_snapshot() if c["request"].get("update_id") == update_id), None)


def _reply_at(relay, chat_id: int) -> float | None:
    calls = relay.telegram.calls_snapshot()
    return next(
        (
            c["at"]
            for c in calls
            if c["method"] == "sendMessage" and c["status"] == 200 and c["payload"].get("chat_id") == chat_id
        ),
        None,
    )


def report(turns: list[tuple[float, float, float]], retries: int) -> str:
    legs = {
        "webhook 200 -> agent received request": [t1 - t0 for t0, t1, _ in turns],
        "webhook 200 -> reply at fake Telegram": [t2 - t0 for t0, _, t2 in turns],
        "agent received -> reply at fake Telegram": [t2 - t1 for _, t1, t2 in turns],
    }
    rows = [
        [leg, *(f"{v * 1000:.1f}" for v in (median(s), percentile(s, 90), percentile(s, 99), max(s)))]
        for leg, s in legs.items()
    ]
    notes = [
        f"{len(turns)} updates, one at a time, each in a new chat, after {WARMUP} uncounted warm-up updates;",
        f"ASL retries in the whole run (warm-up included): {retries}.",
        "One process: moto, the handlers, the pipe poller and both fakes share the interpreter. An idle pipe",
        "poller sleeps 20 ms between empty receives, so the first leg includes 0-20 ms of waiting for its poll.",
    ]
    return table("Turn latency, uncontended (ms)", ["leg", "median", "p90", "p99", "max"], rows, notes)


if __name__ == "__main__":
    sys.exit(main())
