"""An execution's path through the states, read from get_execution_history — the same
view as the Step Functions console's history: state, result, retries, duration."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Step:
    state: str
    entered: datetime
    exited: datetime | None = None
    failures: list[str] = field(default_factory=list)  # every error the state's task raised
    result: str = "running"
    task_failed_last: bool = False  # the state's last task attempt failed: it left by a Catch

    @property
    def retries(self) -> list[str]:
        """Errors that were retried: all failures, except the last one when it was caught or fatal."""
        return self.failures if self.result == "ok" else self.failures[:-1]

    @property
    def seconds(self) -> float | None:
        return None if self.exited is None else (self.exited - self.entered).total_seconds()


def state_path(events: Sequence[Mapping[str, Any]]) -> list[Step]:
    """The states an execution went through, in order, from its history events."""
    steps: list[Step] = []
    for event in sorted(events, key=lambda e: e["id"]):
        kind = event["type"]
        if kind.endswith("StateEntered"):
            _close_caught(steps, event["timestamp"])
            steps.append(Step(event["stateEnteredEventDetails"]["name"], event["timestamp"]))
        elif kind.endswith("StateExited") and steps:
            _close(steps[-1], event["timestamp"])
        elif kind in ("TaskSucceeded", "LambdaFunctionSucceeded") and steps:
            steps[-1].task_failed_last = False
        elif kind in ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "LambdaFunctionTimedOut") and steps:
            details: dict[str, Any] = next((value for key, value in event.items() if key.endswith("EventDetails")), {})
            steps[-1].failures.append(details.get("error", kind))
            steps[-1].task_failed_last = True
        elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted") and steps:
            last = steps[-1]
            if last.result == "running":
                details = next((value for key, value in event.items() if key.endswith("EventDetails")), {})
                last.exited, last.result = event["timestamp"], f"failed {details.get('error', kind)}"
        elif kind == "ExecutionSucceeded" and steps and steps[-1].result == "running":
            steps[-1].exited, steps[-1].result = event["timestamp"], "ok"
    return steps


def _close_caught(steps: list[Step], at: datetime) -> None:
    """A state still open when the next one is entered was left through a Catch."""
    if steps and steps[-1].result == "running":
        _close(steps[-1], at)


def _close(step: Step, at: datetime) -> None:
    step.exited = at
    step.result = f"caught {step.failures[-1]}" if step.task_failed_last else "ok"


def format_path(steps: list[Step], indent: str = "  ") -> str:
    """One line per step: state, result, seconds, retries; columns as wide as their longest entry."""
    state_width = max((len(step.state) for step in steps), default=0)
    result_width = max((len(step.result) for step in steps), default=0)
    lines = []
    for step in steps:
        seconds = "" if step.seconds is None else f"{step.seconds:7.3f} s"
        retries = ""
        if step.retries:
            names = sorted(set(step.retries))
            retries = f"  {len(step.retries)} {'retry' if len(step.retries) == 1 else 'retries'} ({', '.join(names)})"
        line = f"{indent}{step.state:<{state_width}}  {step.result:<{result_width}}  {seconds}{retries}"
        lines.append(line.rstrip())
    return "\n".join(lines)
