"""What becomes of a dead letter: replayed automatically after a delay (its cause was passing)
or kept for a person. Used by DeadLetterReplayFunction (auto_replay.py), which replays, and by
SendReply, whose apology says which of the two will happen."""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tgrelay.settings import setting

# Error names (the ASL's, errors.py's, and AWS's service exceptions as Step Functions names them)
# that nearly always pass: an outage, a timeout, a rate limit, a throttled or failed service call.
REPLAYABLE_ERRORS = frozenset(
    {
        "AgentUnavailable",
        "AgentTimeout",
        "AgentStreamBroken",
        "AgentStreamIdle",
        "TelegramUnavailable",
        "TelegramRateLimited",
        "DependencyUnavailable",
        # ClaimUpdate and RecordFailure call DynamoDB directly: its throttling and server errors.
        "DynamoDB.ProvisionedThroughputExceededException",
        "DynamoDB.ThrottlingException",
        "DynamoDB.RequestLimitExceeded",
        "DynamoDB.RequestLimitExceededException",
        "DynamoDB.InternalServerError",
        "DynamoDB.InternalServerErrorException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.Unknown",
        "Sandbox.Timedout",
        "States.Timeout",
    }
)


def replay_delays() -> list[int]:
    """The waits (seconds) before each automatic replay, in order; [] when AutoReplay is off.
    From AUTO_REPLAY ("true"/"false") and AUTO_REPLAY_DELAYS_SECONDS ("900,3600,14400")."""
    if setting("AUTO_REPLAY") != "true":
        return []
    return [int(delay) for delay in setting("AUTO_REPLAY_DELAYS_SECONDS").split(",") if delay.strip()]


# SQS keeps a message at most 14 days (MessageRetentionPeriod's maximum, the DeadLetterQueue's
# setting): a wait that long would let the dead letter expire unreplayed, so it is a person's.
LONGEST_WAIT_SECONDS = 14 * 24 * 3600


def will_be_replayed(turn: Sequence[Mapping[str, Any]], error: str) -> bool:
    """True when a dead letter of this turn (its envelope, then those merged into it), parked for
    `error`, will be replayed automatically."""
    return next_wait(turn, error, replay_delays()) is not None


def next_wait(turn: Sequence[Mapping[str, Any]], error: str | None, delays: list[int]) -> int | None:
    """Seconds a dead letter of this turn, parked for `error`, waits before its next automatic
    replay; None when it is a person's (an error that cannot pass, its replays used up, or a wait
    SQS would not keep it for)."""
    replays = _replays(turn[0])
    if error not in REPLAYABLE_ERRORS or replays is None or replays >= len(delays):
        return None
    return delays[replays] if delays[replays] < LONGEST_WAIT_SECONDS else None


def parse_turn(body: str) -> list[dict] | None:
    """The envelopes of a dead letter's turn (its own, then those merged into it), or None when the
    body is not something a replay can carry: not JSON, no integer update_id, `replays` not a
    whole number >= 0, `merged` not a list of such envelopes."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    if not isinstance(envelope, dict) or _replays(envelope) is None:
        return None
    merged = envelope.get("merged") or []
    if not isinstance(merged, list) or not all(isinstance(item, dict) for item in merged):
        return None
    turn = [envelope, *merged]
    if not all(isinstance(item.get("update_id"), int) and not isinstance(item.get("update_id"), bool) for item in turn):
        return None
    return turn


def _replays(envelope: Mapping[str, Any]) -> int | None:
    """The envelope's count of automatic replays (0 when absent); None when it is not one."""
    replays = envelope.get("replays", 0)
    if isinstance(replays, bool) or not isinstance(replays, int) or replays < 0:
        return None
    return replays


def decide(body: str, error: str | None, parked_at: float, now: float, delays: list[int]) -> str:
    """What to do with one dead letter: "replay", "wait" (its delay is not over) or "person".

    body: the message body (an envelope, JSON); error: its `error` attribute (None: the queue's
    redrive parked it); parked_at, now: epoch seconds; delays: replay_delays()."""
    turn = parse_turn(body)
    wait = None if turn is None else next_wait(turn, error, delays)
    if wait is None:
        return "person"
    return "replay" if now - parked_at >= wait else "wait"
