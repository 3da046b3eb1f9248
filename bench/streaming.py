"""Streaming replies on the local stack: the agent's first delta -> the first draft, and drafts per turn.

    .venv/bin/python bench/streaming.py [--turns 60] [--words 40] [--word-delay 0.05]

Starts the local engine (tgrelay_local.LocalRelay: the real ASL and handlers, the template's
defaults, so DraftThrottleSeconds is its default, 1 s) with the echo agent streaming every answer
(`tgrelay local --stream-replies`), and posts --turns private-chat updates one at a time, each in a
chat of its own; each answer is --words words, one delta every --word-delay seconds. The next is
posted only after the reply reached the fake Telegram and the engine is idle again. 5 turns before
them warm up and are not counted.

For each turn:
  d0  the echo agent wrote its first delta (`first_delta_at`, time.time())
  d1  the fake Bot API recorded the first sendMessageDraft of the chat (its `at`, time.time())
and the median, p90, p99 and max of d1 - d0 in milliseconds; then drafts per turn and the span they
had (first delta to the stream's end or the last draft, whichever is later), which bounds them: at
most one draft per DraftThrottleSeconds.
"""

import argparse
import json
import sys
import time

from benchlib import ROOT, machine_line, median, percentile, quiet_engine, table

EVENTS = ROOT / "events" / "telegram"
WARMUP = 5
FIRST_UPDATE_ID = 770_000_000
FIRST_CHAT_ID = 660_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=60, help="turns measured, after 5 warm-up ones (60)")
    parser.add_argument("--words", type=int, default=40, help="words in each streamed answer (40)")
    parser.add_argument("--word-delay", type=float, default=0.05, help="seconds between two deltas (0.05)")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.words < 1 or args.word_delay < 0:
        parser.error("--turns and --words must be >= 1, --word-delay >= 0")

    import tgrelay
    import tgrelay_local

    print(machine_line())
    print(f"modules: tgrelay_local {tgrelay_local.__file__}, tgrelay {tgrelay.__file__}")
    print()
    turns, throttle, retries = run(WARMUP + args.turns, args.words, args.word_delay)
    print(report(turns[WARMUP:], throttle, retries, args.words, args.word_delay))
    return 0


def make_update(n: int) -> dict:
    update = json.loads((EVENTS / "private_text.json").read_text())
    update["update_id"] = FIRST_UPDATE_ID + n
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = FIRST_CHAT_ID + n  # a new chat each time
    update["message"]["text"] = f"streaming {n}"
    return update


Turn = tuple[float, float, int, float]  # first delta, first draft (time.time()), drafts, seconds from delta to last


def run(count: int, words: int, word_delay: float) -> tuple[list[Turn], float, int]:
    """(first delta, first draft, drafts) of `count` turns, the throttle in force, and the ASL's retries."""

    answer = " ".join(f"word{i}" for i in range(words))
    turns = []
    with quiet_engine() as relay:
        assert relay.agent is not None and relay.telegram is not None
        throttle = float(relay.template.parameters["DraftThrottleSeconds"])
        relay.agent.stream_delay = word_delay
        for n in range(count):
            update = make_update(n)
            chat = update["message"]["chat"]["id"]
            relay.agent.add_fault({"reply": answer, "match": {"update_id": update["update_id"]}})
            response = relay.post_update(update)
            if response.status_code != 200 or "skipped" in response.json():
                raise RuntimeError(f"update {n} not enqueued: {response.status_code} {response.text}")
            _wait_for_reply(relay, chat)
            relay.wait_idle(timeout=30)
            [call] = [c for c in relay.agent.calls_snapshot() if c["request"]["update_id"] == update["update_id"]]
            drafts = [
                c
                for c in relay.telegram.calls_snapshot()
                if c["method"] == "sendMessageDraft" and c["payload"].get("chat_id") == chat
            ]
            if not drafts or any(c["status"] != 200 for c in drafts):
                raise RuntimeError(f"update {n}: drafts {[c['status'] for c in drafts]}")
            # The last draft may wait its turn after the stream's end: its time counts too.
            span = max(call["ended_at"], drafts[-1]["at"]) - call["first_delta_at"]
            turns.append((call["first_delta_at"], drafts[0]["at"], len(drafts), span))
    return turns, throttle, len(relay.clock.take_waits())


def _wait_for_reply(relay, chat_id: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not relay.telegram.sent_messages(chat_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"chat {chat_id}: no reply within {timeout:g} s")
        time.sleep(0.005)


def report(turns: list[Turn], throttle: float, retries: int, words: int, delay: float) -> str:
    first = [d1 - d0 for d0, d1, _, _ in turns]
    counts = [count for _, _, count, _ in turns]
    spans = [span for *_, span in turns]
    # At most one draft per throttle interval: a turn whose drafts span S seconds has at most S // throttle + 1.
    over = sum(1 for _, _, count, span in turns if count > int(span // throttle) + 1)
    rows = [
        [
            "agent's first delta -> first draft at the fake Bot API (ms)",
            *(f"{v * 1000:.1f}" for v in (median(first), percentile(first, 90), percentile(first, 99), max(first))),
        ],
        [
            "drafts per turn",
            f"{median(counts):g}",
            f"{percentile(counts, 90):g}",
            f"{percentile(counts, 99):g}",
            max(counts),
        ],
        [
            "first delta -> stream end or last draft (s)",
            *(f"{v:.2f}" for v in (median(spans), percentile(spans, 90), percentile(spans, 99), max(spans))),
        ],
    ]
    notes = [
        f"{len(turns)} turns, one at a time, each in a new private chat, after {WARMUP} uncounted warm-up turns;",
        f"each answer {words} words, one delta every {delay:g} s ({(words - 1) * delay:.2f} s unloaded);",
        f"DraftThrottleSeconds {throttle:g} (the template's default); turns with more drafts than one per"
        f" {throttle:g} s of their span allows: {over};",
        f"fewest drafts in a turn: {min(counts)}; ASL retries in the whole run (warm-up included): {retries}.",
        "One process: moto, the handlers and both fakes share the interpreter (and the machine's load).",
    ]
    return table("Streaming replies, local engine", ["measure", "median", "p90", "p99", "max"], rows, notes)


if __name__ == "__main__":
    sys.exit(main())
