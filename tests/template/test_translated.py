"""template.yaml as CloudFormation sees it: translated in-process by the SAM translator, then asserted.

The translation is what `sam deploy` submits (after packaging), including the roles SAM generates for
the functions and the state machine, so least privilege is checked on those and not on the SAM shorthand.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ASL_PATH, load_asl

# Actions that do not support resource-level permissions: AWS requires Resource "*" for them.
STAR_RESOURCE_ACTIONS = frozenset(
    {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    }
)

# Callback-pattern task tokens of service-integration Task states cannot be scoped by IAM (the
# Service Authorization Reference names only activities as their resource): "*" for this role alone.
STAR_RESOURCE_BY_ROLE = {"TurnsFunctionRole": frozenset({"states:SendTaskSuccess", "states:SendTaskFailure"})}

BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
XRAY_WRITE_ONLY = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"

FUNCTIONS = (
    "WebhookFunction",
    "CallAgentFunction",
    "SendReplyFunction",
    "TurnsFunction",
    "DeadLetterReplayFunction",
    "WebhookRegistrationFunction",
)
SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|PRIVATE_?KEY", re.IGNORECASE)


def of_type(resources: dict, type_: str) -> dict:
    return {name: res for name, res in resources.items() if res["Type"] == type_}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def statements(role: dict) -> Iterator[dict]:
    for policy in role["Properties"].get("Policies", []):
        yield from as_list(policy["PolicyDocument"]["Statement"])


def ref_key(value: Any) -> str:
    """A readable, comparable name for a Resource: "*", "Ref:X", "GetAtt:X.Arn" or the literal string."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return f"Ref:{value['Ref']}"
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return "GetAtt:" + (".".join(target) if isinstance(target, list) else target)
    return json.dumps(value, sort_keys=True)


def is_star_only(statement: dict) -> bool:
    return as_list(statement.get("Resource")) == ["*"] and set(as_list(statement["Action"])) <= STAR_RESOURCE_ACTIONS


def grants(role: dict) -> set[tuple[str, str]]:
    """(action, resource) pairs a role's inline policies allow, without the statements AWS requires "*" for."""
    pairs = set()
    for statement in statements(role):
        if statement["Effect"] != "Allow" or is_star_only(statement):
            continue
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                pairs.add((action, ref_key(resource)))
    return pairs


def role_of(resources: dict, logical_id: str) -> str:
    props = resources[logical_id]["Properties"]
    role = props.get("RoleArn", props.get("Role"))
    assert set(role) == {"Fn::GetAtt"}, f"{logical_id} uses a role from outside the template: {role}"
    return role["Fn::GetAtt"][0]


# --- IAM -------------------------------------------------------------------------------------------


def test_every_role_is_known(resources):
    # A new role must be added to the least-privilege table below, so it cannot slip in unchecked.
    assert set(of_type(resources, "AWS::IAM::Role")) == {
        "WebhookFunctionRole",
        "CallAgentFunctionRole",
        "SendReplyFunctionRole",
        "TurnsFunctionRole",
        "DeadLetterReplayFunctionRole",
        "WebhookRegistrationFunctionRole",
        "RelayStateMachineRole",
        "PipeRole",
    }
    assert not of_type(resources, "AWS::IAM::Policy"), "policies outside roles escape these checks"
    assert not of_type(resources, "AWS::IAM::ManagedPolicy"), "policies outside roles escape these checks"


def test_roles_list_explicit_actions(resources):
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for statement in statements(role):
            assert "NotAction" not in statement, f"{name}: NotAction grants everything else"
            assert "NotResource" not in statement, f"{name}: NotResource grants everything else"
            for action in as_list(statement["Action"]):
                assert isinstance(action, str) and ":" in action, f"{name}: action {action!r}"
                assert "*" not in action, f"{name}: wildcard action {action!r}"


def test_star_resource_only_where_aws_requires_it(resources):
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for statement in statements(role):
            if "*" in as_list(statement["Resource"]):
                extra = (
                    set(as_list(statement["Action"])) - STAR_RESOURCE_ACTIONS - STAR_RESOURCE_BY_ROLE.get(name, set())
                )
                assert not extra, f"{name}: Resource '*' for {sorted(extra)}"


def test_managed_policies_are_pinned(resources):
    attached = {
        name: role["Properties"].get("ManagedPolicyArns", [])
        for name, role in of_type(resources, "AWS::IAM::Role").items()
    }
    assert attached == {
        "WebhookFunctionRole": [BASIC_EXECUTION, XRAY_WRITE_ONLY],
        "CallAgentFunctionRole": [BASIC_EXECUTION, XRAY_WRITE_ONLY],
        "SendReplyFunctionRole": [BASIC_EXECUTION, XRAY_WRITE_ONLY],
        "TurnsFunctionRole": [BASIC_EXECUTION, XRAY_WRITE_ONLY],
        "DeadLetterReplayFunctionRole": [BASIC_EXECUTION, XRAY_WRITE_ONLY],
        "WebhookRegistrationFunctionRole": [BASIC_EXECUTION, XRAY_WRITE_ONLY],
        # SAM adds the X-Ray policy because Tracing is enabled.
        "RelayStateMachineRole": [XRAY_WRITE_ONLY],
        "PipeRole": [],
    }


def test_each_function_and_the_state_machine_run_as_their_own_role(resources):
    assert {name: role_of(resources, name) for name in (*FUNCTIONS, "RelayStateMachine", "UpdatesPipe")} == {
        "WebhookFunction": "WebhookFunctionRole",
        "CallAgentFunction": "CallAgentFunctionRole",
        "SendReplyFunction": "SendReplyFunctionRole",
        "TurnsFunction": "TurnsFunctionRole",
        "DeadLetterReplayFunction": "DeadLetterReplayFunctionRole",
        "WebhookRegistrationFunction": "WebhookRegistrationFunctionRole",
        "RelayStateMachine": "RelayStateMachineRole",
        "UpdatesPipe": "PipeRole",
    }


def test_trust_policies(resources):
    expected = {
        "WebhookFunctionRole": "lambda.amazonaws.com",
        "CallAgentFunctionRole": "lambda.amazonaws.com",
        "SendReplyFunctionRole": "lambda.amazonaws.com",
        "TurnsFunctionRole": "lambda.amazonaws.com",
        "DeadLetterReplayFunctionRole": "lambda.amazonaws.com",
        "WebhookRegistrationFunctionRole": "lambda.amazonaws.com",
        "RelayStateMachineRole": "states.amazonaws.com",
        "PipeRole": "pipes.amazonaws.com",
    }
    for name, service in expected.items():
        trust = as_list(resources[name]["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        assert [as_list(s["Principal"]["Service"]) for s in trust] == [[service]], name
        assert all(as_list(s["Action"]) == ["sts:AssumeRole"] for s in trust), name
    # Confused deputy: only pipes of this account may assume the pipe's role.
    (pipe_trust,) = resources["PipeRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert pipe_trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


LEAST_PRIVILEGE = {
    "WebhookFunctionRole": {
        ("sqs:SendMessage", "GetAtt:UpdatesQueue.Arn"),
        ("secretsmanager:GetSecretValue", "Ref:BotSecret"),
        # register_queued: the message's place in its conversation, before it is enqueued.
        ("dynamodb:PutItem", "GetAtt:TurnsTable.Arn"),
    },
    "CallAgentFunctionRole": {
        ("secretsmanager:GetSecretValue", "Ref:BotSecret"),
        ("dynamodb:UpdateItem", "GetAtt:TurnsTable.Arn"),  # renew_lease
        # attachments.py: store the turn's files, sign the agent's URLs, find an earlier attempt's object
        ("s3:PutObject", '{"Fn::Sub": "${FilesBucket.Arn}/files/*"}'),
        ("s3:GetObject", '{"Fn::Sub": "${FilesBucket.Arn}/files/*"}'),
        ("s3:ListBucket", "GetAtt:FilesBucket.Arn"),  # HeadObject answers 404, not 403, for a new file
    },
    "SendReplyFunctionRole": {
        ("secretsmanager:GetSecretValue", "Ref:BotSecret"),
        ("dynamodb:GetItem", "GetAtt:UpdatesTable.Arn"),
        ("dynamodb:UpdateItem", "GetAtt:UpdatesTable.Arn"),
        ("dynamodb:UpdateItem", "GetAtt:TurnsTable.Arn"),  # renew_lease
    },
    # WaitForTurn, the finish tasks and the rule's release: the turns table, the claims' outcomes,
    # and the parked task tokens. No secret: it never talks to Telegram or the agent.
    "TurnsFunctionRole": {
        ("dynamodb:GetItem", "GetAtt:TurnsTable.Arn"),
        ("dynamodb:PutItem", "GetAtt:TurnsTable.Arn"),
        ("dynamodb:UpdateItem", "GetAtt:TurnsTable.Arn"),
        ("dynamodb:DeleteItem", "GetAtt:TurnsTable.Arn"),
        ("dynamodb:Query", "GetAtt:TurnsTable.Arn"),
        ("dynamodb:GetItem", "GetAtt:UpdatesTable.Arn"),
        ("dynamodb:UpdateItem", "GetAtt:UpdatesTable.Arn"),
        ("states:SendTaskSuccess", "*"),
        ("states:SendTaskFailure", "*"),
    },
    # Moves due dead letters back to the updates queue and releases their parked claims; no secret.
    "DeadLetterReplayFunctionRole": {
        ("sqs:ReceiveMessage", "GetAtt:DeadLetterQueue.Arn"),
        ("sqs:ChangeMessageVisibility", "GetAtt:DeadLetterQueue.Arn"),
        ("sqs:DeleteMessage", "GetAtt:DeadLetterQueue.Arn"),
        ("sqs:SendMessage", "GetAtt:UpdatesQueue.Arn"),
        ("dynamodb:GetItem", "GetAtt:UpdatesTable.Arn"),
        ("dynamodb:UpdateItem", "GetAtt:UpdatesTable.Arn"),
    },
    # Reads the bot token and webhook secret to call setWebhook; nothing else.
    "WebhookRegistrationFunctionRole": {
        ("secretsmanager:GetSecretValue", "Ref:BotSecret"),
    },
    "RelayStateMachineRole": {
        ("lambda:InvokeFunction", "GetAtt:CallAgentFunction.Arn"),
        ("lambda:InvokeFunction", "GetAtt:SendReplyFunction.Arn"),
        ("lambda:InvokeFunction", "GetAtt:TurnsFunction.Arn"),
        ("dynamodb:PutItem", "GetAtt:UpdatesTable.Arn"),
        ("dynamodb:UpdateItem", "GetAtt:UpdatesTable.Arn"),
        ("sqs:SendMessage", "GetAtt:DeadLetterQueue.Arn"),
    },
    "PipeRole": {
        ("sqs:ReceiveMessage", "GetAtt:UpdatesQueue.Arn"),
        ("sqs:DeleteMessage", "GetAtt:UpdatesQueue.Arn"),
        ("sqs:GetQueueAttributes", "GetAtt:UpdatesQueue.Arn"),
        ("states:StartExecution", "Ref:RelayStateMachine"),
        # Its LogConfiguration's log group (ERROR level).
        ("logs:CreateLogStream", "GetAtt:UpdatesPipeLogGroup.Arn"),
        ("logs:PutLogEvents", "GetAtt:UpdatesPipeLogGroup.Arn"),
    },
}


@pytest.mark.parametrize("role", sorted(LEAST_PRIVILEGE))
def test_least_privilege(resources, role):
    assert grants(resources[role]) == LEAST_PRIVILEGE[role]


def test_only_the_state_machine_role_uses_star_resources(resources):
    star_roles = {
        name
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        if any(is_star_only(statement) for statement in statements(role))
    }
    assert star_roles == {"RelayStateMachineRole"}


# Service integration of a Task -> the IAM action it needs, and the parameter naming its target.
INTEGRATIONS = {
    "arn:aws:states:::lambda:invoke": ("lambda:InvokeFunction", "FunctionName"),
    "arn:aws:states:::lambda:invoke.waitForTaskToken": ("lambda:InvokeFunction", "FunctionName"),
    "arn:aws:states:::dynamodb:putItem": ("dynamodb:PutItem", "TableName"),
    "arn:aws:states:::dynamodb:updateItem": ("dynamodb:UpdateItem", "TableName"),
    "arn:aws:states:::sqs:sendMessage": ("sqs:SendMessage", "QueueUrl"),
}


def test_state_machine_role_covers_every_task_of_the_asl(resources):
    substitutions = resources["RelayStateMachine"]["Properties"]["DefinitionSubstitutions"]
    needed = set()
    for name, state in load_asl()["States"].items():
        if state["Type"] != "Task":
            continue
        assert state["Resource"] in INTEGRATIONS, f"{name}: integration {state['Resource']} has no IAM mapping here"
        action, parameter = INTEGRATIONS[state["Resource"]]
        placeholder = re.fullmatch(r"\$\{(\w+)\}", state["Parameters"][parameter])
        assert placeholder, f"{name}: {parameter} is not a DefinitionSubstitutions placeholder"
        target = substitutions[placeholder.group(1)]
        # Ref of a table or queue is its name or URL; the policy names its ARN.
        resource = ref_key({"Fn::GetAtt": [target["Ref"], "Arn"]} if "Ref" in target else target)
        needed.add((action, resource))
    assert needed == LEAST_PRIVILEGE["RelayStateMachineRole"]


# --- pipe, queues, table -----------------------------------------------------------------------------


def test_pipe(resources):
    pipes = of_type(resources, "AWS::Pipes::Pipe")
    assert list(pipes) == ["UpdatesPipe"]
    props = pipes["UpdatesPipe"]["Properties"]
    assert props["Source"] == {"Fn::GetAtt": ["UpdatesQueue", "Arn"]}
    assert props["SourceParameters"]["SqsQueueParameters"]["BatchSize"] == 1
    assert props["Target"] == {"Ref": "RelayStateMachine"}
    assert props["TargetParameters"]["StepFunctionStateMachineParameters"]["InvocationType"] == "FIRE_AND_FORGET"


def test_the_pipe_parses_the_body_for_the_workflow(resources):
    template = resources["UpdatesPipe"]["Properties"]["TargetParameters"]["InputTemplate"]
    assert template == '{"update": <$.body>, "group_id": "<$.attributes.MessageGroupId>"}'
    # Filled in as Pipes do (a JSON body unquoted, as an object; a quoted placeholder as a string), it is
    # the object ClaimUpdate reads at $[0] and ClaimFailed at $$.Execution.Input[0].
    record = json.loads((ASL_PATH.parents[1] / "events" / "aws" / "pipe_input.json").read_text())[0]
    filled = template.replace("<$.body>", record["body"]).replace(
        "<$.attributes.MessageGroupId>", record["attributes"]["MessageGroupId"]
    )
    assert json.loads(filled) == {
        "update": json.loads(record["body"]),
        "group_id": record["attributes"]["MessageGroupId"],
    }
    reads = set(re.findall(r"\$\$?\.(?:Execution\.Input\[0\]\.)?(update|group_id)\b", ASL_PATH.read_text()))
    assert reads == {"update", "group_id"}


def test_queues(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    assert set(queues) == {"UpdatesQueue", "DeadLetterQueue"}
    for name, queue in queues.items():
        props = queue["Properties"]
        assert props["FifoQueue"] is True, name
        assert props["SqsManagedSseEnabled"] is True, name
        assert props["ContentBasedDeduplication"] is False, f"{name}: dedupe is by update_id, not by body"
    redrive = queues["UpdatesQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert 1 <= int(redrive["maxReceiveCount"]) <= 10
    assert "RedrivePolicy" not in queues["DeadLetterQueue"]["Properties"]
    assert int(queues["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]) == 1209600


def test_dedupe_records_outlive_the_dead_letter_queue(resources):
    # A replay from the DLQ must still find the dedupe record, or an answered update is answered twice.
    ttl = int(resources["WebhookFunction"]["Properties"]["Environment"]["Variables"]["DEDUPE_TTL_SECONDS"])
    dlq_retention = int(resources["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"])
    assert ttl > dlq_retention


def test_table(resources):
    tables = of_type(resources, "AWS::DynamoDB::Table")
    assert set(tables) == {"UpdatesTable", "TurnsTable"}  # TurnsTable: test_turns.py
    props = tables["UpdatesTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # The ASL writes items keyed "pk".
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]


# --- state machine -------------------------------------------------------------------------------------


def test_state_machine(resources):
    machines = of_type(resources, "AWS::StepFunctions::StateMachine")
    assert list(machines) == ["RelayStateMachine"]
    props = machines["RelayStateMachine"]["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] in {"ALL", "ERROR", "FATAL"}
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["RelayStateMachineLogGroup", "Arn"]}}}
    ]
    assert "RelayStateMachineLogGroup" in of_type(resources, "AWS::Logs::LogGroup")


def test_definition_substitutions_match_the_asl_placeholders(resources):
    placeholders = set(re.findall(r"\$\{([^}]*)\}", ASL_PATH.read_text()))
    substitutions = resources["RelayStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert placeholders, "the ASL has no ${...} placeholders: the substitution check would be empty"
    assert sorted(set(substitutions) - placeholders) == [], "substitutions the ASL does not use"
    assert sorted(placeholders - set(substitutions)) == [], "placeholders the template does not substitute"
    assert substitutions == {
        "UpdatesTableName": {"Ref": "UpdatesTable"},
        "CallAgentFunctionArn": {"Fn::GetAtt": ["CallAgentFunction", "Arn"]},
        "SendReplyFunctionArn": {"Fn::GetAtt": ["SendReplyFunction", "Arn"]},
        "TurnsFunctionArn": {"Fn::GetAtt": ["TurnsFunction", "Arn"]},
        "DeadLetterQueueUrl": {"Ref": "DeadLetterQueue"},
    }


# --- functions, parameters, the secret ------------------------------------------------------------------


def test_functions_runtime_and_architecture(resources):
    functions = of_type(resources, "AWS::Lambda::Function")
    assert set(functions) == set(FUNCTIONS)
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["TracingConfig"] == {"Mode": "Active"}, name


def test_no_secret_in_function_environments(resources):
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert variables.get("SECRET_ARN") == {"Ref": "BotSecret"}, f"{name}: SECRET_ARN must reference the secret"
        for var, value in variables.items():
            assert "{{resolve:" not in json.dumps(value), f"{name}.{var}: a dynamic reference puts the value in"
            if not SECRET_LIKE.search(var):
                continue
            if var.endswith("_ARN"):
                assert value == {"Ref": "BotSecret"}, f"{name}.{var} must be the secret's ARN"
            else:
                # Settings about the secret (e.g. SECRET_MAX_AGE_SECONDS) may carry a number, nothing else.
                assert var.endswith("_SECONDS") and isinstance(value, str) and value.isdigit(), f"{name}.{var}"


def test_no_secret_parameters(sam_template):
    for name, parameter in sam_template.get("Parameters", {}).items():
        assert not SECRET_LIKE.search(name), f"parameter {name}: secrets live in BotSecret, never in parameters"
        assert not parameter.get("NoEcho"), f"parameter {name} is NoEcho: a secret passed as a parameter"


def test_secret_is_generated(resources):
    secrets = of_type(resources, "AWS::SecretsManager::Secret")
    assert list(secrets) == ["BotSecret"]
    props = secrets["BotSecret"]["Properties"]
    assert "SecretString" not in props, "a literal secret value in the template"
    generated = props["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "webhook_secret"
    # The other fields are filled in after deploy: the template holds only empty placeholders.
    assert json.loads(generated["SecretStringTemplate"]) == {"bot_token": "", "agent_token": ""}


# --- HTTP API, outputs -------------------------------------------------------------------------------------


def test_webhook_route(resources):
    apis = of_type(resources, "AWS::ApiGatewayV2::Api")
    assert list(apis) == ["WebhookApi"]
    paths = apis["WebhookApi"]["Properties"]["Body"]["paths"]
    assert set(paths) == {"/telegram/webhook"}
    assert set(paths["/telegram/webhook"]) == {"post"}
    integration = paths["/telegram/webhook"]["post"]["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy"
    assert integration["payloadFormatVersion"] == "2.0"
    assert "${WebhookFunction.Arn}" in integration["uri"]["Fn::Sub"]
    permissions = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert [p["FunctionName"] for p in permissions] == [{"Ref": "WebhookFunction"}]
    assert permissions[0]["SourceArn"]["Fn::Sub"][0].endswith("/POST/telegram/webhook")


def test_outputs(cfn):
    assert {"WebhookUrl", "UpdatesQueueUrl", "DeadLetterQueueUrl", "StateMachineArn", "StateMachineConsoleUrl"} <= set(
        cfn["Outputs"]
    )
    assert cfn["Outputs"]["WebhookUrl"]["Value"]["Fn::Sub"].endswith("/telegram/webhook")
    assert cfn["Outputs"]["StateMachineArn"]["Value"] == {"Ref": "RelayStateMachine"}
    assert "${RelayStateMachine}" in cfn["Outputs"]["StateMachineConsoleUrl"]["Value"]["Fn::Sub"]


# --- the files bucket (README: Attachments) ---------------------------------------------------------


def test_the_files_bucket_is_private_encrypted_and_expires_its_objects(resources):
    (bucket,) = of_type(resources, "AWS::S3::Bucket").values()
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]  # no ACLs
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == {"Ref": "FileRetentionDays"}
    assert "Prefix" not in rule and "TagFilters" not in rule  # every object expires


def test_the_files_bucket_refuses_plain_http(resources):
    (policy,) = of_type(resources, "AWS::S3::BucketPolicy").values()
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {ref_key(resource) for resource in deny["Resource"]} == {
        "GetAtt:FilesBucket.Arn",
        '{"Fn::Sub": "${FilesBucket.Arn}/*"}',
    }


def test_only_call_agent_touches_the_files_bucket(resources):
    roles = {
        name
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        if any("FilesBucket" in resource for _, resource in grants(role))
    }
    assert roles == {"CallAgentFunctionRole"}
    env = resources["CallAgentFunction"]["Properties"]["Environment"]["Variables"]
    assert env["FILES_BUCKET_NAME"] == {"Ref": "FilesBucket"} and env["FILE_URL_MINUTES"] == {"Ref": "FileUrlMinutes"}


def test_send_reply_is_in_call_agents_network(resources):
    """SendReply downloads the agent's files (reply_files.py): a URL the agent's answer gives must be
    reachable from where SendReply runs as from where CallAgent ran. Neither is in a VPC today; if
    one gets a VpcConfig, the other needs the same."""
    call_agent, send_reply = (resources[name]["Properties"] for name in ("CallAgentFunction", "SendReplyFunction"))
    assert call_agent.get("VpcConfig") == send_reply.get("VpcConfig")
