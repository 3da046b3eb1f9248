"""The real ASL, the real handlers and the template's settings, run by the local engine.

One engine per module (starting one takes about two seconds); each test uses its own
update ids and chats, and the fakes and the retry clock are reset between tests.
"""

import pytest

from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay, take_messages


@pytest.fixture(scope="module")
def relay():
    # Recorded clock: no real waits; FULL jitter pinned to the top of its range.
    with LocalRelay(clock=RetryClock("recorded", jitter=1.0)) as engine:
        yield engine


@pytest.fixture(autouse=True)
def clean_fakes(request):
    if "relay" not in request.fixturenames:
        yield
        return
    engine = request.getfixturevalue("relay")
    engine.telegram.reset()
    engine.agent.reset()
    engine.clock.take_waits()
    yield
    engine.wait_idle(timeout=30)


@pytest.fixture
def empty_dead_letter_queue(relay):
    """The DLQ empty before and after the test, whatever another test of the module left there
    (its own assertions then count only its own dead letters). Modules that count dead letters use
    it: `pytestmark = pytest.mark.usefixtures("empty_dead_letter_queue")`."""
    relay.wait_idle(timeout=30)
    list(take_messages(relay.sqs, relay.dead_letter_queue_url))
    yield
    relay.wait_idle(timeout=30)
    list(take_messages(relay.sqs, relay.dead_letter_queue_url))
