"""What the operator reads off the ASL: retry plan, cost per path, the README's picture.

The expected numbers are worked out by hand from statemachine/relay.asl.json (each Retry's
IntervalSeconds, BackoffRate, MaxAttempts and MaxDelaySeconds; each path's states), not computed
with the code under test: a mistake in plans.py or retry_plan.py cannot also be in the expectation.
Changing a Retry in the ASL means working its numbers out again here.
"""

import re

from tgrelay_local import plans
from tgrelay_local.cli import main
from tgrelay_local.retry_plan import load_asl, retrier_for, retry_waits
from tgrelay_local.template import ROOT

# Step Functions Standard: $0.025 per 1,000 state transitions = $25 per million transitions, so a
# path of n transitions costs n x $25.00 per million executions.
HAPPY = ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply", "MarkDone"]
# The first flood wait: count it, check the bound, wait, send again (the next ones: NextFloodWait).
FLOOD_ROUND = ["FloodWaitedBefore", "FirstFloodWait", "AddFloodWait", "WithinFloodWaitBound", "FloodWait", "SendReply"]
FAILURE_TAIL = ["RecordFailure", "ApologizeToUser", "HandOnTurn", "SendToDeadLetterQueue", "Failed"]
CLAIMED = ["CheckEnvelope", "ClaimUpdate"]
# Every path `tgrelay cost` lists: (name, states entered, billed transitions, $ per million).
PATHS = [
    ("happy path", HAPPY, 6, "150.00"),
    (
        "CheckEnvelope chooses DeadLetterNotAnEnvelope",
        ["CheckEnvelope", "DeadLetterNotAnEnvelope", "NotAnEnvelope"],
        3,
        "75.00",
    ),
    ("ClaimUpdate catches DynamoDB.ConditionalCheckFailedException", [*CLAIMED, "AlreadyHandled"], 3, "75.00"),
    ("ClaimUpdate catches States.ALL", [*CLAIMED, "ClaimFailed", *FAILURE_TAIL], 8, "200.00"),
    ("WaitForTurn catches MergedIntoTurn", [*CLAIMED, "WaitForTurn", "MergedIntoTurn"], 4, "100.00"),
    ("WaitForTurn catches States.ALL", [*CLAIMED, "WaitForTurn", *FAILURE_TAIL], 8, "200.00"),
    ("CallAgent catches TurnLost (round once)", [*CLAIMED, "WaitForTurn", "CallAgent", *HAPPY[2:]], 8, "200.00"),
    (
        "CallAgent catches AgentRejected | AgentBadResponse | AgentStreamError",
        [*CLAIMED, "WaitForTurn", "CallAgent", *FAILURE_TAIL],
        9,
        "225.00",
    ),
    ("CallAgent catches States.ALL", [*CLAIMED, "WaitForTurn", "CallAgent", *FAILURE_TAIL], 9, "225.00"),
    ("SendReply catches TurnLost (round once)", [*HAPPY[:5], *HAPPY[2:]], 9, "225.00"),
    ("SendReply catches RecipientUnavailable", [*HAPPY[:5], "MarkUndeliverable"], 6, "150.00"),
    # One flood wait: Telegram's retry_after waited (FloodWait), then SendReply again and on.
    ("SendReply catches TelegramRateLimited (round once)", [*HAPPY[:5], *FLOOD_ROUND, "MarkDone"], 12, "300.00"),
    ("SendReply catches TelegramRejected", [*HAPPY[:5], *FAILURE_TAIL], 10, "250.00"),
    ("SendReply catches States.ALL", [*HAPPY[:5], *FAILURE_TAIL], 10, "250.00"),
    (
        "ClaimUpdate catches States.ALL, then RecordFailure catches DynamoDB.ConditionalCheckFailedException",
        [*CLAIMED, "ClaimFailed", "RecordFailure", "ClaimedByAnotherExecution"],
        5,
        "125.00",
    ),
]

# Each Retry's waits, worked out: IntervalSeconds x BackoffRate^n, capped at MaxDelaySeconds.
RETRY_WAITS = {
    # 1 x 2^0..3
    ("ClaimUpdate", "DynamoDB.ThrottlingException"): [1, 2, 4, 8],
    # BackoffRate 1.0: 23 waits of 1 s
    ("WaitForTurn", "States.Timeout"): [1] * 23,
    ("WaitForTurn", "TurnLost"): [1, 2, 4],
    # 3 x 2^0..5 = 3, 6, 12, 24, 48, 96 -> the last capped at 60
    ("CallAgent", "AgentUnavailable"): [3, 6, 12, 24, 48, 60],
    ("CallAgent", "AgentTimeout"): [5, 10],
    ("CallAgent", "DependencyUnavailable"): [1, 2, 4],
    ("SendReply", "TelegramUnavailable"): [1, 2, 4, 8, 16],
    ("SendReply", "AttachmentUnavailable"): [2, 4, 8],
    ("SendReply", "Lambda.ServiceException"): [1, 2, 4],
    ("SendReply", "Lambda.ClientExecutionTimeoutException"): [1, 2, 4],
    # 5 x 2^0..5 = 5, 10, 20, 40, 80, 160 -> the last two capped at 60
    ("SendReply", "Lambda.TooManyRequestsException"): [5, 10, 20, 40, 60, 60],
    ("CallAgent", "Lambda.TooManyRequestsException"): [5, 10, 20, 40, 60, 60],
    ("WaitForTurn", "Lambda.TooManyRequestsException"): [5, 10, 20, 40, 60, 60],
    ("SendReply", "Lambda.Unknown"): [2, 4],
    ("SendReply", "Sandbox.Timedout"): [2, 4],
    ("DeadLetterNotAnEnvelope", "States.ALL"): [2, 4, 8, 16, 32, 60],
    ("MarkDone", "States.ALL"): [1, 2, 4, 8],
    ("MarkUndeliverable", "States.ALL"): [1, 2, 4, 8],
    # MaxAttempts 0: no retry at all
    ("RecordFailure", "DynamoDB.ConditionalCheckFailedException"): [],
    # 1 x 2^0..5 = ..., 32 -> capped at 30
    ("RecordFailure", "States.ALL"): [1, 2, 4, 8, 16, 30],
    ("HandOnTurn", "States.ALL"): [1, 2, 4, 8],
    # 2 x 2^0..5 = ..., 64 -> capped at 60
    ("SendToDeadLetterQueue", "States.ALL"): [2, 4, 8, 16, 32, 60],
}

# `tgrelay retry-plan`, the lines that carry numbers, per state.
RETRY_PLAN_LINES = {
    "DeadLetterNotAnEnvelope": [
        "    6 retries, waits (s): 0-2, 0-4, 0-8, 0-16, 0-32, 0-60; at most 122 s of waiting",
        "  worst case before giving up: 122 s of waiting",
    ],
    "ClaimUpdate": [
        "    4 retries, waits (s): 0-1, 0-2, 0-4, 0-8; at most 15 s of waiting",  # 1+2+4+8
        "  worst case before giving up: 15 s of waiting",
    ],
    "WaitForTurn": [
        "    23 retries, waits (s): 1 (x23); at most 23 s of waiting;"
        " each retry follows 300 s without an answer (TimeoutSeconds)",
        "    3 retries, waits (s): 0-1, 0-2, 0-4; at most 7 s of waiting",
        "    6 retries, waits (s): 0-5, 0-10, 0-20, 0-40, 0-60 (x2); at most 195 s of waiting",  # 5+10+20+40+60+60
        # 23 + 7 + 195 = 225 s of waiting; 1 + 23 + 3 + 6 = 33 attempts of up to 300 s = 9900 s; 10125 s = 2.8 h
        "  worst case before giving up: 225 s of waiting"
        " + 33 attempts x up to 300 s (TimeoutSeconds) = 10125 s (2.8 h)",
    ],
    "CallAgent": [
        "    6 retries, waits (s): 0-3, 0-6, 0-12, 0-24, 0-48, 0-60; at most 153 s of waiting",  # 3+6+12+24+48+60
        "    2 retries, waits (s): 5, 10; at most 15 s of waiting",
        "    3 retries, waits (s): 0-1, 0-2, 0-4; at most 7 s of waiting",
        "    6 retries, waits (s): 0-5, 0-10, 0-20, 0-40, 0-60 (x2); at most 195 s of waiting",
        # fetching the turn's files (attachments.py): Telegram 5xx or network, getFile rate-limited
        "    5 retries, waits (s): 0-1, 0-2, 0-4, 0-8, 0-16; at most 31 s of waiting",
        "    3 retries, waits (s): 30, 60, 120; at most 210 s of waiting",
        # 153 + 15 + 7 + 195 + 31 + 210 = 611 s; 1 + 6 + 2 + 3 + 6 + 5 + 3 = 26 attempts x 120 s = 3120 s
        "  worst case before giving up: 611 s of waiting + 26 attempts x up to 120 s (AgentTimeoutSeconds)"
        " = 3731 s (1.0 h)",
        "  TurnLost is caught: back to WaitForTurn, where every count starts again",
    ],
    "SendReply": [
        "    5 retries, waits (s): 0-1, 0-2, 0-4, 0-8, 0-16; at most 31 s of waiting",
        "    3 retries, waits (s): 0-2, 0-4, 0-8; at most 14 s of waiting",  # AttachmentUnavailable
        "    3 retries, waits (s): 0-1, 0-2, 0-4; at most 7 s of waiting",
        "    6 retries, waits (s): 0-5, 0-10, 0-20, 0-40, 0-60 (x2); at most 195 s of waiting",
        "    2 retries, waits (s): 0-2, 0-4; at most 6 s of waiting",
        "  worst case before giving up: 253 s of waiting",  # 31 + 14 + 7 + 195 + 6 (flood waits: FloodWait, below)
        "  TurnLost is caught: back to WaitForTurn, where every count starts again",
        # WithinFloodWaitBound: NumericGreaterThan 3600
        "  TelegramRateLimited is caught: FloodWait waits what Telegram asks (retry_after), then SendReply again,"
        " where every count starts again; at most 3600 s of such waits in all",
    ],
    "MarkDone": ["  worst case before giving up: 15 s of waiting"],
    "MarkUndeliverable": ["  worst case before giving up: 15 s of waiting"],
    "RecordFailure": [
        "    no retries",
        "    6 retries, waits (s): 0-1, 0-2, 0-4, 0-8, 0-16, 0-30; at most 61 s of waiting",
        "  worst case before giving up: 61 s of waiting",
    ],
    "HandOnTurn": ["  worst case before giving up: 15 s of waiting"],
    "SendToDeadLetterQueue": [
        "    6 retries, waits (s): 0-2, 0-4, 0-8, 0-16, 0-32, 0-60; at most 122 s of waiting",  # 2+4+8+16+32+60
        "  worst case before giving up: 122 s of waiting",
    ],
}


def test_the_happy_path_and_the_duplicate_path_fit_the_budget():
    found = {path.name: path for path in plans.paths()}
    assert found["happy path"].states == HAPPY
    duplicate = found["ClaimUpdate catches DynamoDB.ConditionalCheckFailedException"]
    assert duplicate.states == [*CLAIMED, "AlreadyHandled"]
    merged = found["WaitForTurn catches MergedIntoTurn"]
    assert merged.states == [*CLAIMED, "WaitForTurn", "MergedIntoTurn"]
    # DESIGN §4's 5 and 2, each one more for CheckEnvelope (issue 14, finding 6).
    assert (found["happy path"].transitions, duplicate.transitions, merged.transitions) == (6, 3, 4)


def test_every_path_is_the_one_worked_out_by_hand():
    assert [(path.name, path.states, path.transitions) for path in plans.paths()] == [
        (name, states, transitions) for name, states, transitions, _ in PATHS
    ]


def test_a_lost_turn_waits_for_it_again():
    for state in ("CallAgent", "SendReply"):
        [path] = [path for path in plans.paths() if path.name.startswith(f"{state} catches TurnLost")]
        assert path.states[path.states.index(state) + 1] == "WaitForTurn", path.states
        assert path.states[-1] == "MarkDone", path.states


def test_every_failure_path_ends_in_the_dead_letter_queue_or_a_deliberate_end():
    for path in plans.paths():
        deliberate = {"MarkDone", "AlreadyHandled", "MergedIntoTurn", "MarkUndeliverable", "ClaimedByAnotherExecution"}
        assert path.states[-1] in deliberate | {"Failed", "NotAnEnvelope"}, path.name
        if path.states[-1] == "NotAnEnvelope":
            assert path.states[-2] == "DeadLetterNotAnEnvelope", path.name
        if path.states[-1] == "Failed":
            # The turn is handed on before the message is dead-lettered.
            assert path.states[-5:] == FAILURE_TAIL, path.name


def test_cost_prices_each_path_at_the_standard_rate():
    rows = plans.cost_table().splitlines()
    assert rows[0].split() == ["path", "transitions", "$", "per", "million"]
    for (name, _, transitions, dollars), row in zip(PATHS, rows[1 : len(PATHS) + 1], strict=True):
        assert re.fullmatch(rf"{re.escape(name)}\s+{transitions}\s+{re.escape(dollars)}", row), row
    assert rows[len(PATHS) + 1] == "each retry adds one transition ($25.00 per million retries);"
    assert rows[len(PATHS) + 2] == "so does each 300 s (TimeoutSeconds) that WaitForTurn waits in vain."
    # 6 states of FLOOD_ROUND x $25 per million
    assert rows[len(PATHS) + 3 : len(PATHS) + 5] == [
        "Each flood wait adds 6 transitions ($150.00 per million):",
        f"  {', '.join(FLOOD_ROUND)}.",
    ]


def test_each_retry_waits_what_the_asl_says():
    asl = load_asl()
    for (state, error), waits in RETRY_WAITS.items():
        assert retry_waits(retrier_for(asl, state, error)) == waits, (state, error)


def test_retry_plan_shows_the_asl_numbers():
    plan = plans.retry_plan()
    sections: dict[str, list[str]] = {}
    for line in plan.splitlines():
        if not line.startswith(" "):
            sections[line] = []
        else:
            sections[list(sections)[-1]].append(line)
    assert list(sections) == list(RETRY_PLAN_LINES)
    for state, lines in RETRY_PLAN_LINES.items():
        missing = [line for line in lines if line not in sections[state]]
        assert not missing, (state, missing, sections[state])


def test_the_readme_picture_is_the_asl(capsys):
    readme = (ROOT / "README.md").read_text()
    pictured = re.search(r"```mermaid\n(.*?)```", readme, re.S)
    assert pictured, "README.md has no mermaid block"
    assert pictured.group(1).strip() == plans.mermaid().strip(), "stale: paste `tgrelay diagram` into README.md"
    assert main(["diagram"]) == 0
    assert capsys.readouterr().out.strip() == plans.mermaid().strip()
