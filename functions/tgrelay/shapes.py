"""The shapes tgrelay passes between its parts, as TypedDicts a type checker holds (mypy in
`make test`). Only shapes tgrelay defines are here; Telegram's own objects stay `dict` (their
fields are read defensively: envelope.py).

The envelope is what an update becomes at the webhook (DESIGN.md §3): it is the SQS message
body, the `update` field of every execution's state (the ASL's name, kept for the console's
readers), and what the agent request is built from. Sizes are in bytes, times in epoch seconds.
"""

from typing import Literal, NotRequired, TypedDict

UpdateKind = Literal["message", "callback_query", "edited_message"]
FileKind = Literal["photo", "document", "voice", "audio", "video", "video_note", "animation"]


class Sender(TypedDict):
    id: int
    username: str | None
    language_code: str | None


class FileMetadata(TypedDict):
    """A file a message carries (Bot API: PhotoSize, Document, Voice, ...): metadata, never bytes;
    absent values are None; a photo is its largest size; duration in seconds, width/height in pixels."""

    kind: FileKind
    file_id: str
    file_unique_id: str | None
    mime_type: str | None
    file_name: str | None
    file_size: int | None
    duration: int | None
    width: int | None
    height: int | None


class Location(TypedDict):
    latitude: float | int | None
    longitude: float | int | None
    horizontal_accuracy: float | int | None
    live_period: int | None


class Venue(TypedDict):
    title: str | None
    address: str | None
    latitude: float | int | None
    longitude: float | int | None


class Contact(TypedDict):
    phone_number: str | None
    first_name: str | None
    last_name: str | None
    user_id: int | None
    vcard: str | None


class MediaFields(TypedDict, total=False):
    """What a message carries besides text, each present only when it has it (envelope.media_fields)."""

    attachments: list[FileMetadata]
    media_group_id: str
    location: Location
    venue: Venue
    contact: Contact


class Envelope(MediaFields):
    """One update as the workflow carries it (envelope.envelope_from_update); `v` is SCHEMA_VERSION."""

    v: int
    update_id: int
    kind: UpdateKind
    chat_id: int
    chat_type: str | None
    thread_id: int | None  # a forum topic's message_thread_id, else None
    message_id: int
    sender: Sender | None
    text: str
    received_at: int
    expires_at: int  # received_at + the dedupe TTL: the claim's DynamoDB TTL
    # Set by DeadLetterReplayFunction: how often this turn was replayed (dead_letters.py).
    replays: NotRequired[int]
    # A replayed merged turn's other envelopes (turns.py, QueuedMessages=merge).
    merged: NotRequired[list["Envelope"]]


# -- the agent contract (contract/*.schema.json; tests/unit/test_contract.py holds the keys alike) --


class AgentMessage(TypedDict):
    """One message of the turn, in the agent request's `messages` (agent._message)."""

    update_id: int
    message_id: int
    kind: UpdateKind
    text: str
    location: NotRequired[Location]
    venue: NotRequired[Venue]
    contact: NotRequired[Contact]


class AgentChat(TypedDict):
    id: int
    type: str | None
    thread_id: int | None


class AgentFile(TypedDict):
    """A file of the turn, in the agent request's `attachments` (attachments.files_for_agent):
    url a presigned GET, or None with `reason`; size in bytes, duration in seconds."""

    kind: FileKind
    url: str | None
    reason: NotRequired[str]
    mime_type: str | None
    file_name: str | None
    size: int | None
    duration: int | None
    width: int | None
    height: int | None
    message_id: int


class AgentRequest(TypedDict):
    """The JSON body the agent server receives (agent.agent_request; contract/agent-request.schema.json)."""

    update_id: int
    session_key: str
    text: str
    messages: list[AgentMessage]
    kind: UpdateKind
    chat: AgentChat
    user: Sender | None
    message_id: int
    attachments: NotRequired[list[AgentFile]]


AgentFileKind = Literal["photo", "document", "voice", "audio", "video", "animation"]


class Button(TypedDict):
    """An inline keyboard button: `text` and exactly one of the others (the schema's oneOf)."""

    text: str
    callback_data: NotRequired[str]
    url: NotRequired[str]


class AgentAttachment(TypedDict):
    """A file of the agent's answer (`attachments`)."""

    kind: AgentFileKind
    url: str
    caption: NotRequired[str | None]
    file_name: NotRequired[str | None]


class AgentReply(TypedDict, total=False):
    """The agent's answer as the contract gives it (contract/agent-reply.schema.json), once checked;
    also the data of a streamed `reply` event. Other fields are ignored."""

    reply: str | None
    messages: list[str] | None
    format: str | None
    parse_mode: str | None
    buttons: list[list[Button]] | None
    attachments: list[AgentAttachment] | None


class StreamDelta(TypedDict):
    """The data of a streamed `delta` event (the schema's stream_delta)."""

    text: str
    format: NotRequired[str | None]
    parse_mode: NotRequired[str | None]


class ReplyMessage(TypedDict):
    """A message of the reply after the first: rendered text and Telegram MessageEntity dicts."""

    text: str
    entities: NotRequired[list[dict]]


class ReplyFile(TypedDict):
    """An attachment of the reply: the caption rendered; marked by agent.marked_origins."""

    kind: AgentFileKind
    url: str
    file_name: NotRequired[str]
    caption: NotRequired[str]
    caption_entities: NotRequired[list[dict]]
    agent_origin: NotRequired[bool]
    private_hosts: NotRequired[bool]


class Reply(TypedDict):
    """What CallAgent returns and SendReply delivers (replies.reply_from_agent): the first message's
    rendered text ("" for files only) and entities, the others, the keyboard, the files."""

    text: str
    entities: NotRequired[list[dict]]
    more_messages: NotRequired[list[ReplyMessage]]
    buttons: NotRequired[list[list[Button]]]
    attachments: NotRequired[list[ReplyFile]]


# -- the events of the workflow's own functions (what the ASL's Parameters build) ----------------

Outcome = Literal["DONE", "UNDELIVERABLE", "FAILED"]


class TurnWaitEvent(TypedDict):
    """TurnsFunction from WaitForTurn (lambda:invoke.waitForTaskToken)."""

    action: Literal["wait"]
    update: Envelope
    execution: str  # the execution's ARN
    token: str  # the task token (never logged)


class TurnFinishEvent(TypedDict):
    """TurnsFunction from MarkDone, MarkUndeliverable and HandOnTurn."""

    action: Literal["finish"]
    update: Envelope
    execution: str
    outcome: Outcome
    chunks: NotRequired[int | None]  # the reply's chunk count (DONE)
    reason: NotRequired[str]  # the cause (UNDELIVERABLE)
    error: NotRequired[str]  # the error name (FAILED)


class CallAgentEvent(TypedDict):
    """CallAgentFunction from CallAgent."""

    update: Envelope
    execution: str


class SendReplyEvent(TypedDict):
    """SendReplyFunction from SendReply: `reply` is what CallAgent returned (replies.py)."""

    update: Envelope
    reply: dict
    execution: str


class ApologyEvent(TypedDict):
    """SendReplyFunction from ApologizeToUser: `error` is the failure's error name."""

    update: Envelope
    apology: Literal[True]
    error: str
