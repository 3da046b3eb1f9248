"""What becomes of a dead letter: replayed automatically after a delay (its cause was passing)
or kept for a person. Used by DeadLetterReplayFunction (auto_replay.py), which replays, and by
SendReply, whose apology says which of the two will happen."""

import json

from tgrelay.settings import setting

# Error names (the ASL's, errors.py's, and AWS's service exceptions as Step Functions names them)
# that nearly always pass: an outage, a timeout, a rate limit, a throttled or failed service call.
REPLAYABLE_ERRORS = frozenset(
    {
        "AgentUnavailable",
        "AgentTimeout",
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


def will_be_replayed(envelope: dict, error: str) -> bool:
    """True when a dead letter of this envelope, parked for `error`, will be replayed automatically."""
    return error in REPLAYABLE_ERRORS and int(envelope.get("replays") or 0) < len(replay_delays())


def decide(body: str, error: str | None, parked_at: float, now: float, delays: list[int]) -> str:
    """What to do with one dead letter: "replay", "wait" (its delay is not over) or "person".

    body: the message body (an envelope, JSON); error: its `error` attribute (None: the queue's
    redrive parked it); parked_at, now: epoch seconds; delays: replay_delays()."""
    if error not in REPLAYABLE_ERRORS:
        return "person"
    try:
        envelope = json.loads(body)
        replays = int(envelope.get("replays") or 0)
    except (ValueError, TypeError, AttributeError):
        return "person"
    if replays >= len(delays):
        return "person"
    return "replay" if now - parked_at >= delays[replays] else "wait"
