"""What fetching a file adds to a turn on the local engine, per MB.

    .venv/bin/python bench/fetch.py [--repeat 3]

Starts the local engine (tgrelay_local.LocalRelay: moto in-process and served over HTTP on
loopback, the real ASL and handlers, the fake Bot API, the echo agent) and posts documents of
0.1, 1, 5, 10 and 20 MB (and the same number of text messages), one at a time, each a new file
(so every one is fetched, none found stored). For each it reads, from the handlers' log line
"files fetched", `fetch_ms`: the time CallAgent spent on getFile, the download from the fake
Bot API, the PutObject into the files bucket and presigning, before the agent was asked. It
also times webhook 200 -> reply for the text and the file messages (the echo agent downloads
each file by its URL too, so that difference includes the agent's own GET).

What it measures is this machine's loopback and moto, not Telegram's or S3's network: the fake
Bot API generates the bytes (random.Random(file_id).randbytes) and serves them over loopback;
moto keeps objects in memory. On AWS the download from api.telegram.org and the PutObject
dominate; see README: Attachments.
"""

import argparse
import contextlib
import json
import statistics
import time
import uuid
from pathlib import Path

from benchlib import ROOT, machine_line, quiet_engine, table

EVENTS = ROOT / "events" / "telegram"
SIZES_MB = (0.1, 1, 5, 10, 20)
MB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="files per size (3)")
    args = parser.parse_args(argv)
    print(machine_line())
    print()

    sample = json.loads((EVENTS / "document.json").read_text())
    rows = []
    with quiet_engine() as relay:
        log_path = relay.log_path
        counter = iter(range(660_000_000, 670_000_000))

        def turn(size: int | None) -> tuple[float, int | None]:
            update = json.loads(json.dumps(sample))
            update["update_id"] = next(counter)
            update["message"]["chat"]["id"] = next(counter)
            if size is None:
                del update["message"]["document"]
            else:
                suffix = uuid.uuid4().hex
                update["message"]["document"].update(
                    file_id=f"bench-{suffix}", file_unique_id=f"u-{suffix}", file_size=size
                )
            started = time.time()
            relay.post_update(update)
            relay.wait_idle(timeout=120)
            (reply,) = relay.telegram.sent_messages(update["message"]["chat"]["id"])
            sent_at = max(
                call["at"]
                for call in relay.telegram.calls_snapshot()
                if call["method"] == "sendMessage" and call["payload"] == reply
            )
            return (sent_at - started) * 1000, _fetch_ms(log_path, update["update_id"])

        turn(None), turn(MB)  # warm up
        texts = [turn(None)[0] for _ in range(args.repeat)]
        text_ms = statistics.median(texts)
        rows.append(["text only", "-", "-", f"{text_ms:.0f}", "-"])
        for size_mb in SIZES_MB:
            size = int(size_mb * MB)
            measured = [turn(size) for _ in range(args.repeat)]
            fetch = statistics.median(ms for _, ms in measured if ms is not None)
            total = statistics.median(ms for ms, _ in measured)
            rows.append(
                [
                    f"{size_mb:g} MB document",
                    f"{fetch:.0f}",
                    f"{fetch / size_mb:.0f}",
                    f"{total:.0f}",
                    f"{total - text_ms:+.0f}",
                ]
            )
    print(
        table(
            f"Fetching a file in CallAgent, local engine (median of {args.repeat})",
            ["message", "fetch_ms", "fetch ms per MB", "webhook 200 -> reply ms", "vs text"],
            rows,
        )
    )
    return 0


def _fetch_ms(log_path: Path, update_id: int) -> int | None:
    for line in reversed(log_path.read_text().splitlines()):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("message") == "files fetched" and entry.get("update_id") == update_id:
                return entry["fetch_ms"]
    return None


if __name__ == "__main__":
    raise SystemExit(main())
