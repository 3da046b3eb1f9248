"""CallAgentFunction against the loopback FakeAgent: the request contract and every named outcome."""

import contextlib
import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    AGENT_TIMEOUT_SECONDS,
    AGENT_TOKEN,
    EMPTY_REPLY_TEXT,
    SECRET,
    agent_server_fixture,
    closed_port_url,
    envelope,
    fake_agent_fixture,
    fake_telegram_fixture,
    relay_fixture,
    telegram_server_fixture,
)
from fakes_fixtures import CALL_AGENT_EXECUTION as EXECUTION
from fakes_fixtures import invoke_call_agent as invoke
from fakes_fixtures import raised_by_call_agent as raised
from unit_helpers import TURNS_TABLE_NAME, global_variable, hold_turn

from tgrelay import call_agent
from tgrelay.errors import AgentBadResponse, AgentRejected, AgentTimeout, AgentUnavailable, TurnLost
from tgrelay.replies import CUT_NOTE, MAX_REPLY_UNITS
from tgrelay.streaming import MAX_EVENT_BYTES


def test_success_returns_the_rendered_text(relay, lambda_context):
    result = invoke(envelope("private_text"), lambda_context)

    assert result == {"text": "echo: Hi! Can you summarise this week's release notes? 🚀"}


def test_request_matches_the_contract_and_carries_the_bearer_token(relay, lambda_context):
    invoke(envelope("private_text"), lambda_context)

    [call] = relay.agent.calls_snapshot()
    assert call["request"] == {
        "update_id": 918273601,
        "session_key": "telegram:284719365",
        "text": "Hi! Can you summarise this week's release notes? 🚀",
        "messages": [
            {
                "update_id": 918273601,
                "message_id": 1021,
                "kind": "message",
                "text": "Hi! Can you summarise this week's release notes? 🚀",
            }
        ],
        "kind": "message",
        "chat": {"id": 284719365, "type": "private", "thread_id": None},
        "user": {"id": 284719365, "username": "alice_nowak", "language_code": "en"},
        "message_id": 1021,
    }
    [seen] = relay.agent.seen
    assert seen["path"] == "/agent"
    assert seen["headers"]["authorization"] == f"Bearer {AGENT_TOKEN}"


def test_a_merged_turn_sends_every_message_and_their_texts_joined(relay, lambda_context):
    first = envelope("private_text")
    second = {**first, "update_id": first["update_id"] + 1, "message_id": 1022, "text": "And the roadmap?"}
    third = {**first, "update_id": first["update_id"] + 2, "message_id": 1023, "text": "Thanks"}

    result = invoke({**first, "merged": [second, third]}, lambda_context)

    [call] = relay.agent.calls_snapshot()
    request = call["request"]
    assert request["text"] == f"{first['text']}\nAnd the roadmap?\nThanks"
    assert request["messages"] == [
        {"update_id": m["update_id"], "message_id": m["message_id"], "kind": "message", "text": m["text"]}
        for m in (first, second, third)
    ]
    # The turn is answered as the first message's: its update_id, message_id and session.
    assert (request["update_id"], request["message_id"], request["session_key"]) == (
        918273601,
        1021,
        "telegram:284719365",
    )
    assert result["text"] == f"echo: {request['text']}"


def test_without_the_turn_the_agent_is_not_asked(relay, lambda_context):
    update = envelope()
    hold_turn(update, "arn:aws:states:us-east-1:123456789012:execution:tgrelay-relay:someone-else")

    with pytest.raises(TurnLost):
        call_agent.handler({"update": update, "execution": EXECUTION}, lambda_context)

    assert relay.agent.calls_snapshot() == []


def test_each_attempt_renews_the_turns_lease(relay, lambda_context):
    update = envelope()
    hold_turn(update, EXECUTION, lease_until=int(time.time()) + 5)
    before = int(time.time())

    call_agent.handler({"update": update, "execution": EXECUTION}, lambda_context)

    [item] = relay.dynamodb.scan(TableName=TURNS_TABLE_NAME)["Items"]
    assert (item["status"]["S"], item["execution"]["S"]) == ("TURN", EXECUTION)
    assert int(item["lease_until"]["N"]) >= before + int(global_variable("TURN_LEASE_SECONDS"))


def test_forum_topic_gets_its_own_session(relay, lambda_context):
    invoke(envelope("forum_topic_text"), lambda_context)

    request = relay.agent.calls_snapshot()[0]["request"]
    assert request["session_key"] == "telegram:-1002233445566:7690"
    assert request["chat"] == {"id": -1002233445566, "type": "supergroup", "thread_id": 7690}
    assert request["user"]["id"] == 5120934471


def test_callback_query_is_sent_with_its_data_and_the_presser(relay, lambda_context):
    invoke(envelope("callback_query"), lambda_context)

    request = relay.agent.calls_snapshot()[0]["request"]
    assert (request["kind"], request["text"], request["message_id"]) == ("callback_query", "notes:weekly", 1022)
    assert request["user"] == {"id": 284719365, "username": "alice_nowak", "language_code": "en"}


@pytest.mark.parametrize("secret_change", ["empty", "missing"])
def test_no_authorization_header_without_an_agent_token(relay, lambda_context, secret_change):
    values = dict(SECRET)
    if secret_change == "empty":
        values["agent_token"] = ""
    else:
        del values["agent_token"]
    relay.set_secret(values)
    relay.agent.token = ""  # the fake accepts unauthenticated calls

    assert invoke(envelope(), lambda_context)["text"].startswith("echo: ")
    assert "authorization" not in relay.agent.seen[0]["headers"]


def test_connection_refused_is_agent_unavailable(relay, lambda_context, monkeypatch):
    monkeypatch.setenv("AGENT_URL", f"{closed_port_url()}/agent")

    assert type(raised(envelope(), lambda_context)) is AgentUnavailable


def test_dropped_connection_is_agent_unavailable(relay, lambda_context):
    relay.agent.add_fault({"close": True})

    assert type(raised(envelope(), lambda_context)) is AgentUnavailable


def test_overload_and_server_errors_are_agent_unavailable(relay, lambda_context):
    # One test, several answers: a handler call is cheap, a moto account per case is not.
    for status in (429, 500, 502, 503, 504):
        relay.agent.add_fault({"status": status})

        error = raised(envelope(), lambda_context)

        assert type(error) is AgentUnavailable, status
        assert str(status) in str(error)
    assert len(relay.agent.calls_snapshot()) == 5  # one request per invocation: retries belong to the ASL


def test_other_client_errors_are_agent_rejected(relay, lambda_context):
    for status in (400, 401, 404, 422):
        relay.agent.add_fault({"status": status})

        error = raised(envelope(), lambda_context)

        assert type(error) is AgentRejected, status
        assert str(status) in str(error)


def test_wrong_agent_token_is_agent_rejected(relay, lambda_context):
    relay.set_secret({**SECRET, "agent_token": "stale-token"})

    error = raised(envelope(), lambda_context)

    assert type(error) is AgentRejected
    assert "stale-token" not in str(error)


def test_slower_than_the_timeout_is_agent_timeout(relay, lambda_context):
    relay.agent.add_fault({"delay": 4 * AGENT_TIMEOUT_SECONDS, "reply": "too late"})

    error = raised(envelope(), lambda_context)

    # The answer comes at 4 x the timeout: a client that waited that long would get "too late" as
    # its reply. (A timeout taken shorter than configured: the next test.)
    assert type(error) is AgentTimeout


def test_answer_just_within_the_timeout_is_a_reply(relay, lambda_context, monkeypatch):
    # 1 s of delay against a 5 s timeout: a reply whatever the load on the machine, and a timeout
    # taken shorter than configured (a tenth, a unit mix-up) still makes it an AgentTimeout.
    monkeypatch.setenv("AGENT_TIMEOUT_SECONDS", "5")
    relay.agent.add_fault({"delay": 1.0, "reply": "in time"})

    assert invoke(envelope(), lambda_context) == {"text": "in time"}


def test_malformed_answers_are_agent_bad_response(relay, lambda_context):
    for body in ("not json", '{"reply": 5}', '{"reply": ["a", "b"]}', '["hi"]', "null"):
        relay.agent.add_fault({"status": 200, "body": body})

        assert type(raised(envelope(), lambda_context)) is AgentBadResponse, body


def test_a_json_answer_past_the_size_of_one_reply_event_is_agent_bad_response(relay, lambda_context):
    # The same bound as a stream's `reply` event: past it nothing is parsed (CallAgent has 256 MB).
    over = json.dumps({"reply": "a" * MAX_EVENT_BYTES})
    relay.agent.add_fault({"status": 200, "body": over})

    error = raised(envelope(), lambda_context)

    assert type(error) is AgentBadResponse
    assert str(error) == f"agent answer is longer than {MAX_EVENT_BYTES} bytes"
    # Just under it: read, and the text cut as any long answer is.
    relay.agent.add_fault({"status": 200, "body": json.dumps({"reply": "a" * (MAX_EVENT_BYTES - 20)})})
    assert invoke(envelope(), lambda_context)["text"].endswith(CUT_NOTE)


def test_a_json_answer_that_drips_is_given_up_at_the_timeout(relay, lambda_context, monkeypatch):
    sent: list[bytes] = []

    class Dripping(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hangs up
                for piece in [b'{"reply": "', *[b"a"] * 200, b'"}']:  # 10 s of body, then a fine answer
                    self.wfile.write(piece)
                    self.wfile.flush()
                    sent.append(piece)
                    time.sleep(0.05)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Dripping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AGENT_URL", f"http://127.0.0.1:{server.server_address[1]}/agent")
    try:
        error = raised(envelope(), lambda_context)
    finally:
        server.shutdown()
        server.server_close()

    assert type(error) is AgentTimeout
    assert len(sent) < 202  # given up while the body was still coming


def test_a_parse_mode_telegram_does_not_know_is_agent_bad_response(relay, lambda_context):
    for parse_mode in ("BBCode", "markdown_v2", " HTML", 1):
        relay.agent.add_fault({"reply": "*hi*", "parse_mode": parse_mode})

        error = raised(envelope(), lambda_context)
        assert type(error) is AgentBadResponse, parse_mode
        assert "parse_mode" in str(error)


def test_parse_modes_are_rendered_to_entities_in_any_case(relay, lambda_context):
    for parse_mode in ("HTML", "html", "MarkdownV2", "markdownv2", "Markdown", "MARKDOWN"):
        source = "<b>hi</b>" if parse_mode.lower() == "html" else "*hi*"
        relay.agent.add_fault({"reply": source, "parse_mode": parse_mode})

        assert invoke(envelope(), lambda_context) == {
            "text": "hi",
            "entities": [{"type": "bold", "offset": 0, "length": 2}],
        }, parse_mode


def test_empty_reply_becomes_the_empty_reply_text_without_formatting(relay, lambda_context):
    for reply in ("", "   ", "\n\t \n", None, "<b></b>"):
        relay.agent.add_fault({"reply": reply, "parse_mode": "HTML"})

        assert invoke(envelope(), lambda_context) == {"text": EMPTY_REPLY_TEXT}, reply


def test_over_long_reply_is_cut_at_max_reply_units_with_the_note(relay, lambda_context):
    numbered = "".join(f"{n:06d} " for n in range(MAX_REPLY_UNITS // 7 + 50))
    for long_reply in (numbered[: MAX_REPLY_UNITS + 1], numbered):
        assert len(long_reply) > MAX_REPLY_UNITS
        relay.agent.add_fault({"reply": long_reply})

        text = invoke(envelope(), lambda_context)["text"]

        assert text == long_reply[:MAX_REPLY_UNITS] + CUT_NOTE


def test_reply_of_exactly_max_reply_units_is_kept_whole(relay, lambda_context):
    reply = "x" * MAX_REPLY_UNITS
    relay.agent.add_fault({"reply": reply})

    assert invoke(envelope(), lambda_context)["text"] == reply


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 400, "body": f"bad request; you sent authorization: Bearer {AGENT_TOKEN}"}, AgentRejected),
        ({"status": 200, "body": f"<html>debug: headers authorization=Bearer {AGENT_TOKEN}</html>"}, AgentBadResponse),
    ],
    ids=["rejected", "bad-response"],
)
def test_agent_echoing_the_token_does_not_leak_it_into_the_error(relay, lambda_context, fault, expected):
    relay.agent.add_fault(fault)

    error = raised(envelope(), lambda_context)  # asserts the token is absent

    assert type(error) is expected
    assert "authorization" in str(error)  # the rest of the answer is still there to diagnose with


# --- the typing indicator -------------------------------------------------------------------------


def typing_calls(relay) -> list[dict]:
    return [call for call in relay.telegram.calls_snapshot() if call["method"] == "sendChatAction"]


@dataclass
class HeldAgent:
    """What the held agent request saw when it went ahead (see hold_the_agent)."""

    met: list[bool] = field(default_factory=list)
    typing: list[threading.Thread] = field(default_factory=list)


def hold_the_agent(monkeypatch, condition) -> HeldAgent:
    """CallAgent's agent request waits until `condition()` holds, so what happens meanwhile is counted
    up to an event, not in a slice of time. 10 s is a failure bound only: `met` says whether the
    condition held; `typing` is the indicator's thread of that invocation."""
    held = HeldAgent()
    before = set(threading.enumerate())
    ask = call_agent.ask_agent

    def held_ask(request, **kwargs):
        deadline = time.monotonic() + 10.0
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)
        held.met.append(condition())
        held.typing.extend(t for t in threading.enumerate() if t.name == "typing" and t not in before)
        return ask(request, **kwargs)

    monkeypatch.setattr(call_agent, "ask_agent", held_ask)
    return held


def test_typing_is_shown_while_the_agent_works_and_stops_when_it_fails(relay, lambda_context, monkeypatch):
    monkeypatch.setattr(call_agent, "TYPING_INTERVAL_SECONDS", 0.05)
    relay.agent.add_fault({"status": 503})
    held = hold_the_agent(monkeypatch, lambda: len(typing_calls(relay)) >= 3)

    assert type(raised(envelope("forum_topic_text"), lambda_context)) is AgentUnavailable

    assert held.met == [True]  # the action was repeated while the agent request was pending
    assert all(
        call["payload"] == {"chat_id": -1002233445566, "action": "typing", "message_thread_id": 7690}
        for call in typing_calls(relay)
    )
    # Stopped with the request: the indicator's thread ends (5 s is a failure bound only).
    [typing] = held.typing
    typing.join(5.0)
    assert not typing.is_alive()


def test_a_fast_answer_gets_one_typing_action_at_most(relay, lambda_context):
    # Fine as it is: a second action needs the echo agent to take TYPING_INTERVAL_SECONDS (4 s).
    invoke(envelope(), lambda_context)

    assert len(typing_calls(relay)) <= 1


def test_typing_failures_do_not_fail_the_agent_call(relay, lambda_context, monkeypatch):
    monkeypatch.setattr(call_agent, "TYPING_INTERVAL_SECONDS", 0.05)
    relay.telegram.add_fault({"method": "sendChatAction", "status": 403, "count": None})
    relay.agent.add_fault({"reply": "fine"})
    held = hold_the_agent(monkeypatch, lambda: len(typing_calls(relay)) >= 2)

    assert invoke(envelope(), lambda_context) == {"text": "fine"}
    assert held.met == [True]  # it kept trying after a failure; each failure was only logged
    assert {call["status"] for call in typing_calls(relay)} == {403}


def test_a_hanging_telegram_does_not_hold_up_the_answer(relay, lambda_context, monkeypatch):
    monkeypatch.setattr(call_agent, "TYPING_STOP_WAIT_SECONDS", 0.2)
    # The indicator's request would hang for 10 s, far longer than the handler may wait for it.
    monkeypatch.setattr(call_agent, "TYPING_TIMEOUT", httpx.Timeout(10.0, connect=2.0))
    # Accepts connections and never answers (its own socket: a late answer must not reach later tests).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(10.0)  # a failure bound only
        monkeypatch.setenv("TELEGRAM_API_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        hanging = []

        def indicator_request_hangs() -> bool:
            # The agent is asked once the indicator's sendChatAction has connected (never answered).
            if not hanging:
                hanging.append(silent.accept()[0])
            return True

        held = hold_the_agent(monkeypatch, indicator_request_hangs)

        assert invoke(envelope(), lambda_context)["text"].startswith("echo: ")

        # The agent answered while the indicator's request still hung: the handler did not wait it out.
        [typing] = held.typing
        assert typing.is_alive()
        hanging[0].close()
        typing.join(5.0)
        assert not typing.is_alive()


def test_without_a_bot_token_there_is_no_typing_and_the_agent_is_asked(relay, lambda_context):
    relay.set_secret({key: value for key, value in SECRET.items() if key != "bot_token"})

    assert invoke(envelope(), lambda_context)["text"].startswith("echo: ")
    assert typing_calls(relay) == []


def test_messages_and_buttons_are_passed_on(relay, lambda_context):
    buttons = [[{"text": "More", "callback_data": "more"}]]
    relay.agent.add_fault({"status": 200, "body": json.dumps({"reply": "a", "messages": ["b"], "buttons": buttons})})

    assert invoke(envelope(), lambda_context) == {"text": "a", "more_messages": [{"text": "b"}], "buttons": buttons}


def test_invalid_buttons_are_agent_bad_response(relay, lambda_context):
    relay.agent.add_fault({"status": 200, "body": json.dumps({"reply": "a", "buttons": [[{"text": "x"}]]})})

    assert type(raised(envelope(), lambda_context)) is AgentBadResponse


def test_only_a_file_under_agent_files_url_is_marked_for_the_agent_token(relay, lambda_context):
    """SendReply sends the agent token along only with files marked agent_origin (reply_files.py):
    those under AGENT_FILES_URL (the fixture's: the agent fake's /files/), not the rest of its origin."""
    own = f"{relay.agent.url}/files/chart.png?size=100"
    port = relay.agent.url.rsplit(":", 1)[1]
    relay.agent.add_fault(
        {
            "reply": "files",
            "attachments": [
                {"kind": "photo", "url": own},
                {"kind": "photo", "url": f"https://127.0.0.1:{port}/files/chart.png"},  # another scheme
                {"kind": "photo", "url": f"http://localhost:{port}/files/chart.png"},  # another host
                {"kind": "photo", "url": f"http://127.0.0.1:{int(port) + 1}/files/chart.png"},  # another port
                {"kind": "document", "url": f"{relay.agent.url}/_calls"},  # its origin, not its files
                {"kind": "document", "url": f"{relay.agent.url}/files/../_calls"},
            ],
        }
    )

    result = invoke(envelope("private_text"), lambda_context)

    assert [file["agent_origin"] for file in result["attachments"]] == [True, False, False, False, False, False]
    # The agent fake is on 127.0.0.1: so may its files be.
    assert {file["private_hosts"] for file in result["attachments"]} == {True}


def test_without_agent_files_url_no_file_gets_the_agent_token(relay, lambda_context, monkeypatch):
    monkeypatch.delenv("AGENT_FILES_URL")
    relay.agent.add_fault({"reply": "files", "attachments": [{"kind": "photo", "url": relay.agent.file_url("a", 1)}]})

    result = invoke(envelope("private_text"), lambda_context)

    assert result["attachments"][0]["agent_origin"] is False


def test_a_streamed_answers_files_are_marked_too(relay, lambda_context):
    """The agent_origin mark is made for a streamed answer (its `reply` event) as for a JSON one."""
    own = f"{relay.agent.url}/files/chart.png?size=100"
    relay.agent.add_fault(
        {
            "reply": "files",
            "stream": True,
            "reply_event": True,
            "word_delay": 0,
            "attachments": [{"kind": "photo", "url": own}],
        }
    )

    result = invoke(envelope("private_text"), lambda_context)

    assert [file["agent_origin"] for file in result["attachments"]] == [True]
