"""The waits a Retry of the ASL produces, computed the way Step Functions does."""

import json
from pathlib import Path

from tgrelay_local.template import ROOT

ASL = ROOT / "statemachine" / "relay.asl.json"


def load_asl(path: Path = ASL) -> dict:
    return json.loads(path.read_text())


def retry_waits(retrier: dict) -> list[float]:
    """The wait before each retry (the upper bound when JitterStrategy is FULL).

    Step Functions' defaults: IntervalSeconds 1, BackoffRate 2.0, MaxAttempts 3.
    """
    interval = retrier.get("IntervalSeconds", 1)
    rate = retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds")
    waits = []
    for attempt in range(retrier.get("MaxAttempts", 3)):
        wait = interval * rate**attempt
        waits.append(min(wait, cap) if cap is not None else wait)
    return waits


def retrier_for(asl: dict, state: str, error: str) -> dict:
    """The Retry entry of `state` that handles `error`."""
    for retrier in asl["States"][state].get("Retry", []):
        if error in retrier["ErrorEquals"]:
            return retrier
    raise KeyError(f"{state} has no Retry for {error}")
