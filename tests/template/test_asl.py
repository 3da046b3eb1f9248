"""statemachine/relay.asl.json on its own: error names, Retry schedules and their comments, paths, budget,
the conversation's turn (WaitForTurn and every way out handing it on)."""

import ast
import inspect
import json
import re
from collections.abc import Iterator
from typing import get_args

import pytest

import tgrelay.errors
from tgrelay.shapes import (
    ApologyEvent,
    CallAgentEvent,
    Outcome,
    SendReplyEvent,
    TurnFinishEvent,
    TurnWaitEvent,
)
from tgrelay_local import plans

from .conftest import FUNCTIONS_DIR, TEMPLATE, load_asl

ASL = load_asl()
STATES = ASL["States"]

AWS_ERROR_PREFIXES = ("States.", "Lambda.", "DynamoDB.", "SQS.", "Sandbox.")
# Raised but never named in the ASL on purpose: RelayError is the base class (never raised), and
# ConfigurationError is a deploy mistake that States.ALL sends to RecordFailure like any terminal error.
NOT_NAMED_IN_ASL = {"RelayError", "ConfigurationError"}

# The flood wait (DESIGN.md §4: "a wait that Telegram dictates, retry_after, is read from the error
# at run time, bounded by a number in the ASL"): off the happy path, entered only on TelegramRateLimited.
FLOOD_WAIT_STATES = {
    "FloodWaitedBefore",
    "FirstFloodWait",
    "NextFloodWait",
    "AddFloodWait",
    "WithinFloodWaitBound",
    "FloodWait",
}
DESIGN_STATES = {
    "CheckEnvelope",
    "DeadLetterNotAnEnvelope",
    "NotAnEnvelope",
    *FLOOD_WAIT_STATES,
    "ClaimUpdate",
    "AlreadyHandled",
    "ClaimFailed",
    "WaitForTurn",
    "MergedIntoTurn",
    "CallAgent",
    "SendReply",
    "MarkDone",
    "MarkUndeliverable",
    "RecordFailure",
    "ClaimedByAnotherExecution",
    "ApologizeToUser",
    "HandOnTurn",
    "SendToDeadLetterQueue",
    "Failed",
}
HAPPY_PATH = ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply", "MarkDone"]
# TurnsFunction's "finish" tasks: each records the outcome and hands the conversation's turn on.
HAND_ON = {"MarkDone": "DONE", "MarkUndeliverable": "UNDELIVERABLE", "HandOnTurn": "FAILED"}
CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"
# Errors that lead somewhere other than the failure path on purpose.
TURN_LOST = "TurnLost"  # CallAgent / SendReply: back to WaitForTurn
MERGED = "MergedIntoTurn"  # WaitForTurn: answered in an earlier message's turn

# Tasks allowed to fail the execution instead of catching:
# - MarkDone / MarkUndeliverable run after the user has the reply (or cannot get one): compensating
#   there would release the claim and apologise for an answered message, so a replay would answer twice.
#   Retrying, then failing the execution (alarmed, visible in the console) is the right outcome; the
#   EventBridge rule on the failed execution then hands the conversation's turn on (test_turns.py).
# - SendToDeadLetterQueue is the last resort: there is nothing left to catch into, and it goes to Failed anyway.
UNCAUGHT_TASKS_ALLOWED = {"MarkDone", "MarkUndeliverable", "SendToDeadLetterQueue", "DeadLetterNotAnEnvelope"}

DUPLICATE_ERROR = "DynamoDB.ConditionalCheckFailedException"
# RecordFailure meets a claim another execution holds or has finished: that execution answers.
QUIET_END = "ClaimedByAnotherExecution"


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
            assert re.fullmatch(r"(States|Lambda|DynamoDB|SQS|Sandbox)\.[A-Z][A-Za-z]+", name), name


def test_the_turn_errors_are_classes_and_named_where_they_arrive():
    # TurnLost is raised by CallAgent/SendReply (renew_lease) and by WaitForTurn; MergedIntoTurn is never
    # raised, only sent as SendTaskFailure's error name. Both must match a class, or a rename goes unnoticed.
    assert {TURN_LOST, MERGED} <= set(error_classes())
    assert {TURN_LOST, MERGED} <= error_names()
    assert [c["ErrorEquals"] for c in STATES["WaitForTurn"]["Catch"] if c["Next"] == "MergedIntoTurn"] == [[MERGED]]
    for state in ("CallAgent", "SendReply"):
        assert [c["ErrorEquals"] for c in STATES[state]["Catch"] if c["Next"] == "WaitForTurn"] == [[TURN_LOST]]


def send_task_failure_errors() -> list[tuple[str, str]]:
    """(file, error name) for every send_task_failure(error=...) call in functions/: a literal, or
    SomeError.__name__ of a class imported from tgrelay.errors."""
    found = []
    for path in sorted(FUNCTIONS_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "send_task_failure"):
                continue
            (error,) = [keyword.value for keyword in node.keywords if keyword.arg == "error"]
            if isinstance(error, ast.Constant):
                found.append((path.name, error.value))
            else:
                assert isinstance(error, ast.Attribute) and error.attr == "__name__", ast.unparse(error)
                found.append((path.name, ast.unparse(error.value)))
    return found


def test_every_error_sent_with_send_task_failure_is_a_class_the_asl_catches():
    sent = send_task_failure_errors()
    assert ("turns.py", MERGED) in sent, "the merged message's SendTaskFailure was not found: the check is empty"
    caught = {error for c in STATES["WaitForTurn"]["Catch"] for error in c["ErrorEquals"]} - {"States.ALL"}
    for where, error in sent:
        assert error in error_classes(), f"{where}: SendTaskFailure error {error!r} is no class in tgrelay.errors"
        assert error in caught, f"{where}: WaitForTurn does not name {error!r}: States.ALL would take it"


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
    up_to = "up to " if retry.get("JitterStrategy") == "FULL" else ""
    if len(waits) > 2 and len(set(waits)) == 1:
        return f"after {up_to}{waits[0]} s each"
    listed = " and ".join(waits) if len(waits) == 2 else ", ".join(waits)
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
    assert schedule_phrase({"IntervalSeconds": 1, "BackoffRate": 1.0, "MaxAttempts": 23}) == "after 1 s each"


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
    # "N more <attempts>" says the same in the state's own words (WaitForTurn: "23 more looks").
    assert count in comment or re.search(rf"\b{retries} more [a-z]+", comment), f"{where}: should say {count!r}"
    assert not {int(n) for n in re.findall(r"(\d+) (?:retries|more [a-z]+)\b", comment)} - {retries}, where
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


def test_wait_for_turn_comment_states_its_timeout_and_when_it_gives_up():
    state = STATES["WaitForTurn"]
    (retry,) = [r for r in state["Retry"] if r["ErrorEquals"] == ["States.Timeout"]]
    comment, timeout = retry["Comment"], state["TimeoutSeconds"]
    assert f"within {fmt(timeout / 60)} minutes (TimeoutSeconds)" in comment, comment
    # Every attempt waits TimeoutSeconds for its token; the waits between come on top.
    total = (retry["MaxAttempts"] + 1) * timeout + sum(base_waits(retry))
    (hours,) = re.findall(r"gives up after (\d+) hours", comment)
    assert int(hours) == round(total / 3600), f"{total} s is not about {hours} hours"


def test_retry_numbers_live_only_in_the_asl():
    files = [*sorted(FUNCTIONS_DIR.rglob("*.py")), TEMPLATE]
    assert len(files) > 3
    for path in files:
        found = re.findall(r"IntervalSeconds|MaxAttempts|BackoffRate|MaxDelaySeconds|JitterStrategy", path.read_text())
        assert not found, f"{path}: Retry settings belong in statemachine/relay.asl.json only: {sorted(set(found))}"


# --- states and paths -----------------------------------------------------------------------------------------


def test_design_states_exist():
    assert not DESIGN_STATES - set(STATES), f"missing: {sorted(DESIGN_STATES - set(STATES))}"
    assert not set(STATES) - DESIGN_STATES, f"undescribed: {sorted(set(STATES) - DESIGN_STATES)}"
    assert "Parse" not in STATES, "the pipe's InputTemplate parses the body: a Parse state is a billed transition"
    assert {
        name: STATES[name]["Type"]
        for name in (
            "CheckEnvelope",
            "AlreadyHandled",
            "MergedIntoTurn",
            "ClaimedByAnotherExecution",
            "Failed",
            "NotAnEnvelope",
            "ClaimFailed",
        )
    } == {
        "CheckEnvelope": "Choice",
        "AlreadyHandled": "Succeed",
        "MergedIntoTurn": "Succeed",
        "ClaimedByAnotherExecution": "Succeed",
        "Failed": "Fail",
        "NotAnEnvelope": "Fail",
        "ClaimFailed": "Pass",
    }
    assert STATES["WaitForTurn"]["Resource"] == CALLBACK


def test_the_check_reads_the_pipes_one_record_and_the_claim_passes_it_on():
    # The pipe's InputTemplate gives [{"update": envelope, "group_id": ...}] (tests/template/test_translated.py).
    assert ASL["StartAt"] == "CheckEnvelope"
    assert STATES["CheckEnvelope"]["InputPath"] == "$[0]"
    claim = STATES["ClaimUpdate"]
    assert (claim.get("InputPath", "$"), claim["ResultPath"], claim.get("OutputPath", "$")) == ("$", None, "$")
    assert claim["Parameters"]["Item"]["pk"] == {"S.$": "States.Format('update#{}', $.update.update_id)"}
    # A failed claim: the Catch's "$" is the error alone; ClaimFailed rebuilds the failure path's input.
    (catch_all,) = [c for c in claim["Catch"] if "States.ALL" in c["ErrorEquals"]]
    assert (catch_all["Next"], catch_all["ResultPath"]) == ("ClaimFailed", "$")
    failed = STATES["ClaimFailed"]
    assert failed["Parameters"] == {
        "update.$": "States.ArrayGetItem($$.Execution.Input[*].update, 0)",
        "group_id.$": "States.ArrayGetItem($$.Execution.Input[*].group_id, 0)",
        "error.$": "$",
    }
    assert failed["Next"] == "RecordFailure"


def _paths(node, key: str = ""):
    """Every JSONPath the ASL evaluates: *Path fields and the values of "*.$" keys."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _paths(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _paths(item, key)
    elif isinstance(node, str) and (key.endswith(".$") or key.endswith("Path")):
        yield node


def test_no_path_reads_a_field_through_an_array_index():
    # Step Functions unpacks a path that ENDS in an index ($[0]) to the element; one that goes on
    # through it ($[0].update) is an array on some engines (moto) and not on others. The pipe's
    # input is an array, so this matters: [0] only at the end, or [*] with States.ArrayGetItem.
    through_index = [path for path in _paths(ASL) if re.search(r"\[\d+\]\.", path)]
    assert through_index == []


def is_terminal(state: dict) -> bool:
    return state.get("End") is True or state["Type"] in {"Succeed", "Fail"}


def follow_next(start: str) -> list[str]:
    """The states visited from start following Next only (no Catch, no Choice)."""
    path = [start]
    while not is_terminal(STATES[path[-1]]):
        state = STATES[path[-1]]
        if state["Type"] == "Choice":
            path.append(state["Choices"][-1]["Next"])  # CheckEnvelope: the way of an envelope
            continue
        assert "Next" in state, f"{path[-1]} ({state['Type']}) has no Next: the path is not straight"
        path.append(state["Next"])
        assert len(path) <= len(STATES), f"loop: {path}"
    return path


def billed(name: str) -> list[str]:
    """A path as `tgrelay cost` (tgrelay_local.plans) reads it off the ASL."""
    return {path.name: path for path in plans.paths(ASL)}[name].states


def test_happy_path_budget():
    path = follow_next(ASL["StartAt"])
    assert path == HAPPY_PATH
    assert billed("happy path") == path
    # DESIGN §4 budgets 5; CheckEnvelope (issue 14, finding 6) is the sixth: a message that is not an
    # envelope fails the first path that reads it with States.Runtime, which no Catch takes.
    assert len(path) <= 6, "the happy path costs at most 6 state transitions, the turn and the check included"
    assert STATES["MarkDone"].get("End") is True


def catcher_for(state: str, error: str) -> dict:
    """The first Catch of state that matches error (Catch order is match order)."""
    for catcher in STATES[state].get("Catch", []):
        if error in catcher["ErrorEquals"] or "States.ALL" in catcher["ErrorEquals"]:
            return catcher
    raise AssertionError(f"{state} does not catch {error}")


def test_duplicate_path_budget():
    assert follow_next(ASL["StartAt"])[:2] == ["CheckEnvelope", "ClaimUpdate"], "the claim comes first after the check"
    catcher = catcher_for("ClaimUpdate", DUPLICATE_ERROR)
    assert catcher["ErrorEquals"] == [DUPLICATE_ERROR], "a duplicate must match its own Catch, not States.ALL"
    path = ["CheckEnvelope", "ClaimUpdate", *follow_next(catcher["Next"])]
    assert path == ["CheckEnvelope", "ClaimUpdate", "AlreadyHandled"]
    assert billed(f"ClaimUpdate catches {DUPLICATE_ERROR}") == path
    assert len(path) <= 3, "a duplicate costs at most 3 state transitions (DESIGN §4: 2, before CheckEnvelope)"


def test_a_merged_message_ends_in_its_own_state():
    catcher = catcher_for("WaitForTurn", MERGED)
    assert catcher["ErrorEquals"] == [MERGED], "a merged message must not take the failure path"
    assert catcher["ResultPath"] == "$.merged_into", "keeps the update; the Cause names the turn it joined"
    path = ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", *follow_next(catcher["Next"])]
    assert path == ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "MergedIntoTurn"]
    assert billed(f"WaitForTurn catches {MERGED}") == path


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


def turn_lost(source: str, target: str) -> bool:
    """The Catch of TurnLost from source back to WaitForTurn: the one way round the ASL has."""
    return any(c["Next"] == target and c["ErrorEquals"] == [TURN_LOST] for c in STATES[source].get("Catch", []))


def flood_round(source: str, target: str) -> bool:
    """FloodWait back to SendReply: the other way round, bounded by WithinFloodWaitBound's count."""
    return (source, target) == ("FloodWait", "SendReply")


def outcomes(start: str) -> list[list[str]]:
    """Every path from start, following Next, every Catch and every Choice, to a terminal state. A
    TurnLost Catch ends its path at WaitForTurn (what follows is WaitForTurn's own outcomes), a flood
    wait at SendReply (what follows is SendReply's); any other loop fails."""
    paths, todo = [], [[start]]
    while todo:
        path = todo.pop()
        state = STATES[path[-1]]
        if is_terminal(state):
            paths.append(path)
            continue
        successors = {state["Next"]} if "Next" in state else set()
        successors |= {c["Next"] for c in state.get("Catch", [])}
        successors |= {rule["Next"] for rule in state.get("Choices", [])} | ({state.get("Default")} - {None})
        assert successors, f"{path[-1]} leads nowhere"
        for successor in sorted(successors):
            if turn_lost(path[-1], successor) or flood_round(path[-1], successor):
                paths.append(path + [successor])
                continue
            assert successor not in path, f"loop: {path + [successor]}"
            todo.append(path + [successor])
    return paths


def test_the_only_way_round_is_a_lost_turn():
    for name in STATES:
        outcomes(name)  # asserts there is no other loop
    rounds = sorted(
        (name, catch["Next"])
        for name in STATES
        for catch in STATES[name].get("Catch", [])
        if turn_lost(name, catch["Next"])
    )
    assert rounds == [("CallAgent", "WaitForTurn"), ("SendReply", "WaitForTurn")]
    # The flood wait goes round too: SendReply -> ... -> FloodWait -> SendReply, bounded (tested below).
    assert STATES["FloodWait"]["Next"] == "SendReply"
    # The costed paths go round once and then on: finite, and ending where a path ends.
    for path in plans.paths(ASL):
        assert is_terminal(STATES[path.states[-1]]), path.name
    assert billed(f"CallAgent catches {TURN_LOST} (round once)") == [
        "CheckEnvelope",
        "ClaimUpdate",
        "WaitForTurn",
        "CallAgent",
        *HAPPY_PATH[2:],
    ]


@pytest.mark.parametrize("state", ["CallAgent", "SendReply"])
def test_a_lost_turn_waits_for_the_turn_again(state):
    catch = STATES[state]["Catch"][0]
    assert catch == {"ErrorEquals": [TURN_LOST], "ResultPath": None, "Next": "WaitForTurn"}, "first, and keeps $"
    for retry in STATES[state]["Retry"]:
        assert TURN_LOST not in retry["ErrorEquals"], f"{state}: retrying a lost turn calls the agent without it"


def test_wait_for_turn_is_a_callback_of_the_turns_function():
    state = STATES["WaitForTurn"]
    assert state["Parameters"] == {
        "FunctionName": "${TurnsFunctionArn}",
        "Payload": {
            "action": "wait",
            "update.$": "$.update",
            "execution.$": "$$.Execution.Id",
            "token.$": "$$.Task.Token",
        },
    }
    # The merged messages travel with the update: to the agent, to the finish tasks, into the DLQ body.
    assert state["ResultPath"] == "$.update.merged"
    assert isinstance(state["TimeoutSeconds"], int) and state["TimeoutSeconds"] > 0
    assert "HeartbeatSeconds" not in state, "nobody heartbeats a parked token"
    timeout_retries = [r for r in state["Retry"] if "States.Timeout" in r["ErrorEquals"]]
    assert [r["ErrorEquals"] for r in timeout_retries] == [["States.Timeout"]], "a timed-out wait looks again"
    assert any(TURN_LOST in r["ErrorEquals"] for r in state["Retry"]), "a grant released meanwhile: register again"
    assert [c["ErrorEquals"] for c in state["Catch"]] == [[MERGED], ["States.ALL"]]
    assert state["Next"] == "CallAgent"


@pytest.mark.parametrize("name", sorted(HAND_ON))
def test_the_finish_tasks_hand_the_turn_on(name):
    state = STATES[name]
    assert state["Resource"] == "arn:aws:states:::lambda:invoke"
    parameters = state["Parameters"]
    assert parameters["FunctionName"] == "${TurnsFunctionArn}"
    payload = dict(parameters["Payload"])
    common = {"action": "finish", "outcome": HAND_ON[name], "update.$": "$.update", "execution.$": "$$.Execution.Id"}
    assert {key: payload.pop(key) for key in common} == common
    own = {
        "MarkDone": {"chunks.$": "$.delivery.chunks"},
        "MarkUndeliverable": {"reason.$": "$.error.Cause"},
        "HandOnTurn": {"error.$": "$.error.Error"},
    }
    assert payload == own[name]
    assert state["ResultPath"] is None, "the DLQ and Failed still read $.error"
    assert any("States.ALL" in r["ErrorEquals"] for r in state["Retry"]), f"{name}: a throttle must not strand the turn"


def test_every_way_out_of_a_turn_hands_it_on():
    # The turn is held from WaitForTurn's success until a finish task of TurnsFunction; a lost turn
    # goes back to WaitForTurn holding nothing.
    held = outcomes(STATES["WaitForTurn"]["Next"])
    assert len(held) > 3
    for path in held:
        if path[-1] in ("WaitForTurn", "SendReply", QUIET_END):
            # A lost turn (WaitForTurn); a flood wait (SendReply again). QUIET_END: RecordFailure met
            # another execution's claim. Only a WAITING message's claim is ever handed to another
            # execution (turns.py, _claims_handed), so once this execution holds the turn its claim
            # stays its own and this end is not reached from here.
            continue
        assert set(path) & set(HAND_ON), f"ends without handing the turn on: {path}"
    # A failed wait may hold merged messages' claims: its failure path hands on too.
    # Unless its own claim was handed to another execution: it was merged into that turn, holding none.
    for path in outcomes(catcher_for("WaitForTurn", "States.Timeout")["Next"]):
        assert "HandOnTurn" in path or path[-1] == QUIET_END, path


@pytest.mark.parametrize("state", ["ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply"])
def test_failures_end_in_the_dead_letter_queue(state):
    deliberate = {DUPLICATE_ERROR, "RecipientUnavailable", TURN_LOST, MERGED, "TelegramRateLimited"}
    catchers = [c for c in STATES[state]["Catch"] if not deliberate & set(c["ErrorEquals"])]
    assert catchers
    for catcher in catchers:
        if state == "ClaimUpdate":
            assert catcher["Next"] == "ClaimFailed"  # rebuilds {update, group_id, error} (test above)
        else:
            assert catcher["Next"] == "RecordFailure", f"{state}: a failure first releases the claim"
            assert catcher.get("ResultPath") == "$.error", "RecordFailure, the DLQ and Failed read $.error"
        for path in outcomes(catcher["Next"]):
            if path[-1] == QUIET_END:
                assert path[-2] == "RecordFailure", path  # test_another_executions_claim_ends_quietly
                continue
            assert path[-3:] == ["HandOnTurn", "SendToDeadLetterQueue", "Failed"], f"{state} -> {path}"
            assert "RecordFailure" in path, f"{state} -> {path}: the claim is released for a replay"
            assert "ApologizeToUser" in path, f"{state} -> {path}: the user is told"


FLOOD_WAIT_BOUND = 3600  # seconds of flood waits per execution (README: Telegram delivery)


def test_a_flood_wait_waits_what_telegram_asked_within_the_bound():
    catcher = catcher_for("SendReply", "TelegramRateLimited")
    assert catcher == {"ErrorEquals": ["TelegramRateLimited"], "ResultPath": "$.error", "Next": "FloodWaitedBefore"}
    assert all("TelegramRateLimited" not in r["ErrorEquals"] for r in STATES["SendReply"]["Retry"]), (
        "a fixed Retry schedule would not wait what Telegram asks"
    )
    # Every flood round counts its wait, then either waits it or gives up; none skips the count.
    paths = outcomes("FloodWaitedBefore")
    rounds = [path for path in paths if path[-1] == "SendReply"]
    assert rounds == [
        ["FloodWaitedBefore", *first, "AddFloodWait", "WithinFloodWaitBound", "FloodWait", "SendReply"]
        for first in (["NextFloodWait"], ["FirstFloodWait"])
    ]
    for path in paths:
        if path[-1] != "SendReply":
            assert path[:4] in (
                ["FloodWaitedBefore", "FirstFloodWait", "AddFloodWait", "WithinFloodWaitBound"],
                ["FloodWaitedBefore", "NextFloodWait", "AddFloodWait", "WithinFloodWaitBound"],
            )
            assert path[4] == "RecordFailure"
            assert path[-3:] == ["HandOnTurn", "SendToDeadLetterQueue", "Failed"] or path[-1] == QUIET_END
    assert STATES["FirstFloodWait"]["Parameters"]["waited"] == 0
    assert STATES["NextFloodWait"]["Parameters"]["waited.$"] == "$.flood.waited"
    (over,) = STATES["WithinFloodWaitBound"]["Choices"]
    assert over == {"Variable": "$.flood.waited", "NumericGreaterThan": FLOOD_WAIT_BOUND, "Next": "RecordFailure"}
    assert STATES["FloodWait"]["SecondsPath"] == "$.flood.retry_after"
    add = STATES["AddFloodWait"]["Parameters"]
    assert add["waited.$"] == f"States.MathAdd($.flood.waited, {add['retry_after.$']})", "waits what it counts"


def test_blocked_user_is_not_a_failure():
    catcher = catcher_for("SendReply", "RecipientUnavailable")
    assert catcher["ErrorEquals"] == ["RecipientUnavailable"]
    assert outcomes(catcher["Next"]) == [["MarkUndeliverable"]]
    assert STATES["MarkUndeliverable"].get("End") is True


def test_compensation_steps_do_not_stop_the_way_to_the_dlq():
    # RecordFailure, ApologizeToUser and HandOnTurn are best effort: both their success and their failure go on.
    for name, nxt in (
        ("RecordFailure", "ApologizeToUser"),
        ("ApologizeToUser", "HandOnTurn"),
        ("HandOnTurn", "SendToDeadLetterQueue"),
    ):
        state = STATES[name]
        assert state["Next"] == nxt
        # RecordFailure's first Catch: another execution's claim (test_another_executions_claim_ends_quietly).
        catches = state["Catch"][1:] if name == "RecordFailure" else state["Catch"]
        assert [c["Next"] for c in catches] == [nxt]
        assert catches[0]["ErrorEquals"] == ["States.ALL"]
        # null keeps the input as it is; "$" or "$.error" would overwrite the original failure.
        assert catches[0].get("ResultPath", "$") not in ("$", "$.error"), f"{name} must keep $.error"
    assert STATES["SendToDeadLetterQueue"]["Next"] == "Failed"
    assert STATES["Failed"]["ErrorPath"] == "$.error.Error"


def test_the_dead_letter_body_is_the_envelope_with_its_merged_messages():
    parameters = STATES["SendToDeadLetterQueue"]["Parameters"]
    # $.update carries "merged" (WaitForTurn's result), so a replay answers those messages too.
    assert parameters["MessageBody.$"] == "States.JsonToString($.update)"
    assert parameters["MessageGroupId.$"] == "$.group_id"
    assert "raw_body" not in json.dumps(ASL), "there is no raw body any more: the pipe parses it"


# --- what the README prints of the ASL ---------------------------------------------------------------------


def readme_block_after(anchor: str) -> str:
    readme = (TEMPLATE.parent / "README.md").read_text()
    assert readme.count(anchor) == 1, f"README.md: {anchor!r}"
    block = re.search(r"```\n(.*?)```", readme[readme.index(anchor) :], re.S)
    assert block, f"README.md has no block after {anchor!r}"
    return block.group(1).strip()


def test_the_readme_retry_plan_is_the_asls():
    shown = readme_block_after("workflow gives up. For the shipped ASL:")
    assert shown == plans.retry_plan(ASL).strip(), "stale: paste `tgrelay retry-plan` into README.md"
    assert "WaitForTurn" in shown and "0 retries" not in shown


def test_the_readme_cost_table_is_the_asls():
    shown = readme_block_after("`tgrelay cost` counts the billed state transitions of each path from the ASL:")
    assert shown == plans.cost_table(ASL).strip(), "stale: paste `tgrelay cost` into README.md"


def test_the_retry_plan_says_how_long_the_turn_is_waited_for():
    plan = plans.retry_plan(ASL)
    state = STATES["WaitForTurn"]
    (timeouts,) = [r for r in state["Retry"] if r["ErrorEquals"] == ["States.Timeout"]]
    attempts = 1 + sum(r["MaxAttempts"] for r in state["Retry"])
    section = plan[plan.index("WaitForTurn\n") : plan.index("\nCallAgent\n")]
    # 23 equal waits once with their count, not 23 times; every attempt may wait TimeoutSeconds.
    assert f"{timeouts['MaxAttempts']} retries, waits (s): 1 (x{timeouts['MaxAttempts']});" in section
    assert f"{attempts} attempts x up to {state['TimeoutSeconds']} s (TimeoutSeconds)" in section
    assert "TurnLost is caught: back to WaitForTurn" in plan
    record_failure = plan[plan.index("RecordFailure\n") :]
    assert "DynamoDB.ConditionalCheckFailedException\n    no retries\n" in record_failure


def test_the_paths_do_not_go_round_forever():
    looping = {"StartAt": "A", "States": {"A": {"Type": "Task", "Next": "B"}, "B": {"Type": "Task", "Next": "A"}}}
    assert [(path.name, path.states) for path in plans.paths(looping)] == [("happy path", ["A", "B"])]


def test_jsonpath_only():
    assert ASL.get("QueryLanguage", "JSONPath") == "JSONPath"
    for name, state in all_states():
        assert state.get("QueryLanguage", "JSONPath") == "JSONPath", name


# --- issue 14: AWS production edges -------------------------------------------------------------------------

# Step Functions, "Handle Lambda service exceptions" (bp-lambda-serviceexception): the Lambda service
# exceptions to retry on every lambda:invoke task.
LAMBDA_SERVICE_EXCEPTIONS = {
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
}
THROTTLED_INVOKE = "Lambda.TooManyRequestsException"
# Same page: function timeouts and out-of-memory are reported as Lambda.Unknown (Sandbox.Timedout is the
# errorType some runtimes give a timeout).
CUT_OFF = {"Lambda.Unknown", "Sandbox.Timedout"}


def lambda_tasks_with_own_retriers() -> list[str]:
    """The lambda:invoke tasks whose retriers name errors (not one States.ALL retrier)."""
    return [
        name
        for name, state in STATES.items()
        if state["Type"] == "Task"
        and state["Resource"].startswith("arn:aws:states:::lambda:invoke")
        and state.get("Retry")
        and not any("States.ALL" in r["ErrorEquals"] for r in state["Retry"])
    ]


def test_the_lambda_tasks_with_named_retriers():
    assert lambda_tasks_with_own_retriers() == ["WaitForTurn", "CallAgent", "SendReply"]


@pytest.mark.parametrize("name", lambda_tasks_with_own_retriers())
def test_every_lambda_service_exception_is_retried(name):
    retried = {error for retry in STATES[name]["Retry"] for error in retry["ErrorEquals"]}
    assert retried >= LAMBDA_SERVICE_EXCEPTIONS, f"{name}: {sorted(LAMBDA_SERVICE_EXCEPTIONS - retried)}"


@pytest.mark.parametrize("name", lambda_tasks_with_own_retriers())
def test_a_throttled_invoke_has_its_own_longer_backoff(name):
    retriers = STATES[name]["Retry"]
    (throttle,) = [r for r in retriers if THROTTLED_INVOKE in r["ErrorEquals"]]
    assert throttle["ErrorEquals"] == [THROTTLED_INVOKE], "its own count and its own schedule"
    (service,) = [r for r in retriers if LAMBDA_SERVICE_EXCEPTIONS & set(r["ErrorEquals"])]
    # Throttling lasts as long as the functions holding the slots run: wait minutes, not seconds.
    assert sum(base_waits(throttle)) >= 120 > sum(base_waits(service))
    assert throttle.get("JitterStrategy") == "FULL", "throttled executions must not come back together"


def test_a_send_reply_cut_off_resumes():
    retried = {error for retry in STATES["SendReply"]["Retry"] for error in retry["ErrorEquals"]}
    assert retried >= CUT_OFF, "a timed-out or out-of-memory SendReply resumes from its chunk count"
    # CallAgent's function Timeout is a 900 s backstop above the per-attempt timeout: a cut-off there is
    # a bug or a 15-minute agent, and retrying it would hold a Lambda slot 15 minutes more.
    for name in ("WaitForTurn", "CallAgent"):
        assert not CUT_OFF & {e for r in STATES[name]["Retry"] for e in r["ErrorEquals"]}, name


def test_another_executions_claim_ends_quietly():
    # RecordFailure's condition fails when another execution holds or has finished the claim: that
    # execution answers (or has), so neither an apology nor a dead letter (whose replay would end in
    # AlreadyHandled).
    state = STATES["RecordFailure"]
    first = state["Catch"][0]
    assert first == {"ErrorEquals": [DUPLICATE_ERROR], "ResultPath": None, "Next": QUIET_END}
    assert STATES[QUIET_END]["Type"] == "Succeed" and "another execution" in STATES[QUIET_END]["Comment"]
    (no_retry,) = [r for r in state["Retry"] if DUPLICATE_ERROR in r["ErrorEquals"]]
    assert no_retry["MaxAttempts"] == 0, "the States.ALL retrier after it must not retry the condition"
    assert billed(f"ClaimUpdate catches States.ALL, then RecordFailure catches {DUPLICATE_ERROR}") == [
        "CheckEnvelope",
        "ClaimUpdate",
        "ClaimFailed",
        "RecordFailure",
        QUIET_END,
    ]


ENVELOPE_FIELDS = {
    "$.update.update_id": "IsNumeric",
    "$.update.chat_id": "IsNumeric",
    "$.update.expires_at": "IsNumeric",
}


def envelope_reads(node) -> set[str]:
    """The fields of the update the ASL reads with a path (besides $.update as a whole); "merged" is
    WaitForTurn's result, written there (ResultPath) before anything reads it."""
    found = {match for path in _paths(node) for match in re.findall(r"\$\.update\.\w+", path)}
    return found - {"$.update.merged"}


def test_the_envelope_is_checked_before_any_path_reads_it():
    check = STATES["CheckEnvelope"]
    rules = check["Choices"]
    # Every field a path reads (ClaimUpdate's item, RecordFailure's key, the DLQ's attribute) is tested.
    assert envelope_reads(ASL) == set(ENVELOPE_FIELDS)
    # Rules are tried in order: presence first (a type test on a missing field is itself States.Runtime).
    presence = [rule["Not"]["Variable"] for rule in rules[:-1] if rule["Not"].get("IsPresent") is True]
    assert presence == [*ENVELOPE_FIELDS, "$.group_id"]
    assert all(rule["Next"] == "DeadLetterNotAnEnvelope" for rule in rules[:-1])
    types = {test["Variable"]: next(k for k in test if k.startswith("Is")) for test in rules[-1]["And"]}
    assert types == {**ENVELOPE_FIELDS, "$.group_id": "IsString"}
    assert rules[-1]["Next"] == "ClaimUpdate" and check["Default"] == "DeadLetterNotAnEnvelope"


def test_what_is_not_an_envelope_is_dead_lettered_with_the_reason():
    state = STATES["DeadLetterNotAnEnvelope"]
    parameters = state["Parameters"]
    # Nothing read from the message itself: every path here is the execution's context.
    assert {path for path in _paths(parameters) if not path.startswith("$$.")} == {
        "States.JsonToString($$.Execution.Input)"
    }
    assert parameters["QueueUrl"] == STATES["SendToDeadLetterQueue"]["Parameters"]["QueueUrl"]
    assert parameters["MessageAttributes"]["error"]["StringValue"] == STATES[state["Next"]]["Error"]
    assert "not an envelope" in parameters["MessageAttributes"]["cause"]["StringValue"]
    assert STATES[state["Next"]]["Type"] == "Fail"
    assert any("States.ALL" in r["ErrorEquals"] for r in state["Retry"])
    assert billed("CheckEnvelope chooses DeadLetterNotAnEnvelope") == [
        "CheckEnvelope",
        "DeadLetterNotAnEnvelope",
        "NotAnEnvelope",
    ]


# The events the ASL builds for each function, and the shapes its handler is typed with (shapes.py).
EVENT_SHAPES = {
    ("TurnsFunctionArn", "wait"): TurnWaitEvent,
    ("TurnsFunctionArn", "finish"): TurnFinishEvent,
    ("CallAgentFunctionArn", None): CallAgentEvent,
    ("SendReplyFunctionArn", None): SendReplyEvent,
    ("SendReplyFunctionArn", True): ApologyEvent,
}


def _event_shape(state: dict):
    function = re.search(r"\$\{(\w+)\}", state["Parameters"]["FunctionName"]).group(1)
    payload = state["Parameters"]["Payload"]
    return EVENT_SHAPES[(function, payload.get("action", payload.get("apology")))]


@pytest.mark.parametrize(
    "state", [name for name, state in ASL["States"].items() if "FunctionName" in state.get("Parameters", {})]
)
def test_each_event_the_asl_builds_has_the_shape_its_handler_is_typed_with(state):
    payload = ASL["States"][state]["Parameters"]["Payload"]
    keys = {key.removesuffix(".$") for key in payload}
    shape = _event_shape(ASL["States"][state])

    assert shape.__required_keys__ <= keys, f"{state} leaves out {sorted(shape.__required_keys__ - keys)}"
    unknown = keys - shape.__required_keys__ - shape.__optional_keys__
    assert not unknown, f"{state} sends {sorted(unknown)}, which {shape.__name__} does not have"
    if "outcome" in payload:
        assert payload["outcome"] in get_args(Outcome)
