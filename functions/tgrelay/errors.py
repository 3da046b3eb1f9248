"""Exceptions whose class names are the error names in statemachine/relay.asl.json.

Raise these classes themselves, never subclasses: the Lambda runtime reports an
unhandled exception's class name as `errorType`, and the ASL's Retry and Catch match on it.
Renaming a class here means editing the ASL too (tests/template checks that every name the ASL uses exists here).

Messages never contain tokens or URLs with tokens: they end up in execution
history and in the dead-letter queue's attributes.
"""


class RelayError(Exception):
    """Base class; never raised itself."""


class AgentUnavailable(RelayError):
    """Agent server unreachable, or answered 429 or 5xx. Retried."""


class AgentTimeout(RelayError):
    """Agent server did not answer within the per-attempt timeout. Retried a few times."""


class AgentRejected(RelayError):
    """Agent server answered a 4xx other than 429. Terminal."""


class AgentBadResponse(RelayError):
    """Agent server answered 2xx with a body that is not the agreed JSON. Terminal."""


class AgentStreamError(RelayError):
    """A streamed answer (text/event-stream) ended with an `error` event: the agent could not
    finish it. Terminal, like AgentRejected: the agent said so itself (README: Streaming replies).
    An `error` event whose data says "retryable": true is raised as AgentUnavailable instead."""


class AgentStreamBroken(RelayError):
    """A streamed answer's connection was lost before its end (the body was cut off). Retried like
    AgentUnavailable; the retry asks the agent again from the start."""


class AgentStreamIdle(RelayError):
    """A streamed answer went silent (no bytes) for longer than AGENT_STREAM_IDLE_SECONDS.
    Retried like AgentTimeout."""


class TelegramUnavailable(RelayError):
    """Telegram answered 5xx or the network failed. Retried."""


class TelegramRateLimited(RelayError):
    """Telegram answered 429 with a retry_after too long to wait inline. The ASL waits that long
    (FloodWait) and sends again, within its bound.

    The message is read by the ASL (AddFloodWait): its fifth word, split at spaces, is
    retry_after in seconds. tests/workflow/test_delivery.py checks the two agree."""

    def __init__(self, retry_after: int):
        super().__init__(f"Telegram asked to wait {retry_after} s before sending again")
        self.retry_after = retry_after


class TelegramRejected(RelayError):
    """Telegram answered a 4xx that resending cannot fix. Terminal.

    `migrate_to_chat_id`: the group became a supergroup with this id (Bot API
    ResponseParameters); SendReply sends there instead, so it only reaches the ASL if that fails too."""

    def __init__(self, status: int, description: str, migrate_to_chat_id: int | None = None):
        super().__init__(f"Telegram answered {status}: {description}")
        self.status = status
        self.description = description
        self.migrate_to_chat_id = migrate_to_chat_id


class AttachmentUnavailable(RelayError):
    """The agent's file host did not hand over a reply's attachment: network error, timeout, 429
    or 5xx (reply_files.py). Retried; a refusal (other 4xx, too large) is not this: SendReply
    sends a short note in the file's place."""


class RecipientUnavailable(RelayError):
    """The user blocked the bot or the chat is gone. Not a failure: recorded UNDELIVERABLE."""


class DependencyUnavailable(RelayError):
    """An AWS service the function reads (Secrets Manager, DynamoDB) failed. Retried."""


class ConfigurationError(RelayError):
    """A setting or secret field the function needs is missing. Terminal."""


class TurnLost(RelayError):
    """This execution no longer holds its conversation's turn (released after its lease ran out,
    or an operator redrove a stopped execution). The ASL sends it back to WaitForTurn."""


class MergedIntoTurn(RelayError):
    """Not raised: the error name WaitForTurn fails with (SendTaskFailure) when this message was
    merged into the turn of an earlier message of its conversation (QueuedMessages=merge)."""
