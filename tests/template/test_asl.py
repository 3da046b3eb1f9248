"""statemachine/relay.asl.json on its own: error names, Retry schedules and their comments, paths, budget."""

import inspect
import re
from collections.abc import Iterator

import pytest

import tgrelay.errors

from .conftest import FUNCTIONS_DIR, TEMPLATE, load_asl

ASL = load_asl()
STATES = ASL["States"]

AWS_ERROR_PREFIXES = ("States.", "Lambda.", "DynamoDB.", "SQS.")
# Raised but never named in the ASL on purpose: RelayError is the base class (never raised), and
# ConfigurationError is a deploy mistake that States.ALL sends to RecordFailure like any terminal error.
NOT_NAMED_IN_ASL = {"RelayError", "ConfigurationError"}

DESIGN_STATES = {
    "Parse",
    "ClaimUpdate",
    "AlreadyHandled",
    "CallAgent",
    "SendReply",
    "MarkDone",
    "RecordFailure",
    "ApologizeToUser",
    "SendToDeadLetterQueue",
    "Failed",
    "MarkUndeliverable",
}

# Tasks allowed to fail the execution instead of catching:
# - MarkDone / MarkUndeliverable run after the user has the reply (or cannot get one): compensating
#   there would release the claim and apologise for an answered message, so a replay would answer twice.
#   Retrying, then failing the execution (alarmed, visible in the console) is the right outcome.
# - SendToDeadLetterQueue is the last resort: there is nothing left to catch into, and it goes to Failed anyway.
UNCAUGHT_TASKS_ALLOWED = {"MarkDone", "MarkUndeliverable", "SendToDeadLetterQueue"}

DUPLICATE_ERROR = "DynamoDB.ConditionalCheckFailedException"


def error_classes() -> dict[str, type]:
    return {
        name: cls
        for name, cls in inspect.getmembers(tgrelay.errors, inspect.isclass)
        if issubclass(cls, tgrelay.errors.RelayError) and cls.__module__ == tgrelay.errors.__name__
    }


def all_states(states: dict = STATES) -> Iterator[tuple[str, dict]]:
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch["States"])
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from all_states(state[key]["States"])


def error_names() -> set[str]:
    return {
        error
        for _, state in all_states()
        for handler in state.get("Retry", []) + state.get("Catch", [])
        for error in handler["ErrorEquals"]
    }


# --- error names ---------------------------------------------------------------------------------------------


def test_error_classes_found():
    assert {"RelayError", "AgentUnavailable", "TelegramUnavailable", "RecipientUnavailable"} <= set(error_classes())


def test_every_custom_error_name_is_an_exception_class():
    custom = {name for name in error_names() if not name.startswith(AWS_ERROR_PREFIXES)}
    assert custom, "no custom error names in the ASL: the check would be empty"
    unknown = custom - set(error_classes())
    assert not unknown, f"ErrorEquals names with no class in tgrelay.errors (typo or rename): {sorted(unknown)}"
    assert "RelayError" not in custom, "the base class is never raised itself, so it never matches"


def test_every_error_class_is_named_in_the_asl():
    unnamed = set(error_classes()) - NOT_NAMED_IN_ASL - error_names()
    assert not unnamed, f"exception classes the ASL never names: {sorted(unnamed)}"


def test_aws_error_names_are_well_formed():
    for name in error_names():
        if name.startswith(AWS_ERROR_PREFIXES):
            assert re.fullmatch(r"(States|Lambda|DynamoDB|SQS)\.[A-Z][A-Za-z]+", name), name


# --- Retry schedules and their comments -----------------------------------------------------------------------


def retriers() -> list[tuple[str, dict]]:
    return [
        (f"{name}-{'|'.join(retry['ErrorEquals'])[:40]}", retry)
        for name, state in all_states()
        for retry in state.get("Retry", [])
    ]


RETRIERS = retriers()


def fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def base_waits(retry: dict) -> list[float]:
    """Waits before retry n = 1..MaxAttempts, before jitter: min(Interval * Backoff**(n-1), MaxDelay)."""
    interval = retry.get("IntervalSeconds", 1)
    rate = retry.get("BackoffRate", 2.0)
    cap = retry.get("MaxDelaySeconds")
    waits = [interval * rate ** (n - 1) for n in range(1, retry.get("MaxAttempts", 3) + 1)]
    return [min(w, cap) for w in waits] if cap is not None else waits


def schedule_phrase(retry: dict) -> str:
    waits = [fmt(w) for w in base_waits(retry)]
    listed = " and ".join(waits) if len(waits) == 2 else ", ".join(waits)
    up_to = "up to " if retry.get("JitterStrategy") == "FULL" else ""
    return f"after {up_to}{listed} s"


def test_schedule_phrase():
    # The reference the comments are checked against, on two cases worked by hand.
    capped = {
        "IntervalSeconds": 3,
        "BackoffRate": 2.0,
        "MaxAttempts": 6,
        "MaxDelaySeconds": 60,
        "JitterStrategy": "FULL",
    }
    assert schedule_phrase(capped) == "after up to 3, 6, 12, 24, 48, 60 s"
    assert schedule_phrase({"IntervalSeconds": 5, "BackoffRate": 2.0, "MaxAttempts": 2}) == "after 5 and 10 s"
    assert schedule_phrase({"IntervalSeconds": 1, "BackoffRate": 1.5, "MaxAttempts": 3}) == "after 1, 1.5, 2.25 s"


def test_there_are_retriers():
    assert len(RETRIERS) >= 5


@pytest.mark.parametrize(("where", "retry"), RETRIERS, ids=[where for where, _ in RETRIERS])
def test_retry_comment_states_the_schedule(where, retry):
    comment = retry.get("Comment", "")
    assert comment, f"{where}: every Retry says in its Comment what schedule it produces"
    if retry.get("MaxAttempts", 3) == 0:
        assert "no retries" in comment.lower()
        return
    waits = base_waits(retry)
    phrase = schedule_phrase(retry)
    assert phrase in comment, f"{where}: comment should say {phrase!r}: {comment!r}"
    retries = retry.get("MaxAttempts", 3)
    count = f"{retries} retries" if retries != 1 else "1 retry"
    assert count in comment, f"{where}: comment should say {count!r}: {comment!r}"
    if retry.get("JitterStrategy") == "FULL":
        assert "full jitter" in comment, f"{where}: JitterStrategy FULL and the comment does not say 'full jitter'"
    else:
        assert "jitter" not in comment, f"{where}: the comment claims jitter, the Retry has none"
    if "MaxDelaySeconds" in retry:
        capped = f"capped at {fmt(retry['MaxDelaySeconds'])} s"
        assert capped in comment, f"{where}: comment should say {capped!r}"
    else:
        assert "capped" not in comment, f"{where}: the comment claims a cap, the Retry has no MaxDelaySeconds"
    # Totals the comment states must add up too.
    for total in re.findall(r"at most (\d+(?:\.\d+)?) s of waiting", comment):
        assert total == fmt(sum(waits)), f"{where}: waits add up to {fmt(sum(waits))} s, comment says {total} s"
    for attempts in re.findall(r"(\d+) attempts in all", comment):
        assert int(attempts) == retries + 1, f"{where}: {retries} retries make {retries + 1} attempts in all"


def test_retry_numbers_live_only_in_the_asl():
    files = [*sorted(FUNCTIONS_DIR.rglob("*.py")), TEMPLATE]
    assert len(files) > 3
    for path in files:
        found = re.findall(r"IntervalSeconds|MaxAttempts|BackoffRate|MaxDelaySeconds|JitterStrategy", path.read_text())
        assert not found, f"{path}: Retry settings belong in statemachine/relay.asl.json only: {sorted(set(found))}"


# --- states and paths -----------------------------------------------------------------------------------------


def test_design_states_exist():
    assert not DESIGN_STATES - set(STATES), f"missing: {sorted(DESIGN_STATES - set(STATES))}"
    assert STATES["AlreadyHandled"]["Type"] == "Succeed"
    assert STATES["Failed"]["Type"] == "Fail"
    assert STATES["Parse"]["Type"] == "Pass"


def is_terminal(state: dict) -> bool:
    return state.get("End") is True or state["Type"] in {"Succeed", "Fail"}


def follow_next(start: str) -> list[str]:
    """The states visited from start following Next only (no Catch, no Choice)."""
    path = [start]
    while not is_terminal(STATES[path[-1]]):
        state = STATES[path[-1]]
        assert "Next" in state, f"{path[-1]} ({state['Type']}) has no Next: the path is not straight"
        path.append(state["Next"])
        assert len(path) <= len(STATES), f"loop: {path}"
    return path


def test_happy_path_budget():
    path = follow_next(ASL["StartAt"])
    assert path == ["Parse", "ClaimUpdate", "CallAgent", "SendReply", "MarkDone"]
    assert len(path) <= 5, "DESIGN §4: the happy path costs at most 5 state transitions"
    assert STATES["MarkDone"].get("End") is True


def catcher_for(state: str, error: str) -> dict:
    """The first Catch of state that matches error (Catch order is match order)."""
    for catcher in STATES[state].get("Catch", []):
        if error in catcher["ErrorEquals"] or "States.ALL" in catcher["ErrorEquals"]:
            return catcher
    raise AssertionError(f"{state} does not catch {error}")


def test_duplicate_path_budget():
    assert follow_next(ASL["StartAt"])[:2] == ["Parse", "ClaimUpdate"]
    catcher = catcher_for("ClaimUpdate", DUPLICATE_ERROR)
    assert catcher["ErrorEquals"] == [DUPLICATE_ERROR], "a duplicate must match its own Catch, not States.ALL"
    path = ["Parse", "ClaimUpdate", *follow_next(catcher["Next"])]
    assert path == ["Parse", "ClaimUpdate", "AlreadyHandled"]
    assert len(path) <= 3, "DESIGN §4: a duplicate costs at most 3 state transitions"


def test_a_duplicate_is_not_retried():
    for retry in STATES["ClaimUpdate"].get("Retry", []):
        assert DUPLICATE_ERROR not in retry["ErrorEquals"], "a lost claim is final, retrying it only costs"
        assert "States.ALL" not in retry["ErrorEquals"], "States.ALL would retry the duplicate's condition failure"


def test_every_task_catches_or_is_allowed_to_fail():
    for name, state in all_states():
        if state["Type"] != "Task":
            continue
        if name in UNCAUGHT_TASKS_ALLOWED and not state.get("Catch"):
            # Allowed to fail the execution, but not at the first throttle.
            assert any("States.ALL" in r["ErrorEquals"] for r in state.get("Retry", [])), f"{name} must retry"
        else:
            assert state.get("Catch"), f"{name}: a Task without Catch fails the execution with no DLQ entry"
            assert "States.ALL" in state["Catch"][-1]["ErrorEquals"], f"{name}: the last Catch must be States.ALL"


def outcomes(start: str) -> list[list[str]]:
    """Every path from start, following Next and every Catch, to a terminal state."""
    paths, todo = [], [[start]]
    while todo:
        path = todo.pop()
        state = STATES[path[-1]]
        if is_terminal(state):
            paths.append(path)
            continue
        successors = {state["Next"]} if "Next" in state else set()
        successors |= {c["Next"] for c in state.get("Catch", [])}
        assert successors, f"{path[-1]} leads nowhere"
        for successor in sorted(successors):
            assert successor not in path, f"loop: {path + [successor]}"
            todo.append(path + [successor])
    return paths


@pytest.mark.parametrize("state", ["ClaimUpdate", "CallAgent", "SendReply"])
def test_failures_end_in_the_dead_letter_queue(state):
    catchers = [
        c
        for c in STATES[state]["Catch"]
        if DUPLICATE_ERROR not in c["ErrorEquals"] and "RecipientUnavailable" not in c["ErrorEquals"]
    ]
    assert catchers
    for catcher in catchers:
        assert catcher["Next"] == "RecordFailure", f"{state}: a failure first releases the claim"
        assert catcher.get("ResultPath") == "$.error", "RecordFailure, the DLQ and Failed read $.error"
        for path in outcomes(catcher["Next"]):
            assert path[-2:] == ["SendToDeadLetterQueue", "Failed"], f"{state} -> {path}"
            assert "ApologizeToUser" in path, f"{state} -> {path}: the user is told"


def test_blocked_user_is_not_a_failure():
    catcher = catcher_for("SendReply", "RecipientUnavailable")
    assert catcher["ErrorEquals"] == ["RecipientUnavailable"]
    assert outcomes(catcher["Next"]) == [["MarkUndeliverable"]]
    assert STATES["MarkUndeliverable"].get("End") is True


def test_compensation_steps_do_not_stop_the_way_to_the_dlq():
    # RecordFailure and ApologizeToUser are best effort: both their success and their failure go on.
    for name, nxt in (("RecordFailure", "ApologizeToUser"), ("ApologizeToUser", "SendToDeadLetterQueue")):
        state = STATES[name]
        assert state["Next"] == nxt
        assert [c["Next"] for c in state["Catch"]] == [nxt]
        assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"]
        # null keeps the input as it is; "$" or "$.error" would overwrite the original failure.
        assert state["Catch"][0].get("ResultPath", "$") not in ("$", "$.error"), f"{name} must keep $.error"
    assert STATES["SendToDeadLetterQueue"]["Next"] == "Failed"
    assert STATES["Failed"]["ErrorPath"] == "$.error.Error"


def test_jsonpath_only():
    assert ASL.get("QueryLanguage", "JSONPath") == "JSONPath"
    for name, state in all_states():
        assert state.get("QueryLanguage", "JSONPath") == "JSONPath", name
