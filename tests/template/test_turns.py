"""The conversation's turn in template.yaml (README: Conversations): the turns table, TurnsFunction,
the lease every holder renews, and the EventBridge rule that releases the turn of an execution
that ended without handing it on."""

import copy

from tgrelay import turns

from .conftest import load_asl
from .test_asl import base_waits
from .test_translated import of_type

# The functions that run while a turn is held: each attempt renews the lease first (turns.renew_lease).
HOLDERS = ("CallAgentFunction", "SendReplyFunction")
LEASE_VARIABLE = "TURN_LEASE_SECONDS"


def lease_shortfall(sam: dict, asl: dict) -> tuple[int, int]:
    """(TURN_LEASE_SECONDS, the least it may be).

    A living holder renews its lease at the start of every CallAgent and SendReply attempt. The
    longest it can then stay silent is one attempt running to its function's Timeout, followed by
    the longest single wait before the next attempt renews again: a Retry wait of those states, or
    one flood wait (FloodWait), which may be as long as the whole flood-wait bound."""
    lease = int(sam["Globals"]["Function"]["Environment"]["Variables"][LEASE_VARIABLE])
    flood_waits = [
        choice["NumericGreaterThan"]
        for choice in asl["States"]["WithinFloodWaitBound"]["Choices"]
        if choice["Variable"] == "$.flood.waited"
    ]
    silences = []
    for state, function in zip(("CallAgent", "SendReply"), HOLDERS, strict=True):
        waits = [wait for retry in asl["States"][state]["Retry"] for wait in base_waits(retry)]
        if state == "SendReply":
            waits += flood_waits
        silences.append(int(sam["Resources"][function]["Properties"]["Timeout"]) + max(waits))
    return lease, max(silences)


def test_a_living_holder_never_loses_its_lease(sam_template):
    lease, needed = lease_shortfall(sam_template, load_asl())
    # SendReplyFunction's Timeout, then a whole flood wait (CallAgent: 900 s, then at most 60 s)
    assert needed == 450 + 3600
    assert lease >= needed, f"{LEASE_VARIABLE}={lease}: a holder may be silent {needed} s between renewals"


def test_the_lease_check_fails_on_a_short_lease(sam_template):
    short = copy.deepcopy(sam_template)
    short["Globals"]["Function"]["Environment"]["Variables"][LEASE_VARIABLE] = "600"
    lease, needed = lease_shortfall(short, load_asl())
    assert lease < needed
    slow_retry = copy.deepcopy(load_asl())
    slow_retry["States"]["SendReply"]["Retry"][1]["IntervalSeconds"] = 4000  # a longer wait than the lease covers
    lease, needed = lease_shortfall(sam_template, slow_retry)
    assert lease < needed
    long_flood = copy.deepcopy(load_asl())
    long_flood["States"]["WithinFloodWaitBound"]["Choices"][0]["NumericGreaterThan"] = 7200
    lease, needed = lease_shortfall(sam_template, long_flood)
    assert lease < needed


def test_the_holders_and_the_turns_function_read_the_same_lease(resources):
    for name in (*HOLDERS, "TurnsFunction"):
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables[LEASE_VARIABLE].isdigit(), name
        assert variables["TURNS_TABLE_NAME"] == {"Ref": "TurnsTable"}, name
    # Only the webhook (register_queued) and those three touch the turns table.
    policies = {
        name
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        for policy in role["Properties"].get("Policies", [])
        if "TurnsTable" in str(policy)
    }
    assert policies == {"WebhookFunctionRole", "CallAgentFunctionRole", "SendReplyFunctionRole", "TurnsFunctionRole"}


def test_the_turns_table_is_keyed_as_turns_py_writes_it(resources):
    props = resources["TurnsTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    key = turns._key("telegram:284719365", 918273601)
    assert props["KeySchema"] == [
        {"AttributeName": "conversation", "KeyType": "HASH"},
        {"AttributeName": "update_id", "KeyType": "RANGE"},
    ]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types == {name: next(iter(value)) for name, value in key.items()} == {"conversation": "S", "update_id": "N"}


def test_the_turns_function(resources):
    props = resources["TurnsFunction"]["Properties"]
    assert props["Handler"] == "tgrelay.turns.handler"
    assert props["Handler"].rsplit(".", 1)[1] in vars(turns)
    variables = props["Environment"]["Variables"]
    assert variables["TABLE_NAME"] == {"Ref": "UpdatesTable"}  # records outcomes on the claims
    assert variables["QUEUED_MESSAGES"] == {"Ref": "QueuedMessages"}
    # A finish is a few DynamoDB calls and one SendTaskSuccess: well inside its Timeout.
    assert int(props["Timeout"]) <= 60


def test_the_rule_releases_the_turn_of_an_execution_that_ended_badly(resources):
    rules = of_type(resources, "AWS::Events::Rule")
    assert sorted(rules) == ["DeadLetterReplayFunctionAutoReplaySchedule", "TurnsFunctionExecutionEnded"]
    props = rules["TurnsFunctionExecutionEnded"]["Properties"]
    assert props["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        # SUCCEEDED handed on in MarkDone/MarkUndeliverable; every other end may not have.
        "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [{"Ref": "RelayStateMachine"}]},
    }
    assert props.get("State", "ENABLED") == "ENABLED"
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["TurnsFunction", "Arn"]}
    assert "Input" not in target and "InputPath" not in target, "TurnsFunction reads the event as EventBridge sends it"
    # As long as EventBridge allows (185 attempts, 24 h): a lost event leaves the turn to the lease.
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    (permission,) = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
        and p["Properties"]["FunctionName"] == {"Ref": "TurnsFunction"}
    ]
    assert permission["SourceArn"] == {"Fn::GetAtt": ["TurnsFunctionExecutionEnded", "Arn"]}
