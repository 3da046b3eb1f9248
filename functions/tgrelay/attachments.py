"""A turn's files: fetched from Telegram into the stack's bucket before the agent is called, and
handed to the agent as presigned URLs (DESIGN.md §8). A Bot API file URL contains the bot token,
so the agent never sees one; the bucket's URLs are signed by this function's role instead.

Part of CallAgent (call_agent.py), not a state of its own: no billed transition is added, and
each attempt finds what an earlier attempt stored (object keys are stable per file), so a
retried CallAgent neither downloads a stored file again nor duplicates an object.
"""

import hashlib
import hmac
import time

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from tgrelay import clients, telegram, telegram_limits
from tgrelay.errors import DependencyUnavailable, TelegramRejected, TelegramUnavailable
from tgrelay.settings import number_setting, setting
from tgrelay.shapes import AgentFile, Envelope, FileMetadata

MAX_DOWNLOAD_BYTES = telegram_limits.DOWNLOAD_BYTES
# One download's connect and per-read timeouts (seconds); a 20 MB file takes a few seconds.
DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
KEY_PREFIX = "files/"
TOO_BIG = f"larger than the {MAX_DOWNLOAD_BYTES // (1024 * 1024)} MB bots may download (Bot API getFile)"


def object_key(file_unique_id: str, key_secret: str) -> str:
    """The object key of a file: "files/" + HMAC-SHA256(key_secret, file_unique_id), 64 hex digits.

    Stable per file (Telegram's file_unique_id is the same for a file over time and across bots),
    so a retried fetch finds the object instead of writing a second one; not guessable without
    the stack's secret (its generated webhook_secret), so knowing a file's id is not enough to
    name its object."""
    digest = hmac.new(key_secret.encode(), file_unique_id.encode(), hashlib.sha256).hexdigest()
    return KEY_PREFIX + digest


def files_for_agent(turn: list[Envelope], bot_token: str, key_secret: str) -> list[AgentFile]:
    """The agent request's `attachments` for the envelopes of a turn, in order:

      [{"kind", "url", "mime_type", "file_name", "size", "duration", "width", "height",
        "message_id"}] (shapes.AgentFile) — url a presigned GET valid FILE_URL_MINUTES (or null with "reason" when
        the file cannot be fetched: over the 20 MB limit, or refused by Telegram); size in bytes.

    Each file is stored in FILES_BUCKET_NAME first unless an earlier attempt stored it. Raises
    TelegramUnavailable / TelegramRateLimited (getFile or the download failed; the ASL retries),
    DependencyUnavailable (S3 failed)."""
    bucket = setting("FILES_BUCKET_NAME")
    expires_in = int(number_setting("FILE_URL_MINUTES") * 60)
    return [
        _file_for_agent(file, message["message_id"], bot_token, key_secret, bucket, expires_in)
        for message in turn
        for file in message.get("attachments") or []
    ]


def _file_for_agent(
    file: FileMetadata, message_id: int, bot_token: str, key_secret: str, bucket: str, expires_in: int
) -> AgentFile:
    entry: AgentFile = {
        "kind": file["kind"],
        "url": None,
        "mime_type": file.get("mime_type"),
        "file_name": file.get("file_name"),
        "size": file.get("file_size"),
        "duration": file.get("duration"),
        "width": file.get("width"),
        "height": file.get("height"),
        "message_id": message_id,
    }
    key = object_key(file.get("file_unique_id") or file["file_id"], key_secret)
    size = _stored_size(bucket, key)
    if size is None:
        stored = store_file(file, bot_token, bucket, key)
        if isinstance(stored, str):
            entry["reason"] = stored
            return entry
        size = stored
    try:
        url = clients.s3().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
        )
    except (BotoCoreError, ClientError) as error:
        raise DependencyUnavailable(f"could not sign the file's URL ({type(error).__name__})") from None
    entry["url"] = url
    entry["size"] = size
    return entry


def store_file(file: FileMetadata, bot_token: str, bucket: str, key: str) -> int | str:
    """getFile, download (at most MAX_DOWNLOAD_BYTES), put into `bucket` under `key`. Returns the
    size in bytes, or the reason the file cannot be had (a string). Raises TelegramUnavailable,
    TelegramRateLimited, DependencyUnavailable. Nothing it raises or returns contains the token."""
    if (file.get("file_size") or 0) > MAX_DOWNLOAD_BYTES:
        return f"the file is {TOO_BIG}"
    try:
        found = telegram.call(bot_token, "getFile", {"file_id": file["file_id"]})
    except TelegramRejected as error:
        # "file is too big" for a file whose size the update did not say; other refusals alike.
        if "too big" in error.description.lower():
            return f"the file is {TOO_BIG}"
        return f"Telegram refused the file: {error.description}"
    file_path = found.get("file_path") if isinstance(found, dict) else None
    if not isinstance(file_path, str) or not file_path:
        return "Telegram gave no download path for the file"
    content = _download(bot_token, file_path)
    if content is None:
        return f"the file is {TOO_BIG}"
    try:
        clients.s3().put_object(
            Bucket=bucket,
            Key=key,
            Body=content,
            ContentType=file.get("mime_type") or "application/octet-stream",
            ChecksumAlgorithm="SHA256",
        )
    except (BotoCoreError, ClientError) as error:
        raise DependencyUnavailable(f"could not store the file ({type(error).__name__})") from None
    return len(content)


def _download(bot_token: str, file_path: str) -> bytes | None:
    """The file's bytes from the Bot API's file endpoint; None when over MAX_DOWNLOAD_BYTES."""
    # The URL contains the token: it never goes into a message, a log or an exception.
    url = f"{setting('TELEGRAM_API_URL', 'https://api.telegram.org')}/file/bot{bot_token}/{file_path}"
    started = time.monotonic()
    try:
        with clients.http().stream("GET", url, timeout=DOWNLOAD_TIMEOUT) as response:
            if response.status_code != 200:
                # A path getFile just gave is valid for an hour: any refusal is Telegram's trouble.
                raise TelegramUnavailable(f"file download: Telegram answered {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    return None
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise TelegramUnavailable(
            f"file download: Telegram did not answer in time ({time.monotonic() - started:.0f} s)"
        ) from None
    except httpx.HTTPError as error:
        # The class name only: httpx's messages quote the URL, token included.
        raise TelegramUnavailable(f"file download: network error ({type(error).__name__})") from None
    return b"".join(chunks)


def _stored_size(bucket: str, key: str) -> int | None:
    """The size of the object an earlier attempt stored, or None when there is none."""
    try:
        return int(clients.s3().head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise DependencyUnavailable(f"could not read the files bucket ({type(error).__name__})") from None
    except BotoCoreError as error:
        raise DependencyUnavailable(f"could not read the files bucket ({type(error).__name__})") from None
