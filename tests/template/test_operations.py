"""Operations resources: webhook registration, allow-list, alarms, dashboard, log retention."""

import json
import re

from .test_translated import FUNCTIONS, of_type


def test_the_custom_resource_registers_the_stacks_webhook_url(resources):
    webhook = resources["TelegramWebhook"]
    assert webhook["Type"] == "Custom::TelegramWebhook"
    props = webhook["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["WebhookRegistrationFunction", "Arn"]}
    url = props["WebhookUrl"]["Fn::Sub"]
    assert url.startswith("https://${WebhookApi}.execute-api.") and url.endswith("/telegram/webhook")
    handler = resources["WebhookRegistrationFunction"]["Properties"]["Handler"]
    assert handler == "tgrelay.register_webhook.handler"


def test_registration_can_be_turned_off(sam_template):
    conditional = {
        name
        for name, resource in sam_template["Resources"].items()
        if resource.get("Condition") == "ShouldRegisterWebhook"
    }
    assert conditional == {"WebhookRegistrationFunction", "TelegramWebhook", "WebhookRegistrationLogGroup"}
    assert sam_template["Conditions"]["ShouldRegisterWebhook"] == {"Fn::Equals": [{"Ref": "RegisterWebhook"}, "true"]}
    assert sam_template["Parameters"]["RegisterWebhook"]["AllowedValues"] == ["true", "false"]


def test_the_allow_list_reaches_only_the_webhook(resources):
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        if name == "WebhookFunction":
            assert variables["ALLOWED_IDS"] == {"Ref": "AllowedIds"}
        else:
            assert "ALLOWED_IDS" not in variables, name


def test_every_alarm_notifies_the_topic(resources):
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {"DeadLetterAlarm", "ExecutionFailuresAlarm", "StalledPipeAlarm", "WebhookErrorsAlarm"}
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name
        assert alarm["Properties"]["AlarmDescription"], f"{name}: an alarm says what to do"


def test_alarms_watch_the_right_things(resources):
    dlq = resources["DeadLetterAlarm"]["Properties"]
    # AutoReplay off: any visible dead letter (tests/template/test_auto_replay.py: on).
    assert dlq["MetricName"]["Fn::If"][2] == "ApproximateNumberOfMessagesVisible"
    assert dlq["Dimensions"]["Fn::If"][2] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    assert dlq["Dimensions"]["Fn::If"][1] == [{"Name": "service", "Value": "tgrelay"}]
    assert dlq["Threshold"] == 0 and dlq["ComparisonOperator"] == "GreaterThanThreshold"

    stalled = resources["StalledPipeAlarm"]["Properties"]
    assert stalled["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert stalled["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["UpdatesQueue", "QueueName"]}

    executions = resources["ExecutionFailuresAlarm"]["Properties"]["Metrics"]
    watched = {m["MetricStat"]["Metric"]["MetricName"] for m in executions if "MetricStat" in m}
    assert watched == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted", "NumberOfMessagesSent"}
    for metric in (m for m in executions if "MetricStat" in m):
        expected = (
            [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
            if metric["MetricStat"]["Metric"]["Namespace"] == "AWS/SQS"
            else [{"Name": "StateMachineArn", "Value": {"Ref": "RelayStateMachine"}}]
        )
        assert metric["MetricStat"]["Metric"]["Dimensions"] == expected

    webhook = resources["WebhookErrorsAlarm"]["Properties"]["Metrics"]
    dimensions = {
        m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"]["Metric"]["Dimensions"]
        for m in webhook
        if "MetricStat" in m
    }
    assert dimensions == {
        "Errors": [{"Name": "FunctionName", "Value": {"Ref": "WebhookFunction"}}],
        "5xx": [{"Name": "ApiId", "Value": {"Ref": "WebhookApi"}}],
    }


def test_alarm_email_is_optional(sam_template):
    subscription = sam_template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}
    assert sam_template["Parameters"]["AlarmEmail"]["Default"] == ""


def test_dashboard_shows_the_alarmed_figures(resources):
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    rendered = re.sub(r"\$\{[^}]+\}", "placeholder", body)
    widgets = json.loads(rendered)["widgets"]  # what CloudFormation would submit must be JSON
    assert all(widget["type"] == "metric" for widget in widgets)
    for metric in (
        "ApproximateNumberOfMessagesVisible",
        "ExecutionsFailed",
        "ApproximateAgeOfOldestMessage",
        "AgentLatency",
        "DroppedUpdates",
        "RateLimitWaits",
        "ReplyChunks",
    ):
        assert metric in rendered, metric


def test_every_function_logs_to_a_group_with_retention(resources):
    for name in FUNCTIONS:
        log_group = resources[name]["Properties"]["LoggingConfig"]["LogGroup"]
        group = resources[log_group["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    state_machine_logs = resources["RelayStateMachineLogGroup"]["Properties"]
    assert state_machine_logs["RetentionInDays"] == {"Ref": "LogRetentionDays"}
