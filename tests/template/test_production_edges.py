"""Issue 14, "AWS production edges": what the template must say so production behaves where the
local engine cannot show it. Asserted on the translated CloudFormation (conftest.cfn)."""

import pytest

from .conftest import TEMPLATE
from .test_translated import LEAST_PRIVILEGE, grants, of_type

README = TEMPLATE.parent / "README.md"

# SQS: a queue name has at most 80 characters, a FIFO queue's ".fifo" included (SQS FIFO quotas).
QUEUE_NAME_LIMIT = 80
# Lambda: all of a function's environment variables together, at most 4 KB (Lambda quotas).
ENVIRONMENT_LIMIT_BYTES = 4096
# UTF-8 takes at most 4 bytes a character: what a MaxLength in characters may cost in bytes.
UTF8_MAX_BYTES = 4
# Resource names, ARNs and URLs a Ref or GetAtt puts into an environment: a bound on each
# (an SQS URL: https://sqs.<region>.amazonaws.com/<account>/<name of <= 80>; a generated
# DynamoDB table name or Secrets Manager ARN are shorter).
REF_BOUND = 200
# Parameters whose AllowedPattern admits ASCII alone (1 byte a character); loosening one fails here.
ASCII_PARAMETERS = {
    "AllowedIds": "^[-0-9, ]*$",
    "AgentFilesUrl": "^(https?://[!-~]+)?$",
    "BotUsername": "^@?[A-Za-z0-9_]{0,32}$",
    "MetricsNamespace": "^[A-Za-z0-9._/#:-]+$",
    "AutoReplayDelays": "^[0-9]+(,[0-9]+)*$",
}


# --- finding 4: the custom resource never keeps CloudFormation waiting an hour -----------------------


def test_the_custom_resource_times_out_in_minutes(resources):
    timeout = resources["TelegramWebhook"]["Properties"]["ServiceTimeout"]
    function_timeout = resources["WebhookRegistrationFunction"]["Properties"]["Timeout"]
    # CloudFormation's default is 3600 s; the answer comes within the function's Timeout or never.
    assert function_timeout < int(timeout) <= 300


# --- finding 5: Telegram's requests keep a slot when agent turns use up the account's concurrency ----


def test_the_webhook_can_reserve_concurrency(sam_template, resources):
    parameter = sam_template["Parameters"]["WebhookReservedConcurrency"]
    # 0 would throttle every request: the default reserves nothing (new accounts cannot reserve).
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 0, 0)
    assert resources["WebhookFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReservesWebhookConcurrency", {"Ref": "WebhookReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert sam_template["Conditions"]["ReservesWebhookConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookReservedConcurrency"}, 0]}]
    }


# --- finding 7: deploy-time limits ---------------------------------------------------------------------


def longest_stack_name(resources) -> int:
    """The longest stack name every queue name of the template stays within SQS's limit for."""
    room = []
    for name, queue in of_type(resources, "AWS::SQS::Queue").items():
        pattern = queue["Properties"]["QueueName"]["Fn::Sub"]
        assert pattern.startswith("${AWS::StackName}-") and pattern.endswith(".fifo"), name
        room.append(QUEUE_NAME_LIMIT - len(pattern.replace("${AWS::StackName}", "")))
    return min(room)


def test_queue_names_fit_sqs_for_the_documented_stack_names(resources):
    longest = longest_stack_name(resources)
    assert longest == 62
    readme = README.read_text()
    assert f"stack name of at most {longest} characters" in readme
    # CloudFormation allows 128: a longer name fails at the queues, so the README says it up front.
    for name, queue in of_type(resources, "AWS::SQS::Queue").items():
        filled = queue["Properties"]["QueueName"]["Fn::Sub"].replace("${AWS::StackName}", "s" * longest)
        assert len(filled) <= QUEUE_NAME_LIMIT, name


def worst_environment_bytes(sam_template, resources, function: str) -> int:
    """The most bytes a function's environment can take: keys, literal values, parameters at their
    MaxLength (4 bytes a character, or 1 where AllowedPattern keeps them ASCII, or AllowedValues),
    Refs and GetAtts of resources at REF_BOUND."""
    parameters = sam_template["Parameters"]
    total = 0
    for key, value in resources[function]["Properties"]["Environment"]["Variables"].items():
        total += len(key.encode())
        if isinstance(value, str):
            total += len(value.encode())
        elif set(value) == {"Ref"} and value["Ref"] in parameters:
            spec = parameters[value["Ref"]]
            if "AllowedValues" in spec:
                total += max(len(str(allowed)) for allowed in spec["AllowedValues"])
            elif spec["Type"] == "Number":
                total += len(str(spec.get("MaxValue", 10**12)))
            else:
                assert "MaxLength" in spec, f"{function}.{key}: parameter {value['Ref']} has no MaxLength"
                ascii_only = ASCII_PARAMETERS.get(value["Ref"]) == spec.get("AllowedPattern", "")
                total += spec["MaxLength"] * (1 if ascii_only else UTF8_MAX_BYTES)
        else:
            total += REF_BOUND
    return total


@pytest.mark.parametrize(
    "function",
    ["WebhookFunction", "CallAgentFunction", "SendReplyFunction", "TurnsFunction", "DeadLetterReplayFunction"],
)
def test_every_environment_fits_lambdas_4_kb(sam_template, resources, function):
    assert worst_environment_bytes(sam_template, resources, function) <= ENVIRONMENT_LIMIT_BYTES


def test_the_texts_in_the_webhooks_environment_are_bounded(sam_template):
    for name in ("StartText", "HelpText", "AllowedIds"):
        assert sam_template["Parameters"][name]["MaxLength"], name


# --- finding 9: observability ---------------------------------------------------------------------------


def test_the_pipe_logs_its_errors_without_execution_data(resources):
    props = resources["UpdatesPipe"]["Properties"]
    assert props["LogConfiguration"] == {
        "Level": "ERROR",
        "CloudwatchLogsLogDestination": {"LogGroupArn": {"Fn::GetAtt": ["UpdatesPipeLogGroup", "Arn"]}},
    }
    assert "IncludeExecutionData" not in props["LogConfiguration"], "messages are users' words"
    log_group = resources["UpdatesPipeLogGroup"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # The pipe writes with its own role, to that group alone.
    written = {pair for pair in grants(resources["PipeRole"]) if pair[0].startswith("logs:")}
    assert written == {
        ("logs:CreateLogStream", "GetAtt:UpdatesPipeLogGroup.Arn"),
        ("logs:PutLogEvents", "GetAtt:UpdatesPipeLogGroup.Arn"),
    }
    assert written <= LEAST_PRIVILEGE["PipeRole"]


def test_the_http_api_logs_each_request_without_headers(resources):
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["WebhookApiAccessLogGroup", "Arn"]}
    log_format = settings["Format"]
    assert "$context.requestId" in log_format, "API Gateway requires it"
    assert "$context.status" in log_format and "$context.integrationErrorMessage" in log_format
    # Telegram's secret token is a header: no header, no request body of any kind.
    assert "header" not in log_format.lower() and "body" not in log_format.lower()
    assert resources["WebhookApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_a_dead_lettered_update_pages_once(resources):
    """DeadLetterAlarm is the page for a failed update; ExecutionFailuresAlarm counts the failed
    executions that sent no dead letter, so the one failure does not fire both."""
    (failures,) = [m for m in resources["ExecutionFailuresAlarm"]["Properties"]["Metrics"] if m.get("Expression")]
    assert failures["Expression"] == "failed + timedout + aborted - deadlettered"
    (sent,) = [m for m in resources["ExecutionFailuresAlarm"]["Properties"]["Metrics"] if m["Id"] == "deadlettered"]
    assert sent["MetricStat"]["Metric"]["MetricName"] == "NumberOfMessagesSent"
    assert sent["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    readme = README.read_text()
    assert "DeadLetterAlarm is the page" in readme


# --- finding 10: costs and warnings -----------------------------------------------------------------------


def test_tables_use_the_free_aws_owned_key(resources):
    for name, table in of_type(resources, "AWS::DynamoDB::Table").items():
        assert table["Properties"].get("SSESpecification", {}).get("SSEEnabled") in (None, False), name


def test_the_secret_warns_that_editing_its_generation_wipes_it():
    text = TEMPLATE.read_text()
    comment = text[: text.index("  BotSecret:\n")].rsplit("\n\n", 1)[-1]
    assert "GenerateSecretString" in comment and "wiped" in comment


def test_the_readme_names_the_deploying_principals_permissions():
    readme = README.read_text()
    assert "iam:PassRole" in readme
    for action in ("logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies"):
        assert action in readme, action
