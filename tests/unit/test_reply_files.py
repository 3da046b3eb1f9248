"""reply_files.download against an httpx MockTransport: the two size cuts on their own (the fake
agent always says Content-Length, so each cut hides the other there)."""

from collections.abc import Iterator

import httpx
import pytest

from tgrelay import reply_files
from tgrelay.reply_files import UPLOAD_LIMITS

CHUNK = 1_000_000


class Body(httpx.SyncByteStream):
    """`count` chunks of CHUNK bytes, counting how many the client pulled."""

    def __init__(self, count: int):
        self.count, self.pulled = count, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.count):
            self.pulled += 1
            yield b"x" * CHUNK


@pytest.fixture
def host(monkeypatch):
    """The agent's file host: answers every GET with `host.body` and `host.headers`."""

    class Host:
        body = Body(0)
        headers: dict = {}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=Host.headers, stream=Host.body)

    monkeypatch.setattr(reply_files, "_client", lambda: httpx.Client(transport=httpx.MockTransport(answer)))
    return Host


def test_a_declared_size_over_the_limit_is_refused_before_reading_the_body(host):
    host.body = Body(11)
    host.headers = {"content-length": str(UPLOAD_LIMITS["photo"] + 1)}

    assert reply_files.download("https://files.example/big.png", "photo", agent_origin=False) == (
        "it is larger than the 10 MB Telegram accepts for a photo"
    )
    assert host.body.pulled == 0


def test_an_undeclared_size_is_cut_off_just_past_the_limit(host):
    host.body = Body(60)  # 60 MB, no Content-Length (chunked)
    host.headers = {}

    assert reply_files.download("https://files.example/big.bin", "document", agent_origin=False) == (
        "it is larger than the 50 MB Telegram accepts for a file"
    )
    assert host.body.pulled == 51  # stopped at the first chunk past 50 MB


def test_a_file_within_the_limit_comes_back_whole_and_rewound(host):
    host.body = Body(3)
    host.headers = {}

    file, size = reply_files.download("https://files.example/ok.bin", "video", agent_origin=False)
    with file:
        assert size == 3 * CHUNK and len(file.read()) == size


def test_a_file_without_a_name_is_named_after_its_url():
    assert reply_files.file_name_for("https://files.example/charts/q3%20sales.png?sig=1", "photo") == "q3 sales.png"
    assert reply_files.file_name_for("https://files.example/", "voice") == "voice"
