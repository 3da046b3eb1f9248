"""Loopback stand-ins for the Telegram Bot API and an agent server.

Both record what they receive and take faults over HTTP, so a test (in any language)
can drive them:

  POST /_faults   {"status": 503, "count": 2, "match": {"chat_id": 42}, ...}  queue a fault
  GET  /_calls    what was received, in order (JSON list; `at` when it came, and for the
                  agent `ended_at` when its answer left)
  POST /_reset    forget calls and faults (and the Telegram fake's migrated chats)
  POST /_migrate  {"chat_id": -4001, "migrate_to_chat_id": -1004001} (Telegram fake): the group
                  became a supergroup; every call naming the old id answers 400 with
                  parameters.migrate_to_chat_id, as Telegram does

A fault applies to the next `count` matching requests (null: until reset). Fields:
  status        HTTP status to answer with
  description   Telegram error description (Telegram fake)
  retry_after   seconds, for a Telegram 429
  delay         seconds to wait before answering (the agent timeout case)
  body          raw body to answer with instead of JSON (malformed answers)
  content_type  the Content-Type of `body` (default application/json), e.g. text/event-stream
  reply         the agent's reply text (agent fake), e.g. "" or a long text; with it, any of
                parse_mode, format, messages, buttons, attachments are answered too (an
                attachment's url starting with "/" is on the agent fake itself, e.g.
                "/files/chart.png?size=20000": it serves those bytes, file_bytes(name, size))
  stream        true: the agent fake streams this answer (text/event-stream, README: Streaming
                replies) word by word, one `delta` event per word; false: one JSON answer,
                whatever `tgrelay local --stream-replies` says. With it:
  word_delay    seconds between two deltas (default: the agent's stream_delay, else 0.05)
  reply_event   true: end with a `reply` event (the reply object, with the fields above)
                instead of letting the deltas make the reply
  break_after   drop the connection after this many deltas (a broken stream)
  error_after   send an `error` event after this many deltas (terminal: AgentStreamError)
  error_retryable  true: that `error` event says "retryable": true (AgentUnavailable, retried)
  stall_after   after this many deltas, say nothing for `stall` seconds, then go on
  close         true: drop the connection without answering (network error)
  method        Telegram method the fault is for (default sendMessage; "download" for the file
                download, sendPhoto, sendDocument, ... for uploads)
  match         {"chat_id": ..., "update_id": ...}: only requests about that chat/update;
                {"file": name} (agent fake): only GET /files/<name>, which no other fault touches

The Telegram fake takes send* calls (sendPhoto, sendDocument, sendVoice, sendAudio, sendVideo,
sendAnimation) as multipart/form-data uploads or with a URL (which it downloads, as Telegram
does) and records what the chat receives: received_files().
"""

import contextlib
import email.message
import email.parser
import email.policy
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from tgrelay.envelope import FILE_KINDS
from tgrelay.formatting import ENTITY_TYPES, PARSE_MODE_FORMATS, EntityParseError, render
from tgrelay.text import utf16_len
from tgrelay_local.http_api import SHUTDOWN_POLL_SECONDS

JSON = dict[str, Any]


class Raw(bytes):
    """An answer body sent as is (a malformed answer), with its Content-Type."""

    content_type = "application/json"


class FileBytes(bytes):
    """An answer body that is a file's bytes (the Bot API's file download)."""


DROP = object()  # answer: close the connection without a response


class Stream:
    """An answer sent as it is made: `chunks` (bytes, or DROP to cut the connection there) go out
    with chunked transfer encoding, each flushed at once; the iterator may sleep between them."""

    def __init__(self, content_type: str, chunks: Iterator[Any]):
        self.content_type = content_type
        self.chunks = chunks


# Bot API, getFile: bots can download files of up to 20 MB.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
# Bot API, "Sending files": multipart uploads "10 MB max size for photos, 50 MB for other files";
# by URL "5 MB max size for photos and 20 MB max for other types of content".
SEND_FILE_METHODS = {
    "sendPhoto": "photo",
    "sendDocument": "document",
    "sendVoice": "voice",
    "sendAudio": "audio",
    "sendVideo": "video",
    "sendAnimation": "animation",
}
UPLOAD_LIMITS = {"photo": 10 * 10**6, "other": 50 * 10**6}
URL_LIMITS = {"photo": 5 * 10**6, "other": 20 * 10**6}
# Form fields of a multipart call that carry JSON (numbers, objects) rather than text.
JSON_FIELDS = ("chat_id", "message_thread_id", "reply_parameters", "reply_markup", "caption_entities")


def file_bytes(file_id: str, size: int) -> bytes:
    """The bytes the fake Bot API serves for `file_id`: `size` pseudo-random bytes seeded by the
    id, the same every time (a test compares what the agent fetched with these)."""
    return random.Random(file_id).randbytes(size)


def default_file_size(file_id: str) -> int:
    """The size of a file whose update did not say (1-64 KiB, fixed per file_id)."""
    return 1024 + int(hashlib.sha256(file_id.encode()).hexdigest(), 16) % (63 * 1024)


def _fault_body(fault: JSON) -> tuple[int, Any] | None:
    """The answer a fault forces regardless of the service: a dropped connection or a raw body."""
    if fault.get("close"):
        return 0, DROP
    if "body" in fault:
        raw = Raw(str(fault["body"]).encode())
        raw.content_type = fault.get("content_type", Raw.content_type)
        return fault.get("status", 200), raw
    return None


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 with recorded calls and queued faults."""

    name = "fake"

    def __init__(self, port: int = 0):
        self.calls: list[JSON] = []
        self.faults: list[JSON] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name=self.name, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> "FakeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- faults and inspection, also reachable over HTTP --------------------------------

    def add_fault(self, fault: JSON) -> None:
        fault = {"count": 1, **fault}
        if fault["count"] is not None and fault["count"] <= 0:
            return  # applies to no request
        with self.lock:
            self.faults.append(fault)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.faults.clear()

    def take_fault(self, request: JSON) -> JSON | None:
        """The first queued fault that matches `request`, used up by one."""
        with self.lock:
            for fault in self.faults:
                if self.matches(fault, request):
                    if fault["count"] is not None:
                        fault["count"] -= 1
                        if fault["count"] <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def matches(self, fault: JSON, request: JSON) -> bool:
        wanted = fault.get("match") or {}
        return all(request.get(key) == value for key, value in wanted.items())

    def record(self, call: JSON) -> JSON:
        """Keep `call` with its arrival time `at`; returns the kept record (to add to it later)."""
        kept = {**call, "at": time.time()}
        with self.lock:
            self.calls.append(kept)
        return kept

    def calls_snapshot(self) -> list[JSON]:
        with self.lock:
            return [dict(call) for call in self.calls]

    def handle(self, path: str, body: Any, headers: dict) -> tuple[int, Any]:
        raise NotImplementedError


# The bot the samples in events/telegram talk to (mentioned as @tgrelay_demo_bot).
FAKE_BOT_USERNAME = "tgrelay_demo_bot"
LONG_POLL_SECONDS = 1.0  # the longest the fake holds a getUpdates that has nothing to return
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


class FakeTelegram(FakeServer):
    """The Bot API methods tgrelay uses. Checks the token; enforces the text limits and the
    shape of what tgrelay sends along (chat actions, reply parameters, inline keyboards).

    sendMessage parses `parse_mode` text as Telegram does (tgrelay.formatting's parsers follow
    TDLib's) and answers "can't parse entities" exactly where Telegram would; it checks
    `entities` more strictly than Telegram (which drops unknown types and clips ranges past the
    text silently): such an entity is a tgrelay bug, answered with a 400 that says so. Like
    Telegram it answers the Message with the text and entities the user's chat shows:
    received() lists them.
    """

    name = "fake-telegram"

    def __init__(self, token: str, port: int = 0, username: str = FAKE_BOT_USERNAME):
        super().__init__(port)
        self.token = token
        self.username = username
        self.webhook: JSON = {"url": ""}
        self.pending_updates: list[JSON] = []  # for getUpdates (tgrelay local with a real bot's poller)
        self.updates_queued = threading.Condition(self.lock)
        self.next_message_id = 1000
        self.migrated: dict[int, int] = {}  # group id -> the supergroup it became
        self.file_sizes: dict[str, int] = {}  # file_id -> size, learnt from the updates (learn_files)
        self.file_paths: dict[str, str] = {}  # file_path -> file_id, given out by getFile

    def migrate_chat(self, chat_id: int, migrate_to_chat_id: int) -> None:
        """The group `chat_id` was upgraded to the supergroup `migrate_to_chat_id` (until reset)."""
        with self.lock:
            self.migrated[chat_id] = migrate_to_chat_id

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.migrated.clear()
            self.file_sizes.clear()
            self.file_paths.clear()

    def learn_files(self, update: Any) -> None:
        """Remember the sizes of the files an update names, as Telegram knows its own files."""
        message = update.get("message") or update.get("edited_message") if isinstance(update, dict) else None
        if not isinstance(message, dict):
            return
        for field in FILE_KINDS:
            value = message.get(field)
            for file in value if isinstance(value, list) else [value]:
                if (
                    isinstance(file, dict)
                    and isinstance(file.get("file_id"), str)
                    and isinstance(file.get("file_size"), int)
                ):
                    with self.lock:
                        self.file_sizes[file["file_id"]] = file["file_size"]

    def file_size(self, file_id: str) -> int:
        with self.lock:
            return self.file_sizes.get(file_id) or default_file_size(file_id)

    def served_bytes(self, file_id: str) -> bytes:
        """What a download of `file_id` returns."""
        return file_bytes(file_id, self.file_size(file_id))

    def sent_messages(self, chat_id: int | None = None) -> list[JSON]:
        """The sendMessage payloads Telegram accepted, in order."""
        return self.accepted("sendMessage", chat_id)

    def received(self, chat_id: int | None = None) -> list[JSON]:
        """What the chat shows of each accepted sendMessage, in order: {"text", "entities"}."""
        return [
            {"text": call["result"]["text"], "entities": call["result"].get("entities", [])}
            for call in self.calls_snapshot()
            if call["method"] == "sendMessage"
            and call["status"] == 200
            and (chat_id is None or call["payload"].get("chat_id") == chat_id)
        ]

    def drafts(self, chat_id: int | None = None) -> list[JSON]:
        """The sendMessageDraft payloads Telegram accepted (in a chat), in order."""
        return self.accepted("sendMessageDraft", chat_id)

    def received_files(self, chat_id: int | None = None) -> list[JSON]:
        """What the chat shows of each accepted send* call (sendPhoto, ...), in order: {"method",
        "sha256" and "size" of the file's bytes, "file_name", "caption", "caption_entities"}."""
        return [
            {
                "method": call["method"],
                "sha256": call["file"]["sha256"],
                "size": call["file"]["size"],
                "file_name": call["file"].get("file_name"),
                "caption": call["result"].get("caption"),
                "caption_entities": call["result"].get("caption_entities", []),
            }
            for call in self.calls_snapshot()
            if call["method"] in SEND_FILE_METHODS
            and call["status"] == 200
            and (chat_id is None or call["payload"].get("chat_id") == chat_id)
        ]

    def accepted(self, method: str, chat_id: int | None = None) -> list[JSON]:
        """The payloads of `method` calls Telegram accepted (in a chat), in order."""
        return [
            call["payload"]
            for call in self.calls_snapshot()
            if call["method"] == method
            and call["status"] == 200
            and (chat_id is None or call["payload"].get("chat_id") == chat_id)
        ]

    def matches(self, fault: JSON, request: JSON) -> bool:
        return fault.get("method", "sendMessage") == request["method"] and super().matches(fault, request["payload"])

    def handle(self, path: str, body: Any, headers: dict) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) > 2 and parts[0] == "file" and parts[1].startswith("bot"):
            return self._download(parts[1][3:], "/".join(parts[2:]))
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        if parts[0][3:] != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        method, payload = parts[1], body if isinstance(body, dict) else {}
        files = payload.pop(_FILES, {})
        request = {"method": method, "payload": payload, "files": files}
        status, answer = self._answer(request)
        call = {"method": method, "payload": payload, "status": status}
        if "file" in request:
            call["file"] = request["file"]
        if status == 200 and isinstance(answer, dict):
            call["result"] = answer.get("result")
        self.record(call)
        return status, answer

    def _answer(self, request: JSON) -> tuple[int, Any]:
        fault = self.take_fault(request)
        if fault:
            if fault.get("delay"):
                time.sleep(fault["delay"])
            if "status" in fault or "body" in fault or fault.get("close"):
                return self._fault_answer(fault)
        method, payload = request["method"], request["payload"]
        with self.lock:
            migrate_to_chat_id = self.migrated.get(payload.get("chat_id"))
        if migrate_to_chat_id is not None:
            description = "Bad Request: group chat was upgraded to a supergroup chat"
            return _telegram_error(400, description, migrate_to_chat_id=migrate_to_chat_id)
        if method == "sendMessage":
            text = payload.get("text")
            if not isinstance(text, str):
                return _telegram_error(400, "Bad Request: message text is empty")
            shown = _shown(text, payload.get("parse_mode"), payload.get("entities"))
            if isinstance(shown, str):
                return _telegram_error(400, f"Bad Request: {shown}")
            text, entities = shown
            if not text.strip():
                return _telegram_error(400, "Bad Request: message text is empty")
            if utf16_len(text) > 4096:
                return _telegram_error(400, "Bad Request: message is too long")
            problem = _reply_parameters_problem(payload.get("reply_parameters")) or _keyboard_problem(
                payload.get("reply_markup")
            )
            if problem:
                return _telegram_error(400, f"Bad Request: {problem}")
            with self.lock:
                self.next_message_id += 1
                message_id = self.next_message_id
            message = {"message_id": message_id, "chat": {"id": payload.get("chat_id")}, "text": text}
            if entities:
                message["entities"] = entities
            return 200, {"ok": True, "result": message}
        if method == "sendMessageDraft":
            return _draft_answer(payload)
        if method in SEND_FILE_METHODS:
            return self._send_file(request)
        if method == "sendChatAction":
            if payload.get("chat_id") is None:
                return _telegram_error(400, "Bad Request: chat_id is empty")
            if payload.get("action") not in CHAT_ACTIONS:
                return _telegram_error(400, "Bad Request: wrong parameter action in request")
            return 200, {"ok": True, "result": True}
        if method == "answerCallbackQuery":
            if not payload.get("callback_query_id"):
                return _telegram_error(400, "Bad Request: query ID is invalid")
            return 200, {"ok": True, "result": True}
        if method == "deleteWebhook":
            self.webhook = {"url": ""}
            return 200, {"ok": True, "result": True}
        if method == "setWebhook":
            self.webhook = {"url": payload.get("url", ""), "allowed_updates": payload.get("allowed_updates")}
            return 200, {"ok": True, "result": True}
        if method == "getWebhookInfo":
            return 200, {"ok": True, "result": {**self.webhook, "pending_update_count": 0}}
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._take_updates(payload.get("offset"), payload.get("timeout"))}
        if method == "getFile":
            return self._get_file(payload)
        if method == "getMe":
            bot_id = int(self.token.split(":")[0])
            return 200, {"ok": True, "result": {"id": bot_id, "is_bot": True, "username": self.username}}
        return _telegram_error(404, "Not Found: method not found")

    def _send_file(self, request: JSON) -> tuple[int, Any]:
        """sendPhoto, sendDocument, ...: the file as a multipart part named after the kind, or a
        URL Telegram downloads, or a file_id of a file it has. Records request["file"]: its
        part's file_name, size and SHA-256 (what the chat receives)."""
        method, payload = request["method"], request["payload"]
        kind = SEND_FILE_METHODS[method]
        if payload.get("chat_id") is None:
            return _telegram_error(400, "Bad Request: chat_id is empty")
        part, given = request["files"].get(kind), payload.get(kind)
        if part is not None:
            content, limit, file_name = part["content"], UPLOAD_LIMITS, part.get("file_name")
            if len(content) > limit["other"]:
                return _telegram_error(413, "Request Entity Too Large")
        elif isinstance(given, str) and given.startswith(("http://", "https://")):
            try:
                response = httpx.get(given, timeout=30)
            except httpx.HTTPError:
                return _telegram_error(400, "Bad Request: failed to get HTTP URL content")
            if response.status_code != 200:
                return _telegram_error(400, "Bad Request: failed to get HTTP URL content")
            content, limit, file_name = response.content, URL_LIMITS, given.rsplit("/", 1)[-1]
        elif isinstance(given, str) and given:
            content, limit, file_name = self.served_bytes(given), UPLOAD_LIMITS, None
        else:
            return _telegram_error(400, f"Bad Request: there is no {kind} in the request")
        if len(content) > limit["photo" if kind == "photo" else "other"]:
            return _telegram_error(400, "Bad Request: file is too big")
        request["file"] = {"file_name": file_name, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        caption = payload.get("caption")
        shown: tuple[str, list[JSON]] | str = ("", [])
        if caption is not None:
            shown = _shown(str(caption), payload.get("parse_mode"), payload.get("caption_entities"))
        if isinstance(shown, str):
            return _telegram_error(400, f"Bad Request: {shown}")
        if utf16_len(shown[0]) > 1024:
            return _telegram_error(400, "Bad Request: message caption is too long")
        problem = _reply_parameters_problem(payload.get("reply_parameters")) or _keyboard_problem(
            payload.get("reply_markup")
        )
        if problem:
            return _telegram_error(400, f"Bad Request: {problem}")
        digest = request["file"]["sha256"]
        sent = {"file_id": f"sent-{digest[:24]}", "file_unique_id": digest[:16], "file_size": len(content)}
        with self.lock:
            self.next_message_id += 1
            message_id = self.next_message_id
        message: JSON = {"message_id": message_id, "chat": {"id": payload["chat_id"]}}
        message[kind] = [sent] if kind == "photo" else {**sent, "file_name": file_name}
        if shown[0]:
            message["caption"] = shown[0]
            if shown[1]:
                message["caption_entities"] = shown[1]
        return 200, {"ok": True, "result": message}

    def _download(self, token: str, file_path: str) -> tuple[int, Any]:
        """GET /file/bot<token>/<file_path>: the file's bytes (recorded as method "download")."""
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        request = {"method": "download", "payload": {"file_path": file_path}}
        fault = self.take_fault(request)
        with self.lock:
            file_id = self.file_paths.get(file_path)
        if fault and ("status" in fault or "body" in fault or fault.get("close")):
            status, answer = self._fault_answer(fault)
        elif file_id is None:
            status, answer = _telegram_error(404, "Not Found")
        else:
            status, answer = 200, FileBytes(self.served_bytes(file_id))
        self.record({**request, "status": status})
        return status, answer

    def _get_file(self, payload: JSON) -> tuple[int, Any]:
        file_id = payload.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            return _telegram_error(400, "Bad Request: invalid file_id")
        size = self.file_size(file_id)
        if size > MAX_DOWNLOAD_BYTES:
            return _telegram_error(400, "Bad Request: file is too big")
        file_path = f"documents/file_{hashlib.sha256(file_id.encode()).hexdigest()[:16]}"
        with self.lock:
            self.file_paths[file_path] = file_id
        unique = hashlib.sha256(b"unique:" + file_id.encode()).hexdigest()[:16]
        return 200, {
            "ok": True,
            "result": {"file_id": file_id, "file_unique_id": unique, "file_size": size, "file_path": file_path},
        }

    def queue_update(self, update: JSON) -> None:
        """An update for getUpdates (long polling) to return."""
        with self.lock:
            self.pending_updates.append(update)
            self.updates_queued.notify_all()

    def _take_updates(self, offset: int | None, timeout: Any) -> list[JSON]:
        """getUpdates: the updates from `offset` on (earlier ones are confirmed and forgotten), waiting
        up to `timeout` seconds for one as long polling does (Bot API: getUpdates) - here at most
        LONG_POLL_SECONDS, so a poller that is told to stop ends soon."""
        wait = min(float(timeout), LONG_POLL_SECONDS) if isinstance(timeout, int | float) else 0.0
        with self.lock:
            if offset is not None:
                self.pending_updates = [u for u in self.pending_updates if u["update_id"] >= offset]
            self.updates_queued.wait_for(lambda: self.pending_updates, timeout=wait)
            return list(self.pending_updates)

    @staticmethod
    def _fault_answer(fault: JSON) -> tuple[int, Any]:
        forced = _fault_body(fault)
        if forced:
            return forced
        status = fault["status"]
        description = fault.get("description") or _DEFAULT_DESCRIPTIONS.get(status, "Error")
        if status == 429:
            retry_after = fault.get("retry_after", 1)
            return _telegram_error(status, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
        return _telegram_error(status, description)


class FakeAgent(FakeServer):
    """An echo agent server speaking the agent contract (README: Agent server contract)."""

    name = "fake-agent"

    def __init__(self, token: str = "", port: int = 0, stream_delay: float | None = None):
        super().__init__(port)
        self.token = token
        # Seconds between words when every answer is streamed (`tgrelay local --stream-replies`);
        # None: answers are JSON unless a fault says `stream`.
        self.stream_delay = stream_delay

    def file_url(self, name: str, size: int) -> str:
        """The URL at which this agent serves the file `name` of `size` bytes (file_bytes)."""
        return f"{self.url}/files/{name}?size={size}"

    def served_file(self, name: str, size: int) -> bytes:
        """What GET file_url(name, size) answers."""
        return file_bytes(name, size)

    def matches(self, fault: JSON, request: JSON) -> bool:
        # A file's fault names it (match.file); the agent's own faults never touch its files.
        if ("file" in request) != ("file" in (fault.get("match") or {})):
            return False
        return super().matches(fault, request)

    def handle(self, path: str, body: Any, headers: dict) -> tuple[int, Any]:
        if path.startswith("/files/"):
            return self._serve_file(path, headers)
        if self.token and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "missing or wrong bearer token"}
        request = body if isinstance(body, dict) else {}
        flat = {**request, "chat_id": (request.get("chat") or {}).get("id")}
        fault = self.take_fault(flat)
        call = self.record({"request": request, "fault": fault is not None})
        try:
            forced = fault is not None and any(key in fault for key in ("status", "body", "close"))
            files = request.get("attachments") or []
            if files and not forced:  # like an agent: fetch what it was given, then answer
                fetched = [_fetch(file.get("url")) for file in files]
                with self.lock:
                    call["fetched"] = fetched  # in the request's record: GET /_calls shows what the agent got
            status, answer = self._answer(request, fault)
            streamed = fault.get("stream") if fault and "stream" in fault else self.stream_delay is not None
            if status == 200 and isinstance(answer, dict) and streamed:
                return 200, self._stream(answer, fault or {}, call)
            return status, answer
        finally:
            # When the answer leaves: with `at`, the span of the request (overlap checks).
            with self.lock:
                call["ended_at"] = time.time()

    def _serve_file(self, path: str, headers: dict) -> tuple[int, Any]:
        """GET /files/<name>?size=<bytes>: file_bytes(name, size) (recorded with "file", "status"
        and whether the agent's bearer token came along, never its value)."""
        split = urlsplit(path)
        name = unquote(split.path[len("/files/") :])
        size = parse_qs(split.query).get("size", [""])[0]
        request = {"file": name}
        authorized = bool(self.token) and headers.get("authorization") == f"Bearer {self.token}"
        call = {"file": name, "authorization": "authorization" in headers, "authorized": authorized}
        fault = self.take_fault(request)
        if fault and fault.get("delay"):
            time.sleep(fault["delay"])
        forced = _fault_body(fault) if fault else None
        if forced:
            status, answer = forced
        elif fault and "status" in fault:
            status, answer = fault["status"], {"error": f"injected {fault['status']}"}
        elif not size.isdigit():
            status, answer = 404, {"error": "no such file: give ?size=<bytes>"}
        else:
            status, answer = 200, FileBytes(self.served_file(name, int(size)))
        self.record({**call, "status": status})
        return status, answer

    def _answer(self, request: JSON, fault: JSON | None) -> tuple[int, Any]:
        if fault:
            if fault.get("delay"):
                time.sleep(fault["delay"])
            forced = _fault_body(fault)
            if forced:
                return forced
            if "status" in fault:
                return fault["status"], {"error": f"injected {fault['status']}"}
            if "reply" in fault:
                extra: JSON = {key: fault[key] for key in ("format", "messages", "buttons") if key in fault}
                if "attachments" in fault:
                    extra["attachments"] = self._own_urls(fault["attachments"])
                return 200, {"reply": fault["reply"], "parse_mode": fault.get("parse_mode"), **extra}
        return 200, {"reply": echo_text(request)}

    def _stream(self, answer: JSON, fault: JSON, call: JSON) -> Stream:
        """`answer` (a reply object) streamed word by word as the fault says (module docstring)."""
        words = re.findall(r"\S+\s*|\s+", str(answer.get("reply") or ""))
        delay = float(fault.get("word_delay", self.stream_delay if self.stream_delay is not None else 0.05))
        fields = {key: value for key, value in answer.items() if key != "reply" and value is not None}
        reply_event = bool(fault.get("reply_event"))

        def event(name: str, data: JSON) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        def chunks() -> Iterator[Any]:
            try:
                for index, word in enumerate(words):
                    if index == fault.get("break_after"):
                        yield DROP
                        return
                    if index == fault.get("error_after"):
                        error: JSON = {"message": "injected error"}
                        if fault.get("error_retryable"):
                            error["retryable"] = True
                        yield event("error", error)
                        return
                    if index == fault.get("stall_after"):
                        time.sleep(float(fault.get("stall", 0)))
                    if index:
                        time.sleep(delay)
                    delta: JSON = {"text": word}
                    if index == 0 and not reply_event:
                        delta.update(fields)
                    with self.lock:
                        call.setdefault("first_delta_at", time.time())
                        call["deltas"] = index + 1
                    yield event("delta", delta)
                if reply_event:
                    yield event("reply", answer)
            finally:
                with self.lock:
                    call["ended_at"] = time.time()

        return Stream("text/event-stream", chunks())

    def _own_urls(self, attachments: Any) -> Any:
        """The fault's attachments with each url starting with "/" made one of this server's."""
        if not isinstance(attachments, list):
            return attachments
        return [
            {**file, "url": self.url + file["url"]}
            if isinstance(file, dict) and isinstance(file.get("url"), str) and file["url"].startswith("/")
            else file
            for file in attachments
        ]


def echo_text(request: JSON) -> str:
    """The echo agent's reply: "echo: <text>", then what else the turn carried, e.g.
    "echo: look [photo 1280x960 image/jpeg 34 KB]" or "[voice 3 s audio/ogg 6 KB]"."""
    parts = [str(request.get("text") or "")]
    parts += [f"[{describe_file(file)}]" for file in request.get("attachments") or []]
    for message in request.get("messages") or []:
        if "location" in message:
            parts.append(f"[location {message['location']['latitude']},{message['location']['longitude']}]")
        if "venue" in message:
            parts.append(f"[venue {message['venue']['title']}]")
        if "contact" in message:
            parts.append(f"[contact {message['contact']['first_name']} {message['contact']['phone_number']}]")
    return "echo: " + " ".join(part for part in parts if part)


def describe_file(file: JSON) -> str:
    """One attachment as the echo agent describes it: kind, pixels, duration, type, size."""
    words = [str(file.get("kind"))]
    if file.get("width") and file.get("height"):
        words.append(f"{file['width']}x{file['height']}")
    if file.get("duration"):
        words.append(f"{file['duration']} s")
    if file.get("mime_type"):
        words.append(str(file["mime_type"]))
    if isinstance(file.get("size"), int):
        words.append(f"{max(1, round(file['size'] / 1024))} KB")
    if file.get("url") is None and "url" in file:
        words.append(f"not fetched: {file.get('reason')}")
    return " ".join(words)


def _fetch(url: Any) -> JSON:
    """What an agent gets from an attachment's URL: status, size and SHA-256 of the bytes."""
    if not isinstance(url, str):
        return {"status": None}
    try:
        response = httpx.get(url, timeout=30)
    except httpx.HTTPError as error:
        return {"status": None, "error": type(error).__name__}
    return {
        "status": response.status_code,
        "size": len(response.content),
        "sha256": hashlib.sha256(response.content).hexdigest(),
        "content_type": response.headers.get("content-type"),
    }


def _shown(text: str, parse_mode: Any, entities: Any) -> tuple[str, list[JSON]] | str:
    """The text and entities a sendMessage shows, or the description of the 400 Telegram answers.
    parse_mode is matched case-insensitively, "none" or "" is none (telegram-bot-api
    Client::get_formatted_text); with one, `entities` is ignored, as there."""
    if parse_mode is not None:
        fmt = PARSE_MODE_FORMATS.get(parse_mode.lower()) if isinstance(parse_mode, str) else None
        if fmt is None:
            return "unsupported parse_mode"
        if fmt != "text" and text:
            try:
                return render(text, fmt)
            except EntityParseError as error:
                return f"can't parse entities: {error}"
    if entities is None:
        return text, []
    problem = _entities_problem(text, entities)
    return problem if problem else (text, entities)


def _entities_problem(text: str, entities: Any) -> str | None:
    """What is wrong with `entities` for `text` (None: nothing). Telegram itself refuses only
    what it cannot read; the rest is the fake's stricter check (a tgrelay bug either way)."""
    if not isinstance(entities, list):
        return "can't parse entities JSON object"
    size = utf16_len(text)
    for index, entity in enumerate(entities):
        if not isinstance(entity, dict) or not isinstance(entity.get("type"), str):
            return "can't parse MessageEntity: Type is not specified"
        offset, length = entity.get("offset"), entity.get("length")
        if not isinstance(offset, int) or not isinstance(length, int):
            return 'can\'t parse MessageEntity: Field "offset" and "length" must be of type Number'
        if entity["type"] not in ENTITY_TYPES:
            return f"can't parse entities: entity {index} has unknown type {entity['type']!r} (fake Bot API check)"
        if offset < 0 or length <= 0 or offset + length > size:
            return (
                f"can't parse entities: entity {index} ({entity['type']}) covers UTF-16 units "
                f"{offset}..{offset + length} of a {size}-unit text (fake Bot API check)"
            )
    return None


def _draft_answer(payload: JSON) -> tuple[int, Any]:
    """sendMessageDraft (Bot API 9.5) as Telegram answers it: the text's markup is read first, then
    the chat and the draft (its servers' descriptions: TEXTDRAFT_PEER_INVALID for a chat that is not
    private - a private chat's id is its user's, positive; RANDOM_ID_INVALID for a zero or missing
    draft_id)."""
    chat_id, text = payload.get("chat_id"), payload.get("text")
    if chat_id is None:
        return _telegram_error(400, "Bad Request: chat_id is empty")
    if not isinstance(text, str) or not text:
        return _telegram_error(400, "Bad Request: message text is empty")
    shown = _shown(text, payload.get("parse_mode"), payload.get("entities"))
    if isinstance(shown, str):
        return _telegram_error(400, f"Bad Request: {shown}")
    if not isinstance(chat_id, int) or isinstance(chat_id, bool) or chat_id <= 0:
        return _telegram_error(400, "Bad Request: TEXTDRAFT_PEER_INVALID")
    draft_id = payload.get("draft_id")
    if not isinstance(draft_id, int) or isinstance(draft_id, bool) or draft_id == 0:
        return _telegram_error(400, "Bad Request: RANDOM_ID_INVALID")
    if utf16_len(shown[0]) > 4096:
        return _telegram_error(400, "Bad Request: message is too long")
    return 200, {"ok": True, "result": True}


def _reply_parameters_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("message_id"), int):
        return "invalid reply parameters specified"
    return None


def _keyboard_problem(value: Any) -> str | None:
    """What Telegram would object to in an inline keyboard (None: nothing)."""
    if value is None:
        return None
    rows = value.get("inline_keyboard") if isinstance(value, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return 'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
    for button in (button for row in rows for button in row):
        if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
            return "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        if len(set(button) & {"callback_data", "url"}) != 1:
            return "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        if "callback_data" in button and not 1 <= len(str(button["callback_data"]).encode()) <= 64:
            return "BUTTON_DATA_INVALID"
    return None


_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    403: "Forbidden: bot was blocked by the user",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def _telegram_error(status: int, description: str, **parameters: int) -> tuple[int, JSON]:
    """A Bot API error answer; `parameters` (retry_after, migrate_to_chat_id): its ResponseParameters."""
    body: JSON = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body


_FILES = "_files"  # where _form_data puts a multipart body's file parts


def _form_data(content_type: str, raw: bytes) -> JSON:
    """A multipart/form-data body as the fake Bot API reads it: the form fields (JSON_FIELDS
    decoded from JSON, as the Bot API does) and, under _FILES, each file part as {"file_name",
    "content"} by its name. The body is split at its boundary (RFC 7578) and each part's headers
    read by Python's own MIME parser (email): parsing the whole body with it takes seconds per
    50 MB, which a bench of uploads would count as Telegram's time."""
    boundary = email.message.Message()
    boundary["content-type"] = content_type
    delimiter = b"--" + str(boundary.get_param("boundary") or "").encode()
    fields: JSON = {}
    files: JSON = {}
    for chunk in raw.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        file_name = headers.get_filename()
        if file_name is not None:
            files[name] = {"file_name": file_name, "content": content}
            continue
        value: Any = content.decode("utf-8", "replace")
        if name in JSON_FIELDS:
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        fields[name] = value
    return {**fields, _FILES: files}


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: the fakes are inspected, not read
            pass

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/_calls":
                self._send(200, fake.calls_snapshot())
            else:
                self._dispatch(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            if len(raw) < length:
                # The client went away mid-body (an upload given up): a server takes nothing from it.
                self.close_connection = True
                return
            content_type = self.headers.get("content-type") or ""
            body: Any
            if content_type.startswith("multipart/form-data"):
                body = _form_data(content_type, raw)
            else:
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
            if self.path == "/_faults":
                faults = body if isinstance(body, list) else [body]
                if not all(isinstance(fault, dict) for fault in faults):
                    self._send(400, {"ok": False, "error": "a fault is a JSON object, or a list of them"})
                    return
                for fault in faults:
                    fake.add_fault(fault)
                self._send(200, {"ok": True, "queued": len(faults)})
            elif self.path == "/_reset":
                fake.reset()
                self._send(200, {"ok": True})
            elif self.path == "/_migrate" and isinstance(fake, FakeTelegram):
                old, new = (body or {}).get("chat_id"), (body or {}).get("migrate_to_chat_id")
                if not isinstance(old, int) or not isinstance(new, int):
                    self._send(400, {"ok": False, "error": "chat_id and migrate_to_chat_id are integers"})
                    return
                fake.migrate_chat(old, new)
                self._send(200, {"ok": True})
            else:
                self._dispatch(body)

        def _dispatch(self, body: Any) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, answer = fake.handle(self.path, body, headers)
            if answer is DROP:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # the client sees the connection drop
            elif isinstance(answer, Stream):
                self._send_stream(status, answer)
            elif isinstance(answer, FileBytes):
                self._send_raw(status, answer, "application/octet-stream")
            elif isinstance(answer, Raw):
                self._send_raw(status, answer, answer.content_type)
            else:
                self._send(status, answer)

        def _send_stream(self, status: int, answer: Stream) -> None:
            self.send_response(status)
            self.send_header("content-type", answer.content_type)
            self.send_header("transfer-encoding", "chunked")
            self.send_header("cache-control", "no-store")
            self.end_headers()
            self.wfile.flush()
            for chunk in answer.chunks:
                if chunk is DROP:  # cut off mid-body: the client sees an incomplete chunked read
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _send(self, status: int, answer: Any) -> None:
            self._send_raw(status, json.dumps(answer).encode())

        def _send_raw(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
