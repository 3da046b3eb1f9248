"""Read off the ASL: each Task's retry schedule (`tgrelay retry-plan`), the billed state
transitions of each path and their price (`tgrelay cost`), and the Mermaid picture of the
state machine in the README."""

from dataclasses import dataclass

from tgrelay_local.operator import DOLLARS_PER_TRANSITION
from tgrelay_local.retry_plan import load_asl, retry_waits
from tgrelay_local.template import Template

CALLBACK = ".waitForTaskToken"


def retry_plan(asl: dict | None = None, template: Template | None = None) -> str:
    """Per Task: each retry's wait (the range, with FULL jitter) and the worst case before it gives up.

    A Task with TimeoutSeconds (WaitForTurn: a callback task waits that long for its token) and
    CallAgent (the function's per-attempt timeout, AgentTimeoutSeconds) also say how long each
    attempt may take."""
    asl = asl or load_asl()
    template = template or Template(parameters={"AgentUrl": "https://agent.invalid"})
    lines = []
    for name, state in asl["States"].items():
        if state["Type"] != "Task" or not state.get("Retry"):
            continue
        lines.append(name)
        per_attempt = _per_attempt(name, state, template)
        total_attempts, total_wait = 1, 0.0
        for retrier in state["Retry"]:
            waits = retry_waits(retrier)
            lines.append(f"  {' | '.join(retrier['ErrorEquals'])}")
            if not waits:
                lines.append("    no retries")
                continue
            shown = _waits(retrier, waits)
            line = f"    {_retries(len(waits))}, waits (s): {shown}; at most {_s(sum(waits))} s of waiting"
            if "States.Timeout" in retrier["ErrorEquals"] and "TimeoutSeconds" in state:
                line += f"; each retry follows {_s(state['TimeoutSeconds'])} s without an answer (TimeoutSeconds)"
            lines.append(line)
            total_attempts += len(waits)
            total_wait += sum(waits)
        worst = f"  worst case before giving up: {_s(total_wait)} s of waiting"
        if per_attempt:
            seconds, source = per_attempt
            in_all = total_wait + total_attempts * seconds
            worst += f" + {total_attempts} attempts x up to {_s(seconds)} s ({source}) = {_s(in_all)} s{_hours(in_all)}"
        lines.append(worst)
        if len(state["Retry"]) > 1:
            lines.append("  (each error kind keeps its own count: the worst case meets all of them in turn)")
        for catch in state.get("Catch", []):
            errors = " | ".join(catch["ErrorEquals"])
            if catch["Next"] in _before(asl, name):
                lines.append(f"  {errors} is caught: back to {catch['Next']}, where every count starts again")
            flood = flood_wait(asl, name, catch)
            if flood:
                wait, bound = flood
                lines.append(
                    f"  {errors} is caught: {wait} waits what Telegram asks (retry_after), then {name} again,"
                    f" where every count starts again; at most {_s(bound)} s of such waits in all"
                )
    return "\n".join(lines)


def auto_replay_plan(template: Template | None = None) -> str:
    """What DeadLetterReplayFunction does with dead letters, from the template's parameters
    (AutoReplay, AutoReplayDelays) and its schedule: which errors come back after which delays."""
    from tgrelay.dead_letters import REPLAYABLE_ERRORS

    template = template or Template(parameters={"AgentUrl": "https://agent.invalid"})
    logical_id = "DeadLetterReplayFunction"
    (schedule,) = [
        event["Properties"]["Schedule"]
        for event in template.function_properties(logical_id).get("Events", {}).values()
        if event["Type"] == "Schedule"
    ]
    if template.parameters["AutoReplay"] != "true":
        return "Dead letters (AutoReplay=false): every one waits for a person (tgrelay dlq, tgrelay replay)"
    delays = [int(delay) for delay in template.parameters["AutoReplayDelays"].split(",")]
    shown = ", ".join(f"{_s(delay)} s" + (f" ({_duration(delay)})" if delay >= 60 else "") for delay in delays)
    return "\n".join(
        [
            f"Dead letters (AutoReplay=true; {logical_id} looks every {schedule[5:-1]})",
            f"  {' | '.join(sorted(REPLAYABLE_ERRORS))}",
            f"    replayed {len(delays)} times at most, each after its dead letter waited: {shown}",
            "  any other error, and an update whose replays are used up: waits for a person (DeadLetterAlarm)",
        ]
    )


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds / 60:.1f} min"


def flood_wait(asl: dict, name: str, catch: dict) -> tuple[str, float] | None:
    """(the Wait state, the bound in seconds) when `catch` of Task `name` leads round a Wait state
    whose SecondsPath comes from the error, back to `name`: the flood wait (FloodWait,
    WithinFloodWaitBound). None for any other Catch."""
    states = asl["States"]
    round_trip = _follow(states, catch["Next"])
    waits = [s for s in round_trip if states[s]["Type"] == "Wait" and "SecondsPath" in states[s]]
    if not waits or states[waits[-1]].get("Next") != name:
        return None
    bounds = [
        choice["NumericGreaterThan"]
        for s in round_trip
        if states[s]["Type"] == "Choice"
        for choice in states[s]["Choices"]
        if "NumericGreaterThan" in choice
    ]
    return waits[-1], bounds[0]


def _before(asl: dict, name: str) -> list[str]:
    """The states entered before `name` on the way along Next from StartAt."""
    path = _follow(asl["States"], asl["StartAt"])
    return path[: path.index(name)] if name in path else []


def _per_attempt(name: str, state: dict, template: Template) -> tuple[float, str] | None:
    """How long one attempt of the state may take, and where that number comes from."""
    if "TimeoutSeconds" in state:
        return float(state["TimeoutSeconds"]), "TimeoutSeconds"
    if name == "CallAgent":
        return float(template.parameters["AgentTimeoutSeconds"]), "AgentTimeoutSeconds"
    return None


def _retries(count: int) -> str:
    return "1 retry" if count == 1 else f"{count} retries"


def _waits(retrier: dict, waits: list[float]) -> str:
    """The waits in order, a run of equal ones shown once with its count: "1 (x23)"."""
    jitter = retrier.get("JitterStrategy") == "FULL"
    shown, index = [], 0
    while index < len(waits):
        run = 1
        while index + run < len(waits) and waits[index + run] == waits[index]:
            run += 1
        text = f"0-{_s(waits[index])}" if jitter else _s(waits[index])
        shown.append(text if run == 1 else f"{text} (x{run})")
        index += run
    return ", ".join(shown)


def _hours(seconds: float) -> str:
    return f" ({seconds / 3600:.1f} h)" if seconds >= 3600 else ""


@dataclass
class Path:
    name: str
    states: list[str]

    @property
    def transitions(self) -> int:
        return len(self.states)


def paths(asl: dict | None = None) -> list[Path]:
    """The happy path, and every path a Catch of one of its states leads to, as lists of states entered.

    A Catch that leads back to a state already on the way (TurnLost -> WaitForTurn) is shown going
    round once and then on along Next; following Next never enters a state twice, so a loop ends."""
    asl = asl or load_asl()
    states = asl["States"]
    happy = _follow(states, asl["StartAt"])
    found = [Path("happy path", happy)]
    for index, name in enumerate(happy):
        for other in _other_choices(states[name]):
            found.append(Path(f"{name} chooses {other}", happy[: index + 1] + _follow(states, other)))
        for catch in states[name].get("Catch", []):
            label = f"{name} catches {' | '.join(catch['ErrorEquals'])}"
            followed = _follow(states, catch["Next"])
            if set(followed) & set(happy[: index + 1]):
                label += " (round once)"
            found.append(Path(label, happy[: index + 1] + followed))
    # A Catch on the way of a Catch path that leads off it (RecordFailure meeting another execution's
    # claim), once: the first path that passes the state shows it.
    seen = set()
    for path in list(found[1:]):
        for index, name in enumerate(path.states):
            for catch in states[name].get("Catch", []):
                key = (name, catch["Next"])
                if name in happy or catch["Next"] in path.states or key in seen:
                    continue
                seen.add(key)
                label = f"{path.name}, then {name} catches {' | '.join(catch['ErrorEquals'])}"
                found.append(Path(label, path.states[: index + 1] + _follow(states, catch["Next"])))
    return found


def _main_way(state: dict) -> str:
    """The way a Choice's paths are shown along: its Default (FloodWaitedBefore: the first wait;
    WithinFloodWaitBound: the wait), unless the Default is where its rules also send bad input
    (CheckEnvelope: the dead letter), then its last rule (CheckEnvelope: a well-formed envelope)."""
    targets = [rule["Next"] for rule in state["Choices"]]
    return targets[-1] if state["Default"] in targets[:-1] else state["Default"]


def _other_choices(state: dict) -> list[str]:
    """The states a Choice leads to besides its main way (_main_way)."""
    if state["Type"] != "Choice":
        return []
    followed = _main_way(state)
    others = [rule["Next"] for rule in state["Choices"]] + [state.get("Default")]
    return list(dict.fromkeys(name for name in others if name and name != followed))


def cost_table(asl: dict | None = None) -> str:
    asl = asl or load_asl()
    lines = [f"{'path':<62} {'transitions':>11} {'$ per million':>14}"]
    for path in paths(asl):
        dollars = path.transitions * DOLLARS_PER_TRANSITION * 1_000_000
        lines.append(f"{path.name:<62} {path.transitions:>11} {dollars:>14.2f}")
    lines.append(f"each retry adds one transition (${DOLLARS_PER_TRANSITION * 1_000_000:.2f} per million retries);")
    for name, state in asl["States"].items():
        if "TimeoutSeconds" in state and any("States.Timeout" in r["ErrorEquals"] for r in state.get("Retry", [])):
            lines.append(f"so does each {_s(state['TimeoutSeconds'])} s (TimeoutSeconds) that {name} waits in vain.")
    for name, state in asl["States"].items():
        for catch in state.get("Catch", []):
            if flood_wait(asl, name, catch):
                states = _follow(asl["States"], catch["Next"])
                round_trip = states[: states.index(name) + 1]
                dollars = len(round_trip) * DOLLARS_PER_TRANSITION * 1_000_000
                lines.append(f"Each flood wait adds {len(round_trip)} transitions (${dollars:.2f} per million):")
                lines.append(f"  {', '.join(round_trip)}.")
    lines.append("Step Functions Standard only - Lambda, SQS, Pipes and DynamoDB are billed besides (bench/cost.py).")
    return "\n".join(lines)


def mermaid(asl: dict | None = None) -> str:
    """The state machine as a Mermaid flowchart: Next (and a Choice's Default) edges solid, Catch
    and Choice edges dotted and labelled; a callback task (.waitForTaskToken) is a hexagon, a
    Choice a rhombus, a Succeed a stadium, a Fail a parallelogram."""
    asl = asl or load_asl()
    lines = ["flowchart TD", f"    start((start)) --> {asl['StartAt']}"]
    for name, state in asl["States"].items():
        if state["Type"] == "Succeed":
            lines.append(f"    {name}([{name}])")
        elif state["Type"] == "Fail":
            lines.append(f"    {name}[/{name}/]")
        elif state["Type"] == "Task" and state["Resource"].endswith(CALLBACK):
            lines.append(f"    {name}{{{{{name}}}}}")
        if "Next" in state:
            lines.append(f"    {name} --> {state['Next']}")
        if state["Type"] == "Choice":
            lines.append(f"    {name}{{{name}}}")
            lines.append(f"    {name} --> {_main_way(state)}")
            for other in _other_choices(state):
                lines.append(f'    {name} -. "{_label(state, other)}" .-> {other}')
        if state.get("End"):
            lines.append(f"    {name} --> done((end))")
        for catch in state.get("Catch", []):
            lines.append(f'    {name} -. "{" | ".join(catch["ErrorEquals"])}" .-> {catch["Next"]}')
    return "\n".join(lines)


def _label(state: dict, target: str) -> str:
    """The edge label from a Choice to `target`, not its main way: "otherwise" for its Default, else
    its rules' conditions ("$.flood present", "$.flood.waited > 3600")."""
    if target == state["Default"]:
        return "otherwise"
    return " or ".join(_condition(rule) for rule in state["Choices"] if rule["Next"] == target)


def _condition(choice: dict) -> str:
    """A Choice rule as an edge label: "$.flood present", "$.flood.waited > 3600"."""
    if "IsPresent" in choice:
        return f"{choice['Variable']} {'present' if choice['IsPresent'] else 'absent'}"
    if "NumericGreaterThan" in choice:
        return f"{choice['Variable']} > {_s(choice['NumericGreaterThan'])}"
    raise ValueError(f"no label for the Choice rule {choice}")


def _follow(states: dict, start: str) -> list[str]:
    """The states entered from `start` following Next, or a Choice's main way (_main_way), until an
    end or a state entered before."""
    path, name = [], start
    while name is not None and name not in path:
        path.append(name)
        state = states[name]
        name = _main_way(state) if state["Type"] == "Choice" else state.get("Next")
    return path


def _s(seconds: float) -> str:
    return f"{seconds:g}"
