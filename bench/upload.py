"""What sending the agent's file adds to a reply on the local engine, per MB.

    .venv/bin/python bench/upload.py [--repeat 3]

Starts the local engine (tgrelay_local.LocalRelay: the real ASL and handlers, the fake Bot API,
the echo agent) and has the echo agent answer text messages, one at a time, with its text and a
document of 0.1, 1, 5, 10, 20 and 50 MB (the Bot API's upload limit for documents) that it serves
itself (GET /files/<name>?size=...), and answer the same number of messages with text only. For
each file it reads SendReply's log line "file sent": `download_ms` (the GET from the agent into a
temporary file) and `upload_ms` (the multipart sendDocument to the fake Bot API, which reads the
whole body and hashes it before it answers). It also times webhook 200 -> the file's arrival
against webhook 200 -> the text-only reply.

What it measures is this machine's loopback, not the agent's or Telegram's network: on AWS the
upload to api.telegram.org dominates. Printing numbers, not asserting them.
"""

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

from benchlib import ROOT, machine_line, quiet_engine, table

EVENTS = ROOT / "events" / "telegram"
SIZES_MB = (0.1, 1, 5, 10, 20, 50)
MB = 1_000_000  # the Bot API's limits are read as decimal megabytes (reply_files.UPLOAD_LIMITS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="files per size (3)")
    args = parser.parse_args(argv)
    print(machine_line())
    print()

    sample = json.loads((EVENTS / "private_text.json").read_text())
    rows = []
    with quiet_engine() as relay:
        log_path = relay.log_path
        counter = iter(range(670_000_000, 680_000_000))

        def turn(size: int | None) -> tuple[float, dict]:
            update = json.loads(json.dumps(sample))
            update["update_id"] = next(counter)
            chat = update["message"]["chat"]["id"] = next(counter)
            if size is not None:
                file = {"kind": "document", "url": f"/files/bench-{update['update_id']}.bin?size={size}"}
                relay.agent.add_fault(
                    {"reply": "Here it is.", "attachments": [file], "match": {"update_id": update["update_id"]}}
                )
            started = time.time()
            relay.post_update(update)
            relay.wait_idle(timeout=300)
            method = "sendMessage" if size is None else "sendDocument"
            arrived = max(
                call["at"]
                for call in relay.telegram.calls_snapshot()
                if call["method"] == method and call["status"] == 200 and call["payload"].get("chat_id") == chat
            )
            logged = {} if size is None else _file_sent(log_path, update["update_id"])
            return (arrived - started) * 1000, logged

        turn(None), turn(MB)  # warm up
        text_ms = statistics.median(turn(None)[0] for _ in range(args.repeat))
        rows.append(["text only", "-", "-", "-", f"{text_ms:.0f}", "-"])
        for size_mb in SIZES_MB:
            measured = [turn(int(size_mb * MB)) for _ in range(args.repeat)]
            download = statistics.median(logged["download_ms"] for _, logged in measured)
            upload = statistics.median(logged["upload_ms"] for _, logged in measured)
            total = statistics.median(ms for ms, _ in measured)
            rows.append(
                [
                    f"{size_mb:g} MB document",
                    f"{download:.0f}",
                    f"{upload:.0f}",
                    f"{(download + upload) / size_mb:.0f}",
                    f"{total:.0f}",
                    f"{total - text_ms:+.0f}",
                ]
            )
    print(
        table(
            f"Sending the agent's file in SendReply, local engine (median of {args.repeat})",
            ["reply", "download_ms", "upload_ms", "ms per MB", "webhook 200 -> file ms", "vs text"],
            rows,
        )
    )
    return 0


def _file_sent(log_path: Path, update_id: int) -> dict:
    for line in reversed(log_path.read_text().splitlines()):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("message") == "file sent" and entry.get("update_id") == update_id:
                return entry
    raise RuntimeError(f"no 'file sent' log line for update {update_id}")


if __name__ == "__main__":
    raise SystemExit(main())
