"""reply_files.download against real sockets on 127.0.0.1 (each server stopped by its test): which
addresses may be fetched, the agent token not following a redirect, and the whole-download timer
against a host that drips its headers or its body. And the agent token's prefix (under_prefix)."""

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tgrelay import reply_files
from tgrelay.errors import AttachmentUnavailable
from tgrelay.reply_files import address_refusal, under_prefix


class Server:
    """A TCP server on `host` answering each connection with `answer(conn, request bytes)`; the
    requests it got (their bytes) in `requests`."""

    def __init__(self, answer: Callable[[socket.socket, bytes], None], host: str = "127.0.0.1"):
        self.answer, self.requests = answer, []
        self.sock = socket.create_server((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            request = conn.recv(65536)
            self.requests.append(request)
            with contextlib.suppress(OSError):  # the client closed it
                self.answer(conn, request)

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(answer, host="127.0.0.1") -> Server:
        servers.append(Server(answer, host))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def agent_token(monkeypatch):
    monkeypatch.setattr(reply_files, "secret_field", lambda name, required=True: "AGENT-TOKEN")


def ok(conn: socket.socket, _request: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")


def redirect_to(url: str) -> Callable[[socket.socket, bytes], None]:
    def answer(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(f"HTTP/1.1 302 Found\r\nlocation: {url}\r\ncontent-length: 0\r\n\r\n".encode())

    return answer


def body_of(got) -> bytes:
    file, _size = got
    with file:
        return file.read()


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "169.254.170.2", "fe80::1", "fe80::1%eth0", "::ffff:169.254.169.254", "0.0.0.0", "224.0.0.1"],
)
def test_link_local_and_non_host_addresses_are_never_fetched(address):
    assert address_refusal(address, private_hosts=True).startswith("its address is not allowed")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "fd00::1", "::ffff:127.0.0.1"])
def test_loopback_and_private_addresses_only_for_an_agent_on_one(address):
    assert address_refusal(address, private_hosts=False) == "its address is not allowed (loopback or private)"
    assert address_refusal(address, private_hosts=True) == ""


def test_a_public_address_is_fetched():
    assert address_refusal("93.184.216.34", private_hosts=False) == ""


@pytest.mark.parametrize(
    ("agent_url", "private"),
    [
        ("http://127.0.0.1:8080/agent", True),
        ("http://localhost/agent", True),
        ("http://[::1]/agent", True),
        ("https://10.0.0.5/agent", True),
        ("https://93.184.216.34/agent", False),
        ("https://no-such-host.invalid/agent", False),  # does not resolve
    ],
)
def test_files_may_be_on_a_private_address_only_when_the_agent_is(agent_url, private):
    assert reply_files.on_private_address(agent_url) is private


def test_a_loopback_host_is_a_note_unless_the_agent_is_on_one_and_nothing_is_sent_to_it(serve):
    server = serve(ok)

    assert reply_files.download(f"{server.url}/x.txt", "document", True, private_hosts=False) == (
        "its address is not allowed (loopback or private)"
    )
    assert server.requests in ([], [b""])  # connected, refused before a byte of the request
    assert body_of(reply_files.download(f"{server.url}/x.txt", "document", True, private_hosts=True)) == b"ok"


def test_each_redirect_is_checked_and_never_carries_the_agent_token(serve, monkeypatch):
    checked = []

    def refusing_127_0_0_2(address, private_hosts):
        checked.append(address)
        return "its address is not allowed (test)" if address == "127.0.0.2" else ""

    def moved_once(conn: socket.socket, request: bytes) -> None:
        # Same origin (httpx itself would keep the header), another path: outside the prefix.
        (redirect_to("/elsewhere") if request.startswith(b"GET /f.txt") else ok)(conn, request)

    monkeypatch.setattr(reply_files, "address_refusal", refusing_127_0_0_2)
    final = serve(ok)
    hop = serve(redirect_to(f"{final.url}/f.txt"))
    same = serve(moved_once)
    refused = serve(ok, host="127.0.0.2")
    to_refused = serve(redirect_to(f"{refused.url}/f.txt"))

    assert body_of(reply_files.download(f"{hop.url}/f.txt", "document", agent_origin=True)) == b"ok"
    assert b"authorization: bearer agent-token" in hop.requests[0].lower()
    assert b"authorization" not in final.requests[0].lower()
    assert body_of(reply_files.download(f"{same.url}/f.txt", "document", agent_origin=True)) == b"ok"
    first, second = same.requests
    assert b"authorization: bearer agent-token" in first.lower() and second.startswith(b"GET /elsewhere")
    assert b"authorization" not in second.lower()
    assert reply_files.download(f"{to_refused.url}/f.txt", "document", True) == "its address is not allowed (test)"
    assert checked[-1] == "127.0.0.2" and refused.requests == []


def test_a_refused_literal_address_is_not_even_connected_to(monkeypatch):
    events = []
    monkeypatch.setattr(reply_files._Guard, "trace", lambda self, event, info: events.append(event))

    got = reply_files.download("http://169.254.169.254/latest/meta-data/", "document", True, private_hosts=True)

    assert got == "its address is not allowed (link-local)"
    assert events == []


def test_the_address_connected_to_is_checked_too_when_dns_answered_otherwise_before(serve, monkeypatch):
    """DNS rebinding: the name resolved to a public address when checked (check_host passed) and to
    127.0.0.1 when connected. The connection is refused before the request is sent."""
    monkeypatch.setattr(reply_files._Guard, "check_host", lambda self, host: None)
    server = serve(ok)

    got = reply_files.download(f"{server.url}/x.txt", "document", True, private_hosts=False)

    assert got == "its address is not allowed (loopback or private)"
    assert server.requests in ([], [b""])


def test_too_many_redirects_are_a_note(serve):
    loop = serve(lambda conn, request: redirect_to("/again")(conn, request))

    assert reply_files.download(f"{loop.url}/x", "document", False, private_hosts=True) == (
        "its link redirects too often"
    )
    assert len(loop.requests) == reply_files.MAX_REDIRECTS + 1


# -- the whole-download timer --------------------------------------------------------------------


# Set when a dripping host has sent everything (3 s, 3 x the test's deadline): a download still
# running then was not cut off in time.
drip_ended = threading.Event()


def drip_headers(conn: socket.socket, _request: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(15):
        conn.sendall(b"x-slow: a\r\n")
        time.sleep(0.2)
    drip_ended.set()


def drip_body(conn: socket.socket, _request: bytes) -> None:
    # No content-length: the body ends when the connection does, so a cut-off looks like its end.
    conn.sendall(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
    for _ in range(15):
        conn.sendall(b"x")
        time.sleep(0.2)
    drip_ended.set()


@pytest.mark.parametrize("drip", [drip_headers, drip_body])
def test_a_host_that_drips_is_cut_off_at_the_download_deadline(serve, monkeypatch, drip):
    monkeypatch.setattr(reply_files, "DOWNLOAD_SECONDS", 1.0)
    drip_ended.clear()
    server = serve(drip)

    with pytest.raises(AttachmentUnavailable, match="document download: took over 1 s"):
        reply_files.download(f"{server.url}/slow.txt", "document", False, private_hosts=True)
    assert not drip_ended.is_set()  # given up while the host was still sending


# -- the agent token's prefix --------------------------------------------------------------------

PREFIX = "https://agent.example/files/"


@pytest.mark.parametrize(
    ("url", "under"),
    [
        ("https://agent.example/files/a.png", True),
        ("https://agent.example:443/files/sub/a.png?x=1", True),
        ("https://agent.example/files", False),  # the prefix ends at "/files/"
        ("https://agent.example/filesX/a.png", False),
        ("https://agent.example/admin/export-all-users", False),
        ("https://agent.example/_calls", False),
        ("https://agent.example/files/../admin", False),
        ("https://agent.example/files/%2e%2e/admin", False),
        ("https://agent.example/files/..%2fadmin", False),
        ("https://agent.example/files/a\\..\\admin", False),
        ("http://agent.example/files/a.png", False),
        ("https://agent.example:8443/files/a.png", False),
        ("https://other.example/files/a.png", False),
        ("http://[oops/files/a.png", False),
    ],
)
def test_only_urls_under_the_prefix_get_the_agent_token(url, under):
    assert under_prefix(url, PREFIX) is under


def test_no_prefix_no_token():
    assert under_prefix("https://agent.example/files/a.png", "") is False
