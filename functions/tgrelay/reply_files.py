"""The agent's files (the reply's `attachments`): downloaded by SendReply when it sends them, and
uploaded to Telegram with the kind's send* method (send_reply.py).

Why SendReply downloads them, at send time, rather than CallAgent into the files bucket: the
bytes never enter Step Functions state (256 KiB) and need no bucket (no extra PutObject and
GetObject, no bucket access for SendReply); a failed download is retried by SendReply's own
retry, which resumes after the last item Telegram accepted, while a download inside CallAgent
would fail CallAgent and ask the agent for the whole answer again. SendReply runs in the same
network as CallAgent (neither is in a VPC; tests/template checks they stay alike), so a URL the
agent could be reached by, its files can be too.

The agent token goes along (Authorization: Bearer) only to URLs under AgentFilesUrl, a prefix
the operator sets (scheme, host, port and path; empty, the default: the token goes with no
download). CallAgent, which has that setting, marks such a file `agent_origin`
(agent.marked_origins). The token goes on the first request only, never after a redirect.

Which addresses may be fetched: never a link-local one (169.254.0.0/16, where the instance
metadata answers; fe80::/10), a multicast or an unspecified one; a loopback or private one
(127.0.0.1:9001 is the Lambda Runtime API) only when the agent server itself is on such an
address (CallAgent marks the files `private_hosts`; the local engine's agent is on 127.0.0.1).
Checked on every hop (redirects too), twice: every address the host resolves to
(socket.getaddrinfo), before connecting; then the address each connection is actually made to
(httpcore's `trace` extension, connection.connect_tcp.complete), before a byte of the request is
sent, so a DNS name that resolves to a public address first and to 127.0.0.1 when connected (DNS
rebinding) is refused all the same. Not covered: a public host that forwards the
request (an open proxy) - it gets no token. A refused address is a note, not a failure.
"""

import contextlib
import ipaddress
import socket
import tempfile
import threading
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import httpx

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
# One download may take this long in all (seconds), headers, redirects and body: a timer closes
# its connections then (a host that drips its headers never trips a per-read timeout). Each
# network operation at most DOWNLOAD_TIMEOUT: 50 MB at less than about 1 MB/s is the host's trouble.
DOWNLOAD_SECONDS = 60.0
DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Ours: redirects followed (each hop's address checked; a file link rarely needs more than one).
MAX_REDIRECTS = 5
# Statuses of the agent's file host that a later attempt may get past (retried).
_TRANSIENT = {408, 425, 429}
# The note's reason for an address not fetched.
ADDRESS_NOT_ALLOWED = "its address is not allowed ({what})"


class AddressRefused(Exception):
    """A connection was made to an address downloads may not use (raised inside httpcore's trace)."""


def download(url: str, kind: str, agent_origin: bool, private_hosts: bool = False) -> tuple[BinaryIO, int] | str:
    """The file at `url` in a temporary file (rewound) and its size in bytes, or the reason it
    cannot be had, for the person's note (a string): the host refused it (a 4xx other than
    408/425/429), it is larger than UPLOAD_LIMITS[kind], its address is not allowed
    (address_refusal), or it redirects more than MAX_REDIRECTS times. The bytes are never all in
    memory.

    Raises AttachmentUnavailable (retried): network error, timeout, more than DOWNLOAD_SECONDS in
    all, 408/425/429 or 5xx. Nothing it raises or returns contains the URL or a token.
    `agent_origin`: the URL is under AgentFilesUrl: the agent token goes along (first request only).
    `private_hosts`: the agent server is on a loopback or private address: so may its files be."""
    headers = {}
    token = secret_field("agent_token", required=False) if agent_origin else ""
    if token:
        headers["authorization"] = f"Bearer {token}"
    file = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    try:
        got = _fetch(url, kind, headers, file, private_hosts)
    except BaseException:
        file.close()
        raise
    if isinstance(got, str):
        file.close()
        return got
    file.seek(0)
    return file, got


def address_refusal(address: str, private_hosts: bool) -> str:
    """Why a download may not connect to the IP `address` (module docstring), "" when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope ("fe80::1%eth0") aside
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return ADDRESS_NOT_ALLOWED.format(what="link-local")
    if ip.is_multicast or ip.is_unspecified:
        return ADDRESS_NOT_ALLOWED.format(what="not a host's")
    if not ip.is_global and not private_hosts:
        return ADDRESS_NOT_ALLOWED.format(what="loopback or private")
    return ""


def on_private_address(url: str) -> bool:
    """Whether any address the host of `url` resolves to (socket.getaddrinfo) is loopback or
    private (not global); False when it does not resolve."""
    try:
        host = urlsplit(url).hostname
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP) if host else []
    except (OSError, ValueError, UnicodeError):
        return False
    return any(not ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]).is_global for info in infos)


class _Guard:
    """One download's connections: each checked as it is made (address_refusal), all shut down
    when DOWNLOAD_SECONDS have passed (`expired`)."""

    def __init__(self, private_hosts: bool):
        self.private_hosts = private_hosts
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(DOWNLOAD_SECONDS, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Guard":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def check_host(self, host: str) -> None:
        """AddressRefused if any address `host` resolves to (socket.getaddrinfo) is refused, before
        connecting (no connection to 169.254.169.254 at all); one that does not resolve is left to
        the connection's own error."""
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        for info in infos:
            reason = address_refusal(str(info[4][0]), self.private_hosts)
            if reason:
                raise AddressRefused(reason)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace extension: called at each step of the request."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info["return_value"]
        sock = stream.get_extra_info("socket")
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)  # the request fails on it (`expired` names why)
            return
        if event == "connection.connect_tcp.complete":
            try:
                peer = sock.getpeername()[0]
            except OSError:  # no longer connected: nothing can be sent on it
                return
            reason = address_refusal(peer, self.private_hosts)
            if reason:
                stream.close()
                raise AddressRefused(reason)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread (close does not)


def _fetch(url: str, kind: str, headers: dict, file: BinaryIO, private_hosts: bool) -> int | str:
    """Write the file at `url` into `file`: its size, or the reason (see `download`)."""
    limit = UPLOAD_LIMITS[kind]
    too_slow = f"{kind} download: took over {DOWNLOAD_SECONDS:g} s"
    # Its own client: every connection is new, so each is checked and the timer can close it.
    with _Guard(private_hosts) as guard, _client() as client:
        try:
            request = client.build_request(
                "GET", url, headers=headers, timeout=DOWNLOAD_TIMEOUT, extensions={"trace": guard.trace}
            )
            for _ in range(MAX_REDIRECTS + 1):
                guard.check_host(request.url.host)
                response = client.send(request, stream=True, follow_redirects=False)
                if response.next_request is None:
                    break
                response.close()
                request = response.next_request
                if "authorization" in request.headers:
                    del request.headers["authorization"]  # the token is for the first URL only
            else:
                response.close()
                return "its link redirects too often"
            with contextlib.closing(response):
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
                    file.write(chunk)
                if guard.expired:  # cut off by the timer, perhaps at what looked like the end
                    raise AttachmentUnavailable(too_slow)
                return size
        except AddressRefused as refused:
            return str(refused)
        except httpx.TimeoutException:
            raise AttachmentUnavailable(f"{kind} download: the agent's file host did not answer in time") from None
        except httpx.HTTPError as error:
            if guard.expired:
                raise AttachmentUnavailable(too_slow) from None
            # The class name only: httpx's messages quote the URL.
            raise AttachmentUnavailable(f"{kind} download: network error ({type(error).__name__})") from None


def _client() -> httpx.Client:
    """A client for one download (no proxy from the environment: the address checked is the host's)."""
    return httpx.Client(trust_env=False)


def too_large(kind: str) -> str:
    """The note's reason for a file over UPLOAD_LIMITS[kind]."""
    what = "a photo" if kind == "photo" else "a file"
    return f"it is larger than the {UPLOAD_LIMITS[kind] // MB} MB Telegram accepts for {what}"


def file_name_for(url: str, kind: str) -> str:
    """The name a file without the agent's file_name is sent under: the last segment of its URL's
    path (percent-decoded), else the kind ("photo")."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])[:MAX_FILE_NAME_CHARS] or kind


def under_prefix(url: str, prefix: str) -> bool:
    """Whether `url` is under `prefix` (AgentFilesUrl): the same scheme, host and port (the port a
    scheme implies counts), and a path that is the prefix's or goes on below it at a "/". A path
    with a "." or ".." segment (percent-encoded too) or a backslash is never under it: a server
    may resolve it to elsewhere. False for an empty prefix or a URL that does not parse."""
    if not prefix:
        return False
    try:
        a, b = urlsplit(url), urlsplit(prefix)
        if (a.scheme.lower(), a.hostname, _port(a)) != (b.scheme.lower(), b.hostname, _port(b)):
            return False
    except ValueError:  # a port that is not a number, a broken [IPv6] host
        return False
    path = unquote(a.path)
    if "\\" in path or any(segment in (".", "..") for segment in path.split("/")):
        return False
    base = b.path if b.path.endswith("/") else b.path + "/"
    return path == b.path or path.startswith(base)


def _port(parts) -> int | None:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
