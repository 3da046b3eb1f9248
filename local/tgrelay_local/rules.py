"""EventBridge rules on "Step Functions Execution Status Change", as template.yaml declares them.

A watcher thread notices when an execution the pipe started ends, builds the event Step
Functions would send (detail: executionArn, stateMachineArn, name, status, startDate,
stopDate, input, output), and invokes the target function of every rule whose pattern
matches. Where it differs: EventBridge delivers within about a second, best effort, with the
target's retry policy; here the event is delivered once, within the poll interval.
"""

import logging
import threading
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
