"""Each function runs with its own environment, as on Lambda: a variable the template gives the wrong
function fails the workflow here too, not only on AWS (issue 12, item 2).

The engine gave every handler the union of all functions' variables, so TABLE_NAME moved from
SendReplyFunction to CallAgentFunction passed every test and broke every reply on AWS. Now
SendReplyFunction starts without it: its init fails naming the variable (tgrelay.settings.declare),
no reply reaches the chat, and the update ends in the dead-letter queue with that error.
(tests/template/test_function_settings.py finds the same mistake by reading the template.)
"""

import json
import os
import threading

import pytest
from workflow_helpers import chat_of, make_update, mark, settle, take_dead_letters

from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay


def move_table_name(relay: LocalRelay) -> None:
    """In the engine's copy of template.yaml: TABLE_NAME from SendReplyFunction to CallAgentFunction."""
    resources = relay.template.doc["Resources"]
    value = resources["SendReplyFunction"]["Properties"]["Environment"]["Variables"].pop("TABLE_NAME")
    resources["CallAgentFunction"]["Properties"]["Environment"]["Variables"]["TABLE_NAME"] = value


@pytest.mark.parametrize("moved", [False, True], ids=["template as is", "TABLE_NAME moved to CallAgentFunction"])
def test_a_variable_given_to_the_wrong_function_fails_the_workflow(moved):
    update = make_update(text="own environments")
    relay = LocalRelay(clock=RetryClock("recorded", jitter=1.0))
    if moved:
        move_table_name(relay)
    with relay:
        since = mark(relay)
        assert relay.post_update(update).status_code == 200
        (execution,) = settle(relay, since)
        replies = [message["text"] for message in relay.telegram.sent_messages(chat_of(update))]
        dead = take_dead_letters(relay)
        environments = {logical_id: function.environment for logical_id, function in relay.functions_by_id.items()}
    if not moved:
        assert replies == ["echo: own environments"]
        assert execution["status"] == "SUCCEEDED" and dead == []
    else:
        assert replies == []  # neither the reply nor the apology: both are SendReplyFunction's
        (letter,) = dead
        attributes = {name: value["StringValue"] for name, value in letter["MessageAttributes"].items()}
        assert attributes["error"] == "ConfigurationError"
        assert "TABLE_NAME is not set (tgrelay.send_reply needs it)" in json.dumps(attributes)
    assert ("TABLE_NAME" in environments["CallAgentFunction"]) is moved
    assert ("TABLE_NAME" in environments["SendReplyFunction"]) is not moved


def test_each_function_sees_its_own_variables_and_lambdas(relay, monkeypatch):
    """What a handler reads from os.environ while it runs, and in a thread it starts: its function's
    variables only (the test process's os.environ is not it)."""
    seen: dict[str, dict[str, str]] = {}

    def spy(logical_id, handler):
        def handle(event, context):
            seen[logical_id] = dict(os.environ)
            thread = threading.Thread(target=lambda: seen.setdefault(f"{logical_id} thread", dict(os.environ)))
            thread.start()
            thread.join()
            return handler(event, context)

        return handle

    for logical_id, function in relay.functions_by_id.items():
        monkeypatch.setattr(function, "handler", spy(logical_id, function.handler))
    relay.post_update(make_update(text="whose environment"))
    relay.wait_idle()

    webhook, send_reply, call_agent = seen["WebhookFunction"], seen["SendReplyFunction"], seen["CallAgentFunction"]
    assert webhook["AWS_LAMBDA_FUNCTION_NAME"] == relay.functions_by_id["WebhookFunction"].name
    assert webhook["_HANDLER"] == "tgrelay.webhook.handler"
    assert "QUEUE_URL" in webhook and "QUEUE_URL" not in send_reply
    assert "TABLE_NAME" in send_reply and "TABLE_NAME" not in call_agent
    assert seen["CallAgentFunction thread"] == call_agent
    assert "QUEUE_URL" not in os.environ  # the engine's own threads and the tests see the process's


def test_a_template_variable_lambda_reserves_stops_the_engine():
    relay = LocalRelay(clock=RetryClock("recorded", jitter=1.0))
    relay.template.doc["Resources"]["TurnsFunction"]["Properties"]["Environment"]["Variables"]["TZ"] = "Europe/Paris"
    with pytest.raises(ValueError, match="TurnsFunction sets TZ, which Lambda reserves"):
        relay.start()


def test_the_machines_network_settings_reach_a_function_and_lambdas_own_win(relay, monkeypatch):
    # A real bot or agent behind a proxy: the handlers' HTTP goes through it, as the engine's own does.
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HOME", "/home/someone")
    props = relay.template.function_properties("CallAgentFunction")
    environment = relay._function_environment("CallAgentFunction", props)
    assert environment["HTTPS_PROXY"] == "http://proxy.invalid:3128"
    assert "HOME" not in environment and environment["TZ"] == ":UTC"  # as Lambda sets them
    with relay.as_function("CallAgentFunction"):  # code outside an invocation, as that function
        assert os.environ["AWS_ENDPOINT_URL_S3"] == relay.s3_endpoint
        assert "QUEUE_URL" not in os.environ
