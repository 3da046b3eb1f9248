"""Rendering a long reply: what CallAgent adds (formatting.render + the budgets, replies.reply_from_agent)
and what SendReply adds (the entity-aware split, replies.deliveries), per format.

    .venv/bin/python bench/render.py [--rounds 20]

Each input is a reply of about 30,000 characters of the kind agents write in that format; the table gives
the median and the slowest of `--rounds` runs (ms), the messages it becomes, its entities and its
size as state (UTF-8 bytes of JSON, as Step Functions counts). Also the one-off import of the
Markdown library (a fresh interpreter), which only the first Markdown reply of a Lambda
environment pays.
"""

import argparse
import statistics
import subprocess
import sys
import time

from benchlib import machine_line

from tgrelay.replies import deliveries, reply_from_agent, state_bytes

CHARS = 30_000
CHAT = {"chat_id": 1, "message_id": 1, "chat_type": "private", "kind": "message"}


def _fill(unit: str) -> str:
    """`unit` repeated to about CHARS characters (whole units: markup stays balanced)."""
    return unit * round(CHARS / len(unit))


INPUTS = {
    "text (ASCII)": {"reply": _fill("The quick brown fox jumps over the lazy dog. ")},
    "text (Chinese)": {"reply": _fill("这是一个很长的中文回答，用来检查长度的单位。")},
    "markdown": {
        "format": "markdown",
        "reply": _fill(
            "## Step\n\nRun **this** with `--flag` and see [the docs](https://example.com/docs).\n\n"
            "- one item\n- *another* item\n\n```python\nfor n in range(3):\n    print(n)\n```\n\n"
        ),
    },
    "HTML": {
        "parse_mode": "HTML",
        "reply": "<pre>" + _fill("x = a &lt; b and c &gt; d\n") + "</pre>",
    },
    "MarkdownV2": {
        "parse_mode": "MarkdownV2",
        "reply": _fill("*Bold* and _italic_ with `code` and [a link](https://example.com)\\. "),
    },
}


def _time(action, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def _import_ms() -> float:
    probe = "import time; t = time.perf_counter(); import telegramify_markdown; print((time.perf_counter() - t) * 1000)"
    return float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    reply_from_agent(INPUTS["markdown"], "")  # the library's import is measured on its own below

    print(machine_line())
    print(f"\nA reply of about {CHARS:,} characters, {args.rounds} rounds (ms)")
    header = ("input", "render p50", "max", "split p50", "max", "messages", "entities", "state bytes")
    rows = []
    for name, body in INPUTS.items():
        render_p50, render_max = _time(lambda body=body: reply_from_agent(body, ""), args.rounds)
        reply = reply_from_agent(body, "")
        split_p50, split_max = _time(lambda reply=reply: deliveries(CHAT, reply), args.rounds)
        payloads = [payload for _, payload in deliveries(CHAT, reply)]
        entities = sum(len(payload.get("entities", [])) for payload in payloads)
        rows.append((name, render_p50, render_max, split_p50, split_max, len(payloads), entities, state_bytes(reply)))
    print("  ".join(f"{column:>12}" if i else f"{column:<15}" for i, column in enumerate(header)))
    for name, *numbers in rows:
        cells = [f"{value:>12.1f}" if isinstance(value, float) else f"{value:>12,}" for value in numbers]
        print(f"{name:<15}  " + "  ".join(cells))
    imports = sorted(_import_ms() for _ in range(5))
    print(f"\nimport telegramify_markdown (fresh interpreter, median of 5): {imports[2]:.1f} ms")


if __name__ == "__main__":
    main()
