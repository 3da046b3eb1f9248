"""The clock behind the ASL's Retry waits on the local engine.

real:     wait as long as the ASL says (what AWS does)
scaled:   wait that long divided by `scale` (the demo runs 100x faster)
recorded: do not wait; remember each requested wait (tests assert the schedule)

`jitter` pins FULL jitter: the wait drawn from [0, d] becomes jitter * d. None keeps it random.
"""

import random
import threading
import time


class RetryClock:
    def __init__(self, mode: str = "real", scale: float = 1.0, jitter: float | None = None):
        if mode not in ("real", "scaled", "recorded"):
            raise ValueError(f"unknown clock mode {mode!r}")
        self.mode, self.scale, self.jitter = mode, scale, jitter
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
        if self.mode == "real":
            time.sleep(seconds)
        elif self.mode == "scaled":
            time.sleep(seconds / self.scale)

    def uniform(self, low: float, high: float) -> float:
        if self.jitter is None:
            return random.uniform(low, high)
        return low + (high - low) * self.jitter

    def take_waits(self) -> list[float]:
        """The waits recorded since the last call."""
        with self._lock:
            waits, self.waits = self.waits, []
        return waits
