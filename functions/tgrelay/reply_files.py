"""The agent's files (the reply's `attachments`): downloaded by SendReply when it sends them, and
uploaded to Telegram with the kind's send* method (send_reply.py).

Why SendReply downloads them, at send time, rather than CallAgent into the files bucket: the
bytes never enter Step Functions state (256 KiB) and need no bucket (no extra PutObject and
GetObject, no bucket access for SendReply); a failed download is retried by SendReply's own
retry, which resumes after the last item Telegram accepted, while a download inside CallAgent
would fail CallAgent and ask the agent for the whole answer again. SendReply runs in the same
network as CallAgent (neither is in a VPC; tests/template checks they stay alike), so a URL the
agent could be reached by, its files can be too.

The agent token goes along (Authorization: Bearer) only to the agent's own origin (AGENT_URL's
scheme, host and port; CallAgent, which knows AGENT_URL, marks such a file `agent_origin`): an
agent may keep its files behind the same token, and no other host ever sees it. Redirects are
followed (at most httpx's 20); httpx drops the Authorization header when a redirect leaves the
origin (except http -> https on the same host).
"""

import tempfile
import time
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import httpx

from tgrelay import clients
from tgrelay.errors import AttachmentUnavailable
from tgrelay.replies import SEND_METHODS
from tgrelay.secrets import secret_field
from tgrelay.telegram_limits import FILE_UPLOAD_BYTES, PHOTO_UPLOAD_BYTES

MB = 1_000_000
# What Telegram takes per kind (telegram_limits: the Bot API's "Sending files"); a larger file
# gets the note, never a refusal.
UPLOAD_LIMITS = {kind: PHOTO_UPLOAD_BYTES if kind == "photo" else FILE_UPLOAD_BYTES for kind in SEND_METHODS}
# Ours: the longest file name taken from a URL (most file systems stop at 255).
MAX_FILE_NAME_CHARS = 255
# One download may take this long in all (seconds; checked between reads), each network
# operation at most DOWNLOAD_TIMEOUT: 50 MB at less than about 1 MB/s is the host's trouble.
DOWNLOAD_SECONDS = 60.0
DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Statuses of the agent's file host that a later attempt may get past (retried).
_TRANSIENT = {408, 425, 429}


def download(url: str, kind: str, agent_origin: bool) -> tuple[BinaryIO, int] | str:
    """The file at `url` in a temporary file (rewound) and its size in bytes, or the reason it
    cannot be had, for the person's note (a string): the host refused it (a 4xx other than
    408/425/429) or it is larger than UPLOAD_LIMITS[kind]. The bytes are never all in memory.

    Raises AttachmentUnavailable (retried): network error, timeout, more than DOWNLOAD_SECONDS,
    408/425/429 or 5xx. Nothing it raises or returns contains the URL or a token. `agent_origin`:
    the URL is on the agent's origin (same_origin with AGENT_URL): the agent token goes along."""
    headers = {}
    token = secret_field("agent_token", required=False) if agent_origin else ""
    if token:
        headers["authorization"] = f"Bearer {token}"
    file = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    try:
        got = _fetch(url, kind, headers, file)
    except BaseException:
        file.close()
        raise
    if isinstance(got, str):
        file.close()
        return got
    file.seek(0)
    return file, got


def _fetch(url: str, kind: str, headers: dict, file: BinaryIO) -> int | str:
    """Write the file at `url` into `file`: its size, or the reason (see `download`)."""
    limit = UPLOAD_LIMITS[kind]
    started = time.monotonic()
    try:
        with clients.http().stream(
            "GET", url, headers=headers, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True
        ) as response:
            status = response.status_code
            if status >= 500 or status in _TRANSIENT:
                raise AttachmentUnavailable(f"{kind} download: the agent's file host answered {status}")
            if status != 200:
                return f"its link answered {status}"
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                return too_large(kind)
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    return too_large(kind)
                if time.monotonic() - started > DOWNLOAD_SECONDS:
                    raise AttachmentUnavailable(f"{kind} download: took over {DOWNLOAD_SECONDS:g} s")
                file.write(chunk)
            return size
    except httpx.TooManyRedirects:
        return "its link redirects too often"
    except httpx.TimeoutException:
        raise AttachmentUnavailable(f"{kind} download: the agent's file host did not answer in time") from None
    except httpx.HTTPError as error:
        # The class name only: httpx's messages quote the URL.
        raise AttachmentUnavailable(f"{kind} download: network error ({type(error).__name__})") from None


def too_large(kind: str) -> str:
    """The note's reason for a file over UPLOAD_LIMITS[kind]."""
    what = "a photo" if kind == "photo" else "a file"
    return f"it is larger than the {UPLOAD_LIMITS[kind] // MB} MB Telegram accepts for {what}"


def file_name_for(url: str, kind: str) -> str:
    """The name a file without the agent's file_name is sent under: the last segment of its URL's
    path (percent-decoded), else the kind ("photo")."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])[:MAX_FILE_NAME_CHARS] or kind


def same_origin(url: str, other: str) -> bool:
    """Whether two URLs have the same scheme, host and port (the port a scheme implies counts)."""
    a, b = urlsplit(url), urlsplit(other)
    try:
        return (a.scheme.lower(), a.hostname, _port(a)) == (b.scheme.lower(), b.hostname, _port(b))
    except ValueError:  # a port that is not a number
        return False


def _port(parts) -> int | None:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
