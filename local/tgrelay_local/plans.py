"""Read off the ASL: each Task's retry schedule (`tgrelay retry-plan`), the billed state
transitions of each path and their price (`tgrelay cost`), and the Mermaid picture of the
state machine in the README."""

from dataclasses import dataclass

from tgrelay_local.operator import DOLLARS_PER_TRANSITION
from tgrelay_local.retry_plan import load_asl, retry_waits
from tgrelay_local.template import Template


def retry_plan(asl: dict | None = None, template: Template | None = None) -> str:
    """Per Task: each retry's wait (the range, with FULL jitter) and the worst case before it gives up."""
    asl = asl or load_asl()
    template = template or Template(parameters={"AgentUrl": "https://agent.invalid"})
    per_attempt = {"CallAgent": float(template.parameters["AgentTimeoutSeconds"])}
    lines = []
    for name, state in asl["States"].items():
        if state["Type"] != "Task" or not state.get("Retry"):
            continue
        lines.append(name)
        total_attempts, total_wait = 1, 0.0
        for retrier in state["Retry"]:
            waits = retry_waits(retrier)
            jitter = retrier.get("JitterStrategy") == "FULL"
            shown = ", ".join(f"0-{_s(w)}" if jitter else _s(w) for w in waits)
            lines.append(f"  {' | '.join(retrier['ErrorEquals'])}")
            lines.append(f"    {len(waits)} retries, waits (s): {shown}; at most {_s(sum(waits))} s of waiting")
            total_attempts += len(waits)
            total_wait += sum(waits)
        limit = f" + {total_attempts} attempts x up to {_s(per_attempt[name])} s" if name in per_attempt else ""
        lines.append(f"  worst case before giving up: {_s(total_wait)} s of waiting{limit}")
        if len(state["Retry"]) > 1:
            lines.append("  (each error kind keeps its own count: the worst case meets all of them in turn)")
    return "\n".join(lines)


@dataclass
class Path:
    name: str
    states: list[str]

    @property
    def transitions(self) -> int:
        return len(self.states)


def paths(asl: dict | None = None) -> list[Path]:
    """The happy path, and every path a Catch leads to, as lists of states entered."""
    asl = asl or load_asl()
    states = asl["States"]
    happy = _follow(states, asl["StartAt"])
    found = [Path("happy path", happy)]
    for index, name in enumerate(happy):
        for catch in states[name].get("Catch", []):
            label = f"{name} catches {' | '.join(catch['ErrorEquals'])}"
            found.append(Path(label, happy[: index + 1] + _follow(states, catch["Next"])))
    return found


def cost_table(asl: dict | None = None) -> str:
    lines = [f"{'path':<62} {'transitions':>11} {'$ per million':>14}"]
    for path in paths(asl):
        dollars = path.transitions * DOLLARS_PER_TRANSITION * 1_000_000
        lines.append(f"{path.name:<62} {path.transitions:>11} {dollars:>14.2f}")
    lines.append(f"each retry adds one transition (${DOLLARS_PER_TRANSITION * 1_000_000:.2f} per million retries);")
    lines.append("Step Functions Standard only - Lambda, SQS, Pipes and DynamoDB are billed besides (bench/cost.py).")
    return "\n".join(lines)


def mermaid(asl: dict | None = None) -> str:
    """The state machine as a Mermaid flowchart: Next edges solid, Catch edges dotted and labelled."""
    asl = asl or load_asl()
    lines = ["flowchart TD", f"    start((start)) --> {asl['StartAt']}"]
    for name, state in asl["States"].items():
        if state["Type"] == "Succeed":
            lines.append(f"    {name}([{name}])")
        elif state["Type"] == "Fail":
            lines.append(f"    {name}[/{name}/]")
        if "Next" in state:
            lines.append(f"    {name} --> {state['Next']}")
        if state.get("End"):
            lines.append(f"    {name} --> done((end))")
        for catch in state.get("Catch", []):
            lines.append(f'    {name} -. "{" | ".join(catch["ErrorEquals"])}" .-> {catch["Next"]}')
    return "\n".join(lines)


def _follow(states: dict, start: str) -> list[str]:
    path, name = [], start
    while name is not None:
        path.append(name)
        name = states[name].get("Next")
    return path


def _s(seconds: float) -> str:
    return f"{seconds:g}"
