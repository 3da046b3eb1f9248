"""The webhook over HTTP, fed what an attacker (or a broken client) would send, on the local engine.

tests/unit/test_webhook.py covers the handler case by case in-process; these go through the loopback
HTTP API as Telegram's requests do (headers as bytes, bodies that are not UTF-8 and so arrive base64,
sizes API Gateway would pass on) and check the whole stack: a clear 4xx (or 200 with "skipped" for a
valid update of a kind the bot does not answer), a JSON body naming the problem and no traceback,
nothing on the updates queue and no execution started.
"""

import copy
import json

import pytest
from workflow_helpers import EVENTS, HTTP, chat_of, make_update, mark, settle

from tgrelay.text import split_message
from tgrelay_local.engine import SECRET_HEADER

SAMPLE = json.loads((EVENTS / "private_text.json").read_text())


def sample(**message_fields) -> dict:
    """private_text.json with message fields replaced (None removes one)."""
    update = copy.deepcopy(SAMPLE)
    for key, value in message_fields.items():
        if value is None:
            update["message"].pop(key, None)
        else:
            update["message"][key] = value
    return update


def raw(update: dict) -> bytes:
    return json.dumps(update, ensure_ascii=False).encode()


def nested(depth: int) -> bytes:
    return b'{"update_id": 1, "message": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def other_kind(kind: str) -> dict:
    return {"update_id": 918273690, kind: {"chat": {"id": 1}, "date": 1763800000}}


RIGHT = object()  # the engine's webhook secret

# (id, request, expected status, a fragment the answer's "error" or "skipped" must contain)
# request: body (bytes), and optionally secret (str/bytes/None for no header), method, path, query.
CASES = [
    # --- the secret header ------------------------------------------------------------------------
    ("no-secret-header", {"body": raw(SAMPLE), "secret": None}, 401, "missing"),
    ("empty-secret-header", {"body": raw(SAMPLE), "secret": ""}, 401, "missing"),
    ("wrong-secret", {"body": raw(SAMPLE), "secret": "local-webhook-secreT"}, 403, "wrong"),
    ("secret-plus-one", {"body": raw(SAMPLE), "secret": "local-webhook-secret!"}, 403, "wrong"),
    ("secret-8kib", {"body": raw(SAMPLE), "secret": "local-webhook-secret" + "x" * 8192}, 403, "wrong"),
    ("secret-latin-1-bytes", {"body": raw(SAMPLE), "secret": b"local-webhook-secr\xe9t"}, 403, "wrong"),
    ("secret-in-query-string", {"body": raw(SAMPLE), "secret": None, "query": "secret_token=x"}, 401, "missing"),
    # --- not JSON, not an object, not an update ---------------------------------------------------
    ("form-encoded", {"body": b"update_id=1&message=hi"}, 400, "not valid JSON"),
    ("empty-body", {"body": b""}, 400, "empty body"),
    ("truncated-json", {"body": raw(SAMPLE)[:-7]}, 400, "not valid JSON"),
    ("json-array", {"body": b"[" + raw(SAMPLE) + b"]"}, 400, "not a JSON object"),
    ("json-string", {"body": b'"update"'}, 400, "not a JSON object"),
    ("object-without-update_id", {"body": b'{"message": {"text": "hi"}}'}, 400, "update_id"),
    ("update_id-string", {"body": raw({**SAMPLE, "update_id": "918273601"})}, 400, "update_id"),
    ("update_id-NaN", {"body": raw(SAMPLE).replace(b"918273601", b"NaN", 1)}, 400, "update_id"),
    ("update_id-1e400", {"body": raw(SAMPLE).replace(b"918273601", b"1e400", 1)}, 400, "update_id"),
    ("chat-id-float", {"body": raw(sample(chat={"id": 284719365.0, "type": "private"}))}, 400, "message.chat.id"),
    ("chat-id-bool", {"body": raw(sample(chat={"id": True, "type": "private"}))}, 400, "message.chat.id"),
    # --- sizes and depth --------------------------------------------------------------------------
    ("body-1-mib", {"body": raw(SAMPLE) + b" " * 1024 * 1024}, 413, "larger than"),
    ("body-8-mib-garbage", {"body": b"\x00" * 8 * 1024 * 1024}, 413, "larger than"),
    ("100k-nested-arrays", {"body": b"[" * 100_000 + b"]" * 100_000}, 400, "nested too deeply"),
    ("30k-nested-objects", {"body": nested(30_000)}, 400, "nested too deeply"),
    # --- valid updates of kinds the bot does not answer: acknowledged and dropped ------------------
    ("poll", {"body": raw(other_kind("poll"))}, 200, "'poll'"),
    ("message_reaction", {"body": raw(other_kind("message_reaction"))}, 200, "'message_reaction'"),
    ("chat_join_request", {"body": raw(other_kind("chat_join_request"))}, 200, "'chat_join_request'"),
    ("a-kind-from-the-future", {"body": raw(other_kind("business_message_v9"))}, 200, "'business_message_v9'"),
    ("only-update_id", {"body": b'{"update_id": 918273691}'}, 200, "'nothing'"),
    ("sticker", {"body": (EVENTS / "sticker.json").read_bytes()}, 200, "without text or caption"),
    ("edited-message", {"body": (EVENTS / "edited_message.json").read_bytes()}, 200, "edited"),
    ("blank-text", {"body": raw(sample(text=" \n\t "))}, 200, "without text or caption"),
    # --- missing chat -----------------------------------------------------------------------------
    ("message-without-chat", {"body": raw(sample(chat=None))}, 400, "message.chat"),
    ("chat-without-id", {"body": raw(sample(chat={"type": "private"}))}, 400, "message.chat.id"),
    ("message-null", {"body": b'{"update_id": 918273692, "message": null}'}, 400, "message"),
    # --- text that is not text (Telegram's lengths are not checked: tests/workflow/test_delivery.py) --
    ("text-lone-surrogate", {"body": raw(SAMPLE).replace("🚀".encode(), b"\\ud83d")}, 400, "message.text"),
    ("text-a-number", {"body": raw(sample(text=4097))}, 400, "message.text"),
    # --- not UTF-8 (API Gateway passes such a body base64-encoded) --------------------------------
    ("latin-1-text", {"body": raw(SAMPLE).replace("🚀".encode(), b"\xe9")}, 400, "not UTF-8"),
    ("utf-16-body", {"body": json.dumps(SAMPLE).encode("utf-16")}, 400, "not UTF-8"),
    ("overlong-utf-8", {"body": raw(SAMPLE).replace(b"Hi!", b"Hi\xc0\xaf")}, 400, "not UTF-8"),
    ("encoded-surrogate", {"body": raw(SAMPLE).replace("🚀".encode(), b"\xed\xa0\xbd")}, 400, "not UTF-8"),
    ("random-bytes", {"body": bytes(range(256)) * 16}, 400, "not UTF-8"),
]

# Requests the HTTP API itself answers (no route): the function is not even invoked.
NO_ROUTE = [
    ("get", {"method": "GET"}),
    ("put", {"method": "PUT"}),
    ("other-path", {"path": "/telegram/webhook/../admin"}),
    ("path-prefix", {"path": "/telegram"}),
]


def send(relay, body: bytes = b"", secret=RIGHT, method: str = "POST", path: str | None = None, query: str = ""):
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = relay.webhook_secret if secret is RIGHT else secret
    url = relay.webhook_url if path is None else relay.webhook_url.split("/telegram")[0] + path
    if query:
        url += "?" + query
    return HTTP.request(method, url, content=body, headers=headers)


def assert_nothing_enqueued(relay, since: int) -> None:
    """The webhook sends to SQS before it answers, so by now a message would be queued or started."""
    assert settle(relay, since) == []
    assert relay.pipe.failed_starts == 0


@pytest.mark.parametrize(("request_", "status", "names"), [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_bad_input_gets_a_clear_answer_and_is_not_enqueued(relay, request_, status, names):
    since = mark(relay)

    response = send(relay, **request_)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert names in body["error" if status >= 400 else "skipped"]
    assert body["ok"] is (status == 200)
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert_nothing_enqueued(relay, since)


@pytest.mark.parametrize("request_", [pytest.param(case[1], id=case[0]) for case in NO_ROUTE])
def test_no_route_is_404_before_the_function(relay, request_):
    since = mark(relay)

    response = send(relay, body=raw(SAMPLE), **request_)

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert_nothing_enqueued(relay, since)


def test_text_of_exactly_4096_utf16_units_is_answered(relay):
    """The control for the limit cases: at the limit the update is enqueued and answered, in two messages."""
    update = make_update(text="\N{GRINNING FACE}" * 2047 + "ab")
    since = mark(relay)

    response = relay.post_update(update)

    assert response.status_code == 200 and response.json() == {"ok": True}
    (execution,) = settle(relay, since)
    assert execution["status"] == "SUCCEEDED"
    sent = [message["text"] for message in relay.telegram.sent_messages(chat_of(update))]
    assert sent == split_message(f"echo: {update['message']['text']}")
    assert len(sent) == 2


@pytest.mark.parametrize(
    "update",
    [
        pytest.param({**SAMPLE, "update_id": 10**130}, id="update_id-131-digits"),
        pytest.param(sample(chat={"id": 10**40, "type": "private"}), id="chat-id-41-digits"),
    ],
)
def test_ids_beyond_telegram_range_are_a_bad_request(relay, update):
    since = mark(relay)

    response = send(relay, body=raw(update))

    try:
        assert response.status_code == 400, response.text
        assert_nothing_enqueued(relay, since)
    finally:
        settle(relay, since)
