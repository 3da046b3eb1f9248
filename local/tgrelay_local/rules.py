"""EventBridge rules as template.yaml declares them: on "Step Functions Execution Status Change"
(ExecutionStatusRules) and on a schedule (Schedules).

A watcher thread notices when an execution the pipe started ends, builds the event Step
Functions would send (detail: executionArn, stateMachineArn, name, status, startDate,
stopDate, input, output), and invokes the target function of every rule whose pattern
matches. Where it differs: EventBridge delivers within about a second, best effort, with the
target's retry policy; here the event is delivered once, within the poll interval.
"""

import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02


def matches(pattern: Any, event: Any) -> bool:
    """EventBridge pattern matching for what templates here use: nested fields, lists of exact values."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(
            key in event and matches(value, event[key]) for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        return event in pattern
    return pattern == event


class ExecutionStatusRules:
    """The template's rules on execution status change: `rules` pairs an event pattern with the
    LocalFunction it targets; `started` is the pipe's list of execution ARNs. A thread watches
    them until stop()."""

    def __init__(self, sfn, rules: list[tuple[dict, Any]], started: list[str], region: str, account: str):
        self.sfn = sfn
        self.rules = rules
        self.started = started  # the pipe's list of execution ARNs, appended as it starts them
        self.region, self.account = region, account
        self.delivered: list[dict] = []  # every event that matched a rule, in order
        self._ended: set[str] = set()  # executions whose events were delivered
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def caught_up(self, ended: set[str]) -> bool:
        """True once the events of every execution in `ended` were delivered."""
        with self._lock:
            return ended <= self._ended

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(POLL_SECONDS)

    def poll_once(self) -> None:
        """Deliver the event of every execution seen to end since the last look."""
        for arn in list(self.started):
            if arn in self._ended:
                continue
            execution = self.sfn.describe_execution(executionArn=arn)
            if execution["status"] == "RUNNING":
                continue
            self._deliver(self._event(execution))
            with self._lock:
                self._ended.add(arn)

    def _deliver(self, event: dict) -> None:
        for pattern, function in self.rules:
            if matches(pattern, event):
                self.delivered.append(event)
                answer = function.invoke(event)
                if "FunctionError" in answer:
                    log.warning("rule target %s failed: %s", function.name, answer["Payload"].get("errorType"))

    def _event(self, execution: dict) -> dict:
        def epoch_ms(value) -> int | None:
            return None if value is None else int(value.timestamp() * 1000)

        return {
            "version": "0",
            "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "account": self.account,
            "region": self.region,
            "resources": [execution["executionArn"]],
            "detail": {
                "executionArn": execution["executionArn"],
                "stateMachineArn": execution["stateMachineArn"],
                "name": execution["name"],
                "status": execution["status"],
                "startDate": epoch_ms(execution.get("startDate")),
                "stopDate": epoch_ms(execution.get("stopDate")),
                "input": execution.get("input"),
                "output": execution.get("output") if execution["status"] == "SUCCEEDED" else None,
                "inputDetails": {"included": True},
            },
        }


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    """The period of an EventBridge `rate(...)` schedule expression, in seconds. ValueError for
    anything else (cron is not run locally)."""
    found = _RATE.match(expression)
    if not found:
        raise ValueError(f"the local engine runs rate(...) schedules only, not {expression!r}")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")]


class Schedules:
    """The template's `Schedule` events: each invokes its function with a "Scheduled Event" every
    period, on the engine's clock. Real clock: every period; scaled: every period / scale, with the
    event's `time` running `scale` times faster than the wall clock from the start; recorded: never
    by itself — tests call fire(at=...) with the time they want the function to see."""

    def __init__(self, schedules: list[tuple[int, str, Any]], clock: Any, region: str, account: str):
        self.schedules = schedules  # (period in seconds, rule name, LocalFunction)
        self.clock = clock
        self.region, self.account = region, account
        self.results: list[dict] = []  # every invocation's answer, in order
        self._started = time.time()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(schedule,), name=f"schedule-{schedule[1]}", daemon=True)
            for schedule in schedules
        ]

    def start(self) -> None:
        if self.clock.mode != "recorded":
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)

    def now(self) -> datetime:
        """The time the schedule's events carry: the wall clock, running `scale` times faster when scaled."""
        elapsed = time.time() - self._started
        scale = self.clock.scale if self.clock.mode == "scaled" else 1.0
        return datetime.fromtimestamp(self._started + elapsed * scale, tz=UTC)

    def fire(self, at: datetime | None = None) -> list[dict]:
        """Invoke every scheduled function once now, its event's `time` being `at` (default now());
        their answers (lambda:Invoke results)."""
        return [self._invoke(name, function, at or self.now()) for _, name, function in self.schedules]

    def _run(self, schedule: tuple[int, str, Any]) -> None:
        period, name, function = schedule
        scale = self.clock.scale if self.clock.mode == "scaled" else 1.0
        while not self._stop.wait(period / scale):
            self._invoke(name, function, self.now())

    def _invoke(self, name: str, function: Any, at: datetime) -> dict:
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account,
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [f"arn:aws:events:{self.region}:{self.account}:rule/{name}"],
            "detail": {},
        }
        answer = function.invoke(event)
        if "FunctionError" in answer:
            log.warning("schedule target %s failed: %s", function.name, answer["Payload"].get("errorType"))
        self.results.append(answer)
        return answer
