"""Turns: one agent turn at a time per conversation, in the order Telegram sent the messages
(DESIGN.md §7, README: Conversations).

A conversation (envelope.session_key: a chat, or a forum topic) keeps one item per message in
the turns table (key: conversation, update_id), with a `status`:

  QUEUED   the webhook registered the message before it enqueued it. This fixes the order:
           Telegram sends one chat's updates one after another, and update_ids increase.
  WAITING  its execution waits in WaitForTurn (a Step Functions task token is parked here).
  TURN     its execution holds the turn until `lease_until` (renewed at each CallAgent and
           SendReply attempt); at most one item of a conversation is TURN.
  MERGED   it was answered with the turn of the message `merged_into` (QueuedMessages=merge).

The turn goes to the lowest update_id of the conversation that is not TURN or MERGED, once
that message's execution is WAITING (`advance`). With merge, the WAITING messages right
behind it ride along: one agent request carries them all, and their executions end in the
state MergedIntoTurn. Every way out of a turn hands it on (`finish_turn`); an execution that
dies without doing so is released by the EventBridge rule on its status change
(`release_execution`) or, should that never come, once its lease has run out.

TurnsFunction runs `handler`: the ASL's WaitForTurn ("wait"), MarkDone, MarkUndeliverable and
HandOnTurn ("finish"), and the rule's events.
"""

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any, TypedDict, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from tgrelay import clients
from tgrelay.claims import claim_key
from tgrelay.envelope import session_key
from tgrelay.errors import DependencyUnavailable, MergedIntoTurn, TurnLost
from tgrelay.settings import declare, number_setting, setting
from tgrelay.shapes import Envelope, Outcome, TurnFinishEvent, TurnWaitEvent

QUEUED, WAITING, TURN, MERGED = "QUEUED", "WAITING", "TURN", "MERGED"
# A QUEUED message whose execution has not come to WaitForTurn after this long is passed over,
# so one lost start (its message parked by the queue's redrive policy) cannot block its
# conversation. The same 5 minutes as StalledPipeAlarm: by then an operator is told.
QUEUED_STALE_SECONDS = 300
# What one merged turn may carry: its texts travel in the execution's state, which Step
# Functions caps at 256 KiB next to a reply of up to replies.MAX_REPLY_BYTES.
MAX_TURN_MESSAGES = 10
MAX_TURN_TEXT_BYTES = 32 * 1024
# Grants race with registrations and releases; each lost race reads the conversation again.
MAX_ADVANCE_ROUNDS = 10
# Task tokens that no longer wait: the execution stopped, or its WaitForTurn timed out (its
# Retry registers again with a new token and finds the turn granted).
_GONE_TOKEN_ERRORS = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")

# Every setting this handler reads (tests/unit/test_declared_settings.py); checked at its cold start.
SETTINGS = declare(
    __name__, required=("TABLE_NAME", "TURNS_TABLE_NAME", "TURN_LEASE_SECONDS"), optional=("QUEUED_MESSAGES",)
)

logger = Logger()


class TurnItem(TypedDict, total=False):
    """One message's item in the turns table, as plain values."""

    conversation: str
    update_id: int
    status: str
    registered_at: int
    expires_at: int
    execution: str
    token: str
    envelope: Envelope
    carried: list[Envelope]
    lease_until: int
    merged_into: int
    media_group_id: str


# -- the handler ----------------------------------------------------------------------------


# log_event stays off even if POWERTOOLS_LOGGER_LOG_EVENT is set: the event carries a task token.
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """TurnsFunction. Events:

    {"action": "wait", "update": envelope, "execution": arn, "token": task token}
        WaitForTurn (lambda:invoke.waitForTaskToken): registers and returns at once; the
        turn arrives as SendTaskSuccess with the list of merged envelopes (often []), or as
        SendTaskFailure MergedIntoTurn.
    {"action": "finish", "update": envelope, "execution": arn, "outcome": "DONE" | "UNDELIVERABLE"
     | "FAILED", "chunks": n, "reason": str, "error": str}
        MarkDone, MarkUndeliverable, HandOnTurn: records the outcome, hands the turn on.
    an EventBridge "Step Functions Execution Status Change" event (FAILED, TIMED_OUT, ABORTED)
        releases whatever that execution held.

    Raises DependencyUnavailable when DynamoDB or Step Functions fail (the ASL retries; the
    rule's target retries). Returns a small summary for the execution history.
    """
    if event.get("source") == "aws.states":
        detail = event["detail"]
        return release_execution(detail["executionArn"], detail.get("input"))
    turn_event = cast(TurnWaitEvent | TurnFinishEvent, event)
    envelope, execution = turn_event["update"], turn_event["execution"]
    logger.append_keys(update_id=envelope["update_id"], chat_id=envelope["chat_id"], execution=execution)
    try:
        if turn_event["action"] == "wait":
            return wait_for_turn(envelope, execution, turn_event["token"])
        return finish_turn(
            envelope,
            execution,
            turn_event["outcome"],
            chunks=turn_event.get("chunks"),
            reason=error_message(turn_event.get("reason") or turn_event.get("error") or ""),
        )
    except (BotoCoreError, ClientError) as error:
        raise DependencyUnavailable(f"turns table or Step Functions unavailable ({type(error).__name__})") from None


# -- the webhook's registration -------------------------------------------------------------


def register_queued(envelope: Envelope) -> None:
    """The webhook's part: mark the message QUEUED in its conversation before it is enqueued.

    A redelivered update finds its item and changes nothing. Raises ClientError/BotoCoreError
    (the webhook logs it and enqueues anyway: the order is then kept on a best-effort basis)."""
    dynamodb = clients.webhook_dynamodb()
    with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.put_item(
            TableName=_turns_table(),
            Item=_serialize(
                {
                    "conversation": session_key(envelope),
                    "update_id": envelope["update_id"],
                    "status": QUEUED,
                    "registered_at": envelope["received_at"],
                    "expires_at": envelope["expires_at"],
                    # An album's later messages hold its first one's turn until they wait too (advance).
                    **({"media_group_id": envelope["media_group_id"]} if "media_group_id" in envelope else {}),
                }
            ),
            ConditionExpression="attribute_not_exists(conversation)",
        )


# -- WaitForTurn ----------------------------------------------------------------------------


def wait_for_turn(envelope: Envelope, execution: str, token: str, now: int | None = None) -> dict:
    """Park `token` as this message's WAITING item, then let the conversation advance (which may
    grant this very token at once). A WaitForTurn retried after its timeout comes here again
    with a new token: a turn (or a merge) granted meanwhile is delivered to the new token.

    `envelope` may carry "merged" (a replayed turn's dead-letter body): those messages' claims
    are taken over and they ride with this one. `now`: epoch seconds (tests pin it). Returns
    {"conversation": key, "status": "WAITING" | "TURN" | "MERGED"}. Raises TurnLost when a turn
    granted to this execution was released meanwhile, DependencyUnavailable when the
    conversation kept changing (advance), ClientError/BotoCoreError from DynamoDB or Step
    Functions (the handler names them DependencyUnavailable)."""
    now = int(time.time()) if now is None else now
    conversation = session_key(envelope)
    carried = _adopt_carried(envelope.get("merged") or [], execution)
    item: TurnItem = {
        "conversation": conversation,
        "update_id": envelope["update_id"],
        "status": WAITING,
        "registered_at": now,
        "expires_at": envelope["expires_at"],
        "execution": execution,
        "token": token,
        "envelope": _own(envelope),
        "carried": carried,
    }
    dynamodb = _dynamodb()
    try:
        # Everything but a turn or a merge already granted to this execution is replaced: the
        # claim (ClaimUpdate) makes this execution the only one answering this update.
        dynamodb.put_item(
            TableName=_turns_table(),
            Item=_serialize(item),
            ConditionExpression="attribute_not_exists(conversation) OR NOT (#status IN (:turn, :merged)) "
            "OR execution <> :execution",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=_serialize({":turn": TURN, ":merged": MERGED, ":execution": execution}),
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return _deliver_again(conversation, envelope["update_id"], token)
    logger.info("waiting for the turn", extra={"carried": len(carried)})
    advance(conversation, now=now)
    return {"conversation": conversation, "status": WAITING}


def _deliver_again(conversation: str, update_id: int, token: str) -> dict:
    """This execution was granted the turn (or merged) while its old token timed out."""
    current = _get(conversation, update_id)
    if current is None:  # released meanwhile: nothing granted any more
        raise TurnLost("the turn was released while WaitForTurn was retried")
    if current["status"] == MERGED:
        _send_failure(token, current["merged_into"])
        return {"conversation": conversation, "status": MERGED}
    _dynamodb().update_item(
        TableName=_turns_table(),
        Key=_key(conversation, update_id),
        UpdateExpression="SET #token = :token",
        ConditionExpression="#status = :turn",
        ExpressionAttributeNames={"#token": "token", "#status": "status"},
        ExpressionAttributeValues=_serialize({":token": token, ":turn": TURN}),
    )
    members = [item for item in _query(conversation) if item.get("merged_into") == update_id]
    _send_success(token, _turn_messages(current, members))
    return {"conversation": conversation, "status": TURN}


def _adopt_carried(merged: list[Envelope], execution: str) -> list[Envelope]:
    """A replayed turn brings the messages merged into it (its dead-letter body): take over
    the claims of those still FAILED; one answered meanwhile is left out (answered once)."""
    dynamodb = _dynamodb()
    adopted = []
    for envelope in merged:
        try:
            dynamodb.update_item(
                TableName=setting("TABLE_NAME"),
                Key=claim_key(envelope["update_id"]),
                UpdateExpression="SET #status = :in_progress, execution = :execution, "
                "expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(pk) OR #status = :failed OR execution = :execution",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_serialize(
                    {
                        ":in_progress": "IN_PROGRESS",
                        ":failed": "FAILED",
                        ":execution": execution,
                        ":expires": envelope["expires_at"],
                    }
                ),
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            logger.info(
                "merged message answered meanwhile; left out", extra={"merged_update_id": envelope["update_id"]}
            )
            continue
        adopted.append(_own(envelope))
    return adopted


# -- granting the turn ----------------------------------------------------------------------


def advance(conversation: str, *, now: int | None = None) -> None:
    """Grant the conversation's turn if nobody holds it and its next message waits.

    Safe to call from anywhere at any time: every grant is one DynamoDB transaction conditional
    on what was read, so two callers racing grant once (the loser reads again). `now`: epoch
    seconds, for leases and stale registrations. Raises DependencyUnavailable after
    MAX_ADVANCE_ROUNDS lost races, ClientError/BotoCoreError from DynamoDB or Step Functions."""
    dynamodb = _dynamodb()
    for _ in range(MAX_ADVANCE_ROUNDS):
        now = int(time.time()) if now is None else now
        items = _query(conversation)
        holder = next((item for item in items if item["status"] == TURN), None)
        if holder is not None:
            if holder.get("lease_until", 0) > now:
                return
            logger.warning("turn lease ran out; released", extra={"holder": holder.get("execution")})
            _delete(holder, "execution = :execution", {":execution": holder.get("execution", "")})
            continue
        queue = [item for item in items if item["status"] in (QUEUED, WAITING)]
        if not queue:
            return
        head = queue[0]
        if head["status"] == QUEUED:
            if not _stale(head, now):
                return  # its execution registers soon, and advances then
            logger.warning("queued message passed over", extra={"queued_update_id": head["update_id"]})
            _delete(head, "#status = :queued", {":queued": QUEUED})
            continue
        merges = _merges()
        if merges and _album_still_queued(head, queue[1:], now):
            return  # the album's next message registers soon, and advances then
        members = _members(head, queue[1:]) if merges else []
        try:
            dynamodb.transact_write_items(TransactItems=_grant_writes(head, members, now))
        except dynamodb.exceptions.TransactionCanceledException as error:
            # Someone else changed the conversation: read it again.
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            logger.info("grant lost a race; reading the conversation again", extra={"reasons": reasons})
            continue
        if not _send_success(head["token"], _turn_messages(head, members)):
            # Its execution stopped (or its WaitForTurn just timed out; its Retry registers anew):
            # the merged messages must not ride with a turn that may never run.
            _undo_grant(head, members)
            continue
        logger.info("turn granted", extra={"turn_update_id": head["update_id"], "merged": len(members)})
        for member in members:
            _send_failure(member["token"], head["update_id"])
        return
    raise DependencyUnavailable(f"conversation {conversation} kept changing; advance again")


def _stale(item: TurnItem, now: int) -> bool:
    """A QUEUED message to pass over: old, or already answered (a copy Telegram delivered again
    after its original was done registers anew at the webhook, and its execution stops at
    AlreadyHandled)."""
    if now - item.get("registered_at", 0) >= QUEUED_STALE_SECONDS:
        return True
    claim = (
        _dynamodb()
        .get_item(TableName=setting("TABLE_NAME"), Key=claim_key(item["update_id"]), ConsistentRead=True)
        .get("Item")
    )
    return claim is not None and claim["status"]["S"] in ("DONE", "UNDELIVERABLE", "FAILED")


def _album_still_queued(head: TurnItem, behind: list[TurnItem], now: int) -> bool:
    """True while a message of `head`'s album (media_group_id) right behind it is still QUEUED.

    Telegram sends an album as one message per file, one after another within milliseconds:
    the webhook registers them all before the first one's execution comes to WaitForTurn, but
    their executions start one by one (one FIFO group). Holding the first one's turn until the
    album's other messages wait lets them ride in one turn (QueuedMessages=merge). A message
    whose execution never comes is passed over as stale, like any QUEUED head."""
    album = head.get("envelope", {}).get("media_group_id")
    if album is None:
        return False
    for item in behind:
        if item.get("media_group_id", item.get("envelope", {}).get("media_group_id")) != album:
            return False
        if item["status"] == QUEUED and not _stale(item, now):
            return True
    return False


def _members(head: TurnItem, behind: list[TurnItem]) -> list[TurnItem]:
    """The WAITING messages right behind `head` that ride along, within the turn's limits. A
    QUEUED one stops the run: the messages after it must not overtake it."""
    members: list[TurnItem] = []
    size = _text_bytes(head)
    count = 1 + len(head.get("carried", []))
    for item in behind:
        if item["status"] != WAITING:
            break
        count += 1 + len(item.get("carried", []))
        size += _text_bytes(item)
        if count > MAX_TURN_MESSAGES or size > MAX_TURN_TEXT_BYTES:
            break
        members.append(item)
    return members


def _text_bytes(item: TurnItem) -> int:
    envelopes = [item.get("envelope", {}), *item.get("carried", [])]
    return sum(len(str(envelope.get("text", "")).encode()) for envelope in envelopes)


def _grant_writes(head: TurnItem, members: list[TurnItem], now: int) -> list[dict]:
    """head WAITING -> TURN; each member WAITING -> MERGED, its claim handed to head's execution
    (so MarkDone or a failure records it with head's), all or nothing."""
    writes = [_waiting_becomes(head, TURN, "lease_until = :lease", {":lease": now + _lease_seconds()})]
    for member in members:
        writes.append(_waiting_becomes(member, MERGED, "merged_into = :head", {":head": head["update_id"]}))
        writes += _claims_handed(member, member["execution"], head["execution"], merged_into=head["update_id"])
    return writes


def _claims_handed(item: TurnItem, holder: str, to: str, *, merged_into: int | None) -> list[dict]:
    """Transaction items: the claims of `item`'s messages (its own and those it carries) pass
    from execution `holder` to `to`, and name the turn they ride in (None: their own again)."""
    assignment = (
        "SET execution = :to, merged_into = :turn"
        if merged_into is not None
        else "SET execution = :to REMOVE merged_into"
    )
    values: dict[str, Any] = {":to": to, ":holder": holder}
    if merged_into is not None:
        values[":turn"] = merged_into
    return [
        {
            "Update": {
                "TableName": setting("TABLE_NAME"),
                "Key": claim_key(envelope["update_id"]),
                "UpdateExpression": assignment,
                "ConditionExpression": "execution = :holder",
                "ExpressionAttributeValues": _serialize(values),
            }
        }
        for envelope in [item["envelope"], *item.get("carried", [])]
    ]


def _waiting_becomes(item: TurnItem, status: str, assignment: str, values: dict[str, Any]) -> dict:
    """A transaction item: `item`, if still WAITING under the token that was read, gets `status`
    and `assignment`."""
    return {
        "Update": {
            "TableName": _turns_table(),
            "Key": _key(item["conversation"], item["update_id"]),
            "UpdateExpression": f"SET #status = :status, {assignment}",
            "ConditionExpression": "#status = :waiting AND #token = :token",
            "ExpressionAttributeNames": {"#status": "status", "#token": "token"},
            "ExpressionAttributeValues": _serialize(
                {":status": status, ":waiting": WAITING, ":token": item["token"], **values}
            ),
        }
    }


def _turn_messages(head: TurnItem, members: list[TurnItem]) -> list[Envelope]:
    """WaitForTurn's result ($.update.merged): the envelopes answered with head's, in order, each
    once (a turn that was lost and granted again carries its merged messages and still finds
    their MERGED items)."""
    envelopes = {envelope["update_id"]: envelope for envelope in head.get("carried", [])}
    for member in members:
        for envelope in [member["envelope"], *member.get("carried", [])]:
            envelopes[envelope["update_id"]] = envelope
    return [envelopes[update_id] for update_id in sorted(envelopes)]


def _send_success(token: str, merged: list[Envelope]) -> bool:
    """Wake the turn's execution; False when its token no longer waits."""
    try:
        clients.stepfunctions().send_task_success(taskToken=token, output=json.dumps(merged))
    except ClientError as error:
        if error.response["Error"]["Code"] not in _GONE_TOKEN_ERRORS:
            raise
        logger.info("granted turn's token no longer waits", extra={"error": error.response["Error"]["Code"]})
        return False
    return True


def _undo_grant(head: TurnItem, members: list[TurnItem]) -> None:
    """A turn whose execution did not take it: drop head's item (a living execution registers
    again) and give the members back their place, their claims and their WAITING status."""
    table = _turns_table()
    writes: list[dict] = [
        {
            "Delete": {
                "TableName": table,
                "Key": _key(head["conversation"], head["update_id"]),
                "ConditionExpression": "#status = :turn AND #token = :token",
                "ExpressionAttributeNames": {"#status": "status", "#token": "token"},
                "ExpressionAttributeValues": _serialize({":turn": TURN, ":token": head["token"]}),
            }
        }
    ]
    for member in members:
        writes.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": _key(member["conversation"], member["update_id"]),
                    "UpdateExpression": "SET #status = :waiting REMOVE merged_into",
                    "ConditionExpression": "#status = :merged AND merged_into = :head",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": _serialize(
                        {":waiting": WAITING, ":merged": MERGED, ":head": head["update_id"]}
                    ),
                }
            }
        )
        writes += _claims_handed(member, head["execution"], member["execution"], merged_into=None)
    dynamodb = _dynamodb()
    # Cancelled: head registered again meanwhile and took its turn (_deliver_again).
    with contextlib.suppress(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=writes)
    logger.warning("granted turn not taken; undone", extra={"turn_update_id": head["update_id"]})


def _send_failure(token: str, carrier_update_id: int) -> None:
    try:
        clients.stepfunctions().send_task_failure(
            taskToken=token,
            error=MergedIntoTurn.__name__,
            cause=f"answered together with update {carrier_update_id}, the first message of its turn",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] not in _GONE_TOKEN_ERRORS:
            raise
        logger.info("merged message's token no longer waits", extra={"error": error.response["Error"]["Code"]})


# -- heartbeat ------------------------------------------------------------------------------


def renew_lease(envelope: Envelope, execution: str) -> None:
    """CallAgent's and SendReply's heartbeat: this execution still holds its conversation's turn
    for TURN_LEASE_SECONDS more. Raises TurnLost when it does not (the ASL waits for the turn
    again), DependencyUnavailable when DynamoDB fails."""
    dynamodb = _dynamodb()
    try:
        dynamodb.update_item(
            TableName=_turns_table(),
            Key=_key(session_key(envelope), envelope["update_id"]),
            UpdateExpression="SET lease_until = :lease",
            ConditionExpression="#status = :turn AND execution = :execution",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=_serialize(
                {":lease": int(time.time()) + _lease_seconds(), ":turn": TURN, ":execution": execution}
            ),
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        raise TurnLost("this execution no longer holds its conversation's turn") from None
    except (BotoCoreError, ClientError) as error:
        raise DependencyUnavailable(f"turns table unavailable ({type(error).__name__})") from None


# -- handing the turn on --------------------------------------------------------------------


def error_message(cause: str) -> str:
    """What a claim keeps of an error's Cause: a Lambda error's Cause is the runtime's JSON
    ({"errorMessage", "errorType", "requestId", "stackTrace"}), of which only errorMessage says
    why; any other Cause (a service integration's, or an error name) is kept as it is."""
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    message = parsed.get("errorMessage") if isinstance(parsed, dict) else None
    return message if isinstance(message, str) else cause


def finish_turn(
    envelope: Envelope, execution: str, outcome: Outcome, *, chunks: int | None = None, reason: str = ""
) -> dict:
    """Record `outcome` on the claims of every message of the turn this execution held, drop
    its items, hand the turn on. Idempotent (the ASL retries it); touches only what this
    execution holds, so it is also safe on a failure before the turn was granted.

    DONE and UNDELIVERABLE are recorded on the turn's own claim too; for FAILED, RecordFailure
    did that already (with the error), and only the merged messages' claims are set here.
    `chunks`: the reply's chunk count (DONE); `reason`: the cause (UNDELIVERABLE) or error name
    (FAILED), cut at 1000 characters. Returns {"conversation", "outcome", "messages"}. Raises
    ClientError/BotoCoreError from DynamoDB or Step Functions (the ASL retries)."""
    now = int(time.time())
    conversation = session_key(envelope)
    update_id = envelope["update_id"]
    merged_ids = [merged["update_id"] for merged in envelope.get("merged") or []]
    claims = merged_ids if outcome == "FAILED" else [update_id, *merged_ids]
    for claim_update_id in claims:
        _record_outcome(
            claim_update_id,
            execution,
            outcome,
            now,
            chunks=chunks if claim_update_id == update_id else None,
            reason=reason,
        )

    own = _get(conversation, update_id)
    if own is not None and (own["status"] == QUEUED or own.get("execution") == execution):
        _delete(own, "#status = :queued OR execution = :execution", {":queued": QUEUED, ":execution": execution})
    for merged_id in merged_ids:
        member = _get(conversation, merged_id)
        if member is not None and member.get("merged_into") == update_id:
            _delete(member, "merged_into = :head", {":head": update_id})
    advance(conversation, now=now)
    return {"conversation": conversation, "outcome": outcome, "messages": 1 + len(merged_ids)}


def _record_outcome(
    update_id: int, execution: str, outcome: Outcome, now: int, *, chunks: int | None, reason: str
) -> None:
    values: dict[str, Any] = {":outcome": outcome, ":execution": execution, ":now": now}
    names = {"#status": "status"}
    assignments = ["#status = :outcome", "finished_at = :now"]
    if chunks is not None:
        assignments.append("chunks = :chunks")
        values[":chunks"] = chunks
    if outcome != "DONE" and reason:
        # The attribute RecordFailure (error) and the old MarkUndeliverable (reason) write.
        assignments.append("#detail = :detail")
        names["#detail"] = "error" if outcome == "FAILED" else "reason"
        values[":detail"] = reason[:1000]
    dynamodb = _dynamodb()
    try:
        dynamodb.update_item(
            TableName=setting("TABLE_NAME"),
            Key=claim_key(update_id),
            UpdateExpression="SET " + ", ".join(assignments),
            ConditionExpression="execution = :execution",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_serialize(values),
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        logger.warning("claim held by another execution; outcome not recorded", extra={"claim_update_id": update_id})


# -- the rule: an execution that ended without handing on ---------------------------------


def release_execution(execution: str, execution_input: str | None) -> dict:
    """An execution FAILED, TIMED_OUT or was ABORTED: drop whatever it held or waited for in its
    conversation (found from its input, the pipe's one-record array) and advance. Returns
    {"released": number of items dropped}; an input without an envelope (EventBridge leaves out
    an input over 248 KB) is logged and left to the lease. Raises DependencyUnavailable when
    DynamoDB or Step Functions fail (the rule's target retries for 24 h)."""
    try:
        envelope = json.loads(execution_input or "null")[0]["update"]
        conversation, update_id = session_key(envelope), envelope["update_id"]
    except (ValueError, TypeError, KeyError, IndexError):
        logger.error(
            "execution input has no envelope; its turn is released by its lease", extra={"execution": execution}
        )
        return {"released": 0}
    try:
        released = 0
        for item in _query(conversation):
            held = item.get("execution") == execution and item["status"] in (WAITING, TURN)
            carried_along = item["status"] == MERGED and item.get("merged_into") == update_id
            if held or carried_along:
                _delete(item, "execution = :execution", {":execution": item["execution"]})
                released += 1
        advance(conversation)
    except (BotoCoreError, ClientError) as error:
        raise DependencyUnavailable(f"turns table or Step Functions unavailable ({type(error).__name__})") from None
    logger.info("released an ended execution's turn", extra={"execution": execution, "released": released})
    return {"released": released}


# -- DynamoDB plumbing ----------------------------------------------------------------------


def _dynamodb():
    return clients.dynamodb()


def _turns_table() -> str:
    return setting("TURNS_TABLE_NAME")


def _lease_seconds() -> int:
    return int(number_setting("TURN_LEASE_SECONDS"))


def _merges() -> bool:
    mode = setting("QUEUED_MESSAGES", "merge")
    if mode not in ("merge", "each"):
        raise ValueError(f"QUEUED_MESSAGES is {mode!r}; expected merge or each")
    return mode == "merge"


def _own(envelope: Envelope) -> Envelope:
    """An envelope without the messages merged into it."""
    own = envelope.copy()
    own.pop("merged", None)
    return own


def _key(conversation: str, update_id: int) -> dict:
    return {"conversation": {"S": conversation}, "update_id": {"N": str(update_id)}}


def _get(conversation: str, update_id: int) -> TurnItem | None:
    item = _dynamodb().get_item(TableName=_turns_table(), Key=_key(conversation, update_id), ConsistentRead=True)
    return _deserialize(item["Item"]) if "Item" in item else None


def _query(conversation: str) -> list[TurnItem]:
    """Every item of the conversation, in update_id order (a conversation holds a few)."""
    paginator = _dynamodb().get_paginator("query")
    pages = paginator.paginate(
        TableName=_turns_table(),
        KeyConditionExpression="conversation = :conversation",
        ExpressionAttributeValues={":conversation": {"S": conversation}},
        ConsistentRead=True,
    )
    return [_deserialize(item) for page in pages for item in page["Items"]]


def _delete(item: TurnItem, condition: str, values: dict[str, Any]) -> None:
    """Delete `item` if `condition` still holds; someone else's change wins (nothing to do)."""
    dynamodb = _dynamodb()
    names = {"#status": "status"} if "#status" in condition else {}
    with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.delete_item(
            TableName=_turns_table(),
            Key=_key(item["conversation"], item["update_id"]),
            ConditionExpression=condition,
            **({"ExpressionAttributeNames": names} if names else {}),
            ExpressionAttributeValues=_serialize(values),
        )


# Envelopes are stored as JSON strings: DynamoDB's number type would turn every id into a Decimal.
_JSON_FIELDS = ("envelope", "carried")


def _serialize(values: Mapping[str, Any]) -> dict:
    out = {}
    for name, value in values.items():
        if name in _JSON_FIELDS:
            out[name] = {"S": json.dumps(value)}
        elif isinstance(value, bool) or value is None:
            raise TypeError(f"{name}: no such attribute type here")
        elif isinstance(value, int):
            out[name] = {"N": str(value)}
        else:
            out[name] = {"S": str(value)}
    return out


def _deserialize(item: dict) -> TurnItem:
    out: dict[str, Any] = {}
    for name, typed in item.items():
        (kind, value), *_ = typed.items()
        if name in _JSON_FIELDS:
            out[name] = json.loads(value)
        else:
            out[name] = int(value) if kind == "N" else value
    return cast(TurnItem, out)
