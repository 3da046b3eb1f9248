"""The conversation settings (README: Conversation behaviour): template parameters, the environment
they reach (and only there), and the ASL's hand-over of the agent's whole answer to SendReply."""

import re

import pytest

from .conftest import load_asl
from .test_translated import SECRET_LIKE, of_type

# parameter -> (environment variable, default, allowed values or None)
SETTINGS = {
    "BotUsername": ("BOT_USERNAME", "", None),
    "GroupMessages": ("GROUP_MESSAGES", "addressed", ["addressed", "all"]),
    "EditedMessages": ("EDITED_MESSAGES", "ignore", ["ignore", "answer"]),
    "StartText": ("START_TEXT", None, None),
    "HelpText": ("HELP_TEXT", None, None),
}


@pytest.mark.parametrize("parameter", sorted(SETTINGS))
def test_the_parameters_and_their_defaults(sam_template, parameter):
    spec = sam_template["Parameters"][parameter]
    _, default, allowed = SETTINGS[parameter]
    assert spec["Type"] == "String"
    assert spec["Description"]
    if default is not None:
        assert spec["Default"] == default
    else:
        assert spec["Default"].strip() and spec.get("MinLength") == 1  # a command always gets an answer
    assert spec.get("AllowedValues") == allowed


def test_a_username_is_a_telegram_username(sam_template):
    pattern = sam_template["Parameters"]["BotUsername"]["AllowedPattern"]
    for good in ("", "tgrelay_demo_bot", "@tgrelay_demo_bot"):
        assert re.fullmatch(pattern, good), good
    for bad in ("tgrelay demo", "bot!", "x" * 33):
        assert not re.fullmatch(pattern, bad), bad


def test_the_settings_reach_the_webhook_and_only_where_they_are_read(resources):
    names = {variable for variable, _, _ in SETTINGS.values()}
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        given = names & set(variables)
        if name == "WebhookFunction":
            assert given == names
            for parameter, (variable, _, _) in SETTINGS.items():
                assert variables[variable] == {"Ref": parameter}, variable
        elif name == "WebhookRegistrationFunction":
            # allowed_updates asks Telegram for edits only when they are answered.
            assert given == {"EDITED_MESSAGES"}
            assert variables["EDITED_MESSAGES"] == {"Ref": "EditedMessages"}
        else:
            assert given == set(), name


def test_none_of_them_looks_like_a_secret():
    for parameter, (variable, _, _) in SETTINGS.items():
        assert not SECRET_LIKE.search(parameter) and not SECRET_LIKE.search(variable), parameter


def test_changing_the_edit_policy_registers_the_webhook_again(sam_template):
    props = sam_template["Resources"]["TelegramWebhook"]["Properties"]
    assert props["EditedMessages"] == {"Ref": "EditedMessages"}  # a changed property is an Update: setWebhook


def test_the_dashboard_counts_updates_answered_at_the_webhook(resources):
    assert "AnsweredAtWebhook" in resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]


def test_sendreply_gets_the_agents_whole_answer():
    """More than text (entities, more_messages, buttons) must reach SendReply, with no extra state."""
    states = load_asl()["States"]
    call_agent, send_reply = states["CallAgent"], states["SendReply"]
    assert call_agent["ResultSelector"] == {"reply.$": "$.Payload"}
    assert call_agent["ResultPath"] == "$.agent"
    assert call_agent["Next"] == "SendReply"
    assert send_reply["Parameters"]["Payload"]["reply.$"] == "$.agent.reply"


def test_queued_messages_reach_the_turns_function_only(sam_template, resources):
    """QueuedMessages (README: Conversations): merge the messages that waited into the next turn, or not."""
    spec = sam_template["Parameters"]["QueuedMessages"]
    assert (spec["Type"], spec["Default"], spec["AllowedValues"]) == ("String", "merge", ["merge", "each"])
    assert spec["Description"]
    assert not SECRET_LIKE.search("QueuedMessages") and not SECRET_LIKE.search("QUEUED_MESSAGES")
    given = {
        name
        for name, function in of_type(resources, "AWS::Lambda::Function").items()
        if "QUEUED_MESSAGES" in function["Properties"]["Environment"]["Variables"]
    }
    assert given == {"TurnsFunction"}  # it grants the turn and decides who joins it
    variables = resources["TurnsFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["QUEUED_MESSAGES"] == {"Ref": "QueuedMessages"}
