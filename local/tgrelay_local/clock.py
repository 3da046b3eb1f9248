"""The clock behind the ASL's Retry waits and Wait states on the local engine.

real:     wait as long as the ASL says (what AWS does)
scaled:   wait that long divided by `scale` (the demo runs 100x faster)
recorded: do not wait; remember each requested wait (tests assert the schedule)

Retry waits are remembered in `waits`, Wait states' (FloodWait) in `state_waits`.

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
        self.state_waits: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
        if self.mode == "real":
            time.sleep(seconds)
        elif self.mode == "scaled":
            time.sleep(seconds / self.scale)

    def wait_state(self, seconds: float, interrupted: threading.Event) -> None:
        """A Wait state's wait; `interrupted` (the execution stopped) ends it early."""
        with self._lock:
            self.state_waits.append(seconds)
        if self.mode == "real":
            interrupted.wait(seconds)
        elif self.mode == "scaled":
            interrupted.wait(seconds / self.scale)

    def uniform(self, low: float, high: float) -> float:
        if self.jitter is None:
            return random.uniform(low, high)
        return low + (high - low) * self.jitter

    def take_waits(self) -> list[float]:
        """The Retry waits recorded since the last call."""
        with self._lock:
            waits, self.waits = self.waits, []
        return waits

    def take_state_waits(self) -> list[float]:
        """The Wait states' waits recorded since the last call."""
        with self._lock:
            waits, self.state_waits = self.state_waits, []
        return waits
