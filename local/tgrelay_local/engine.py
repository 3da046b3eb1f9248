"""The whole tgrelay workflow on one machine: no AWS account, no Docker.

moto (in-process) is the AWS: SQS, DynamoDB, Secrets Manager and the ASL interpreter.
Everything is created from template.yaml and statemachine/relay.asl.json; the Lambda
tasks run the real handlers (moto_seams.py), each in its own environment variables
(lambda_environment.py); a poller plays the pipe (pipe.py); the
webhook is served on loopback (http_api.py); a fake Telegram and an echo agent stand in
for the real ones unless real URLs or a real bot token are given.
"""

import contextlib
import errno
import importlib
import json
import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from unittest import mock

import boto3
import httpx
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import base as powertools_metrics_base
from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch as powertools_emf
from moto import mock_aws

from tgrelay_local import lambda_environment
from tgrelay_local.clock import RetryClock
from tgrelay_local.fakes import FakeAgent, FakeTelegram
from tgrelay_local.http_api import HttpApi
from tgrelay_local.moto_seams import Handler, LocalFunction, Seams
from tgrelay_local.names import ACCOUNT, DEFAULT_WEBHOOK_SECRET, FAKE_BOT_TOKEN, REGION, SECRET_HEADER, STACK
from tgrelay_local.pipe import PipePoller
from tgrelay_local.rules import ExecutionStatusRules, Schedules, rate_seconds
from tgrelay_local.template import ROOT, Template

__all__ = ["ACCOUNT", "DEFAULT_WEBHOOK_SECRET", "FAKE_BOT_TOKEN", "REGION", "SECRET_HEADER", "STACK", "LocalRelay"]

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef, HistoryEventTypeDef


# Credentials moto accepts; they only keep botocore from looking for real ones.
_AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# The machine's, not configuration: Lambda has its own PATH, HOME, TZ, LANG (and no proxy).
# Lambda sets these and a function's configuration cannot (AWS Lambda Developer Guide, "Defined
# runtime environment variables": the reserved ones).
LAMBDA_RESERVED_VARIABLES = frozenset(
    {
        *("_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV"),
        *("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"),
        *("AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME"),
        *("AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
        *("AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ"),
    }
)
# The machine's, not configuration, passed through: how it reaches the network (a real Bot API or
# agent behind a proxy, a private CA) and where it runs programs and keeps temporary files.
_HOST_VARIABLES = (
    *("PATH", "TMPDIR", "LANG", "LC_ALL"),
    *(name for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for name in (base, base.lower())),
    *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"),
)


# The Powertools modules whose functions print CloudWatch EMF lines: Metrics' flush and single_metric.
POWERTOOLS_PRINTING_MODULES = (powertools_emf, powertools_metrics_base)


def metrics_to(stream: IO[str]) -> contextlib.ExitStack:
    """While entered, Powertools metrics (CloudWatch EMF JSON lines) go to `stream`, not stdout.

    Powertools' Metrics and single_metric flush with the builtin print() and have no stream
    setting; a module global named print wins over the builtin (tests/unit/test_moto_seams.py)."""
    stack = contextlib.ExitStack()
    for module in POWERTOOLS_PRINTING_MODULES:
        stack.enter_context(
            mock.patch.object(module, "print", lambda *values: print(*values, file=stream, flush=True), create=True)
        )
    return stack


class PerThreadDict(MutableMapping):
    """A dict each thread sees its own contents of."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def _contents(self) -> dict:
        if not hasattr(self._local, "contents"):
            self._local.contents = {}
        return self._local.contents

    def __getitem__(self, key: Any) -> Any:
        return self._contents[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._contents[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._contents[key]

    def __iter__(self) -> Iterator:
        return iter(list(self._contents))

    def __len__(self) -> int:
        return len(self._contents)


METRICS_SETS = ("metric_set", "dimension_set", "metadata_set")


def metrics_per_invocation(handler_modules: list) -> contextlib.ExitStack:
    """While entered, each thread - each invocation the engine runs - has its own Powertools metric,
    dimension and metadata sets. Powertools keeps them in class-level dicts shared by every Metrics
    instance, which is right on Lambda (one invocation per environment at a time) and wrong for the
    engine's concurrent invocations in one process: two flushing at once crashed a handler
    ("dictionary changed size during iteration", "Must contain at least one metric"; the webhook
    then answered 500 and a workflow function failed with an error no Retry names)."""
    stack = contextlib.ExitStack()
    shared = {name: PerThreadDict() for name in METRICS_SETS}
    for module in handler_modules:
        metrics = getattr(module, "metrics", None)
        if not isinstance(metrics, Metrics):
            continue
        for owner in (metrics, metrics.provider):
            for name in METRICS_SETS:
                stack.enter_context(mock.patch.object(owner, name, shared[name]))
    return stack


def init_function(module_name: str, handler_name: str) -> tuple[Any, Handler | None, dict | None]:
    """A function's init, as the Python runtime (awslambdaric's bootstrap) does it: import the
    handler's module and find the handler; here also check its declared settings again (another
    function may have imported the module already: webhook imports turns). Returns (module,
    handler, None), or (module or None, None, the error payload Lambda answers every invocation
    with): errorType Runtime.ImportModuleError, Runtime.UserCodeSyntaxError,
    Runtime.HandlerNotFound, or the exception's class name (e.g. ConfigurationError)."""
    module = None
    try:
        module = importlib.import_module(module_name)
        module.SETTINGS.check()
    except ImportError as error:
        return None, None, _init_error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}")
    except SyntaxError as error:
        return (
            None,
            None,
            _init_error("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {error}"),
        )
    except Exception as error:
        return module, None, _init_error(type(error).__name__, str(error), traceback.format_tb(error.__traceback__))
    handler = getattr(module, handler_name, None)
    if handler is None:
        return (
            module,
            None,
            _init_error("Runtime.HandlerNotFound", f"Handler '{handler_name}' missing on module '{module_name}'"),
        )
    return module, handler, None


def _init_error(error_type: str, message: str, stack_trace: list[str] | None = None) -> dict:
    return {"errorMessage": message, "errorType": error_type, "stackTrace": stack_trace or []}


class PortInUse(OSError):
    """A port the engine was asked to listen on is taken. `role`: "webhook", "telegram",
    "agent" or "aws" (the server that could not bind)."""

    def __init__(self, port: int, role: str):
        super().__init__(errno.EADDRINUSE, f"port {port} ({role}) is already in use")
        self.port, self.role = port, role


@contextlib.contextmanager
def _binding(port: int, role: str) -> Iterator[None]:
    """Turn "address already in use" while a server binds `port` into PortInUse."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(port, role) from None
        raise


def _check_free(port: int, role: str) -> None:
    """Fail with PortInUse now if `port` is taken: for servers that bind in a thread of their own
    (moto's), where the error would not reach the caller."""
    if port:
        with _binding(port, role), socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


class LocalRelay:
    """Start with `with LocalRelay() as relay:`; post updates with `relay.post_update`.

    Raises PortInUse when a port it was given is taken."""

    def __init__(
        self,
        *,
        clock: RetryClock | None = None,
        agent_url: str | None = None,
        agent_token: str = "",
        bot_token: str | None = None,
        telegram_api_url: str | None = None,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        webhook_port: int = 0,
        telegram_port: int = 0,
        agent_port: int = 0,
        parameters: dict[str, str] | None = None,
        log_path: Path | None = None,
        aws_port: int | None = None,
    ):
        self.clock = clock or RetryClock("real")
        self.agent_token = agent_token
        self.bot_token = bot_token or FAKE_BOT_TOKEN
        self.webhook_secret = webhook_secret
        self.log_path = log_path
        self.telegram: FakeTelegram | None = None
        if not telegram_api_url:
            with _binding(telegram_port, "telegram"):
                self.telegram = FakeTelegram(self.bot_token, telegram_port)
            telegram_api_url = self.telegram.url
        self.telegram_api_url = telegram_api_url
        self.agent: FakeAgent | None = None
        if not agent_url:
            try:
                with _binding(agent_port, "agent"):
                    self.agent = FakeAgent(agent_token, agent_port)
            except PortInUse:
                if self.telegram:  # bound, not serving yet: release its port
                    self.telegram.server.server_close()
                raise
            agent_url = f"{self.agent.url}/agent"
        self.agent_url = agent_url
        given = {**(parameters or {}), "AgentUrl": self.agent_url}
        if self.agent is not None:
            # The echo agent keeps its files behind its token (FakeAgent.file_url).
            given.setdefault("AgentFilesUrl", f"{self.agent.url}/files/")
        self.template = Template(parameters=given)
        self._bot_username_given = "BotUsername" in (parameters or {})
        self.webhook_port = webhook_port
        self.aws_port = aws_port
        self.aws_endpoint: str | None = None
        self.s3_endpoint = ""
        self._saved_env: dict[str, str | None] = {}
        self._finished: set[str] = set()
        self.functions_by_id: dict[str, LocalFunction] = {}
        # (status, body) of every webhook answer, in order: `tgrelay local` shows the ones that
        # did not enqueue the update.
        self.webhook_answers: list[tuple[int, str]] = []
        self._http = httpx.Client()  # one connection pool for every POST to the webhook
        self._stack = contextlib.ExitStack()

    # -- lifecycle --------------------------------------------------------------------

    def __enter__(self) -> "LocalRelay":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise

    def _start(self) -> None:
        self._refuse_reserved_variables()
        if self.aws_port:  # moto's server binds in a thread of its own: an error there would hang
            _check_free(self.aws_port, "aws")
        for fake in (self.telegram, self.agent):
            if fake:
                fake.start()
                self._stack.callback(fake.stop)
        self._set_env(_AWS_ENV)
        self._stack.callback(self._restore_env)
        # Before any boto3 session exists: botocore keeps the os.environ it first sees (its config
        # chain), so the functions' clients then read their own AWS_* settings, not the process's.
        self._stack.enter_context(lambda_environment.installed())
        self._stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)

        # moto over HTTP on loopback: presigned URLs of the files bucket must be fetchable by the agent.
        self._serve_aws(self.aws_port or 0)
        self._learn_bot_username()
        self._create_secret()
        self._create_queues()
        self._create_tables()
        self._create_buckets()
        functions = self._load_functions()
        self._create_state_machine()
        self.seams = self._stack.enter_context(Seams(functions, self.clock))

        pipe_id, pipe = self.template.resource("AWS::Pipes::Pipe")
        source_queue = pipe["Source"]["Fn::GetAtt"][0]
        self.pipe = PipePoller(
            self.sqs,
            self.sfn,
            queue_url=self.template.refs[source_queue],
            queue_arn=self.template.resolve(pipe["Source"]),
            state_machine_arn=self.template.resolve(pipe["Target"]),
            batch_size=int(pipe["SourceParameters"]["SqsQueueParameters"]["BatchSize"]),
            region=REGION,
            input_template=pipe.get("TargetParameters", {}).get("InputTemplate"),
        )
        self.pipe.start()
        self._stack.callback(self.pipe.stop)
        self.rules = ExecutionStatusRules(
            self.sfn, self._execution_rules(functions), self.pipe.started, REGION, ACCOUNT
        )
        self.rules.start()
        self._stack.callback(self.rules.stop)
        self.schedules = Schedules(self._schedules(functions), self.clock, REGION, ACCOUNT)
        self.schedules.start()
        self._stack.callback(self.schedules.stop)
        self._start_webhook(functions)

    def _serve_aws(self, aws_port: int) -> None:
        """Serve the same in-process AWS over HTTP, so operator commands in another shell see it
        (`aws_endpoint`, when an aws_port was given) and S3's presigned URLs, which the agent
        fetches, point somewhere real (`s3_endpoint`: S3 clients use it, AWS_ENDPOINT_URL_S3)."""
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO on stderr: an access log nobody asked for.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=aws_port, verbose=False)
        server.start()
        self._stack.callback(server.stop)
        host, port = server.get_host_and_port()
        self.s3_endpoint = f"http://{host}:{port}"
        if self.aws_port is not None:
            self.aws_endpoint = self.s3_endpoint

    def stop(self) -> None:
        with contextlib.suppress(TimeoutError):
            # moto answers from the network once its mock stops: let executions finish first.
            self.wait_idle(timeout=30)
        self._stack.close()
        self._http.close()

    def _learn_bot_username(self) -> None:
        """Unless BotUsername was given: the bot's own, from getMe (what an operator would look up)."""
        if self._bot_username_given:
            return
        try:
            me = httpx.post(f"{self.telegram_api_url}/bot{self.bot_token}/getMe", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return
        username = (me.get("result") or {}).get("username") if me.get("ok") else None
        if isinstance(username, str):
            self.template.parameters["BotUsername"] = self.template.refs["BotUsername"] = username

    # -- resources from template.yaml -------------------------------------------------

    def _create_secret(self) -> None:
        logical_id, props = self.template.resource("AWS::SecretsManager::Secret")
        generate = props["GenerateSecretString"]
        value = json.loads(generate["SecretStringTemplate"])
        value.update({"bot_token": self.bot_token, "agent_token": self.agent_token})
        value[generate["GenerateStringKey"]] = self.webhook_secret
        client = boto3.client("secretsmanager", region_name=REGION)
        arn = client.create_secret(Name=f"{STACK}-{logical_id}", SecretString=json.dumps(value))["ARN"]
        self.template.bind(logical_id, arn)

    def _create_queues(self) -> None:
        queues = self.template.resources("AWS::SQS::Queue")
        # Dead-letter targets first: a redrive policy names an existing queue.
        for logical_id, props in sorted(queues.items(), key=lambda item: "RedrivePolicy" in item[1]):
            attributes: dict[QueueAttributeNameType, str] = {
                "FifoQueue": str(props.get("FifoQueue", False)).lower(),
                "ContentBasedDeduplication": str(props.get("ContentBasedDeduplication", False)).lower(),
            }
            for name in ("VisibilityTimeout", "MessageRetentionPeriod"):
                if name in props:
                    attributes[name] = str(props[name])
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(self.template.resolve(props["RedrivePolicy"]))
            suffix = ".fifo" if props.get("FifoQueue") else ""
            url = self.sqs.create_queue(QueueName=f"{STACK}-{logical_id}{suffix}", Attributes=attributes)["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.template.bind(logical_id, url, Arn=arn, QueueName=arn.rsplit(":", 1)[1])

    def _create_tables(self) -> None:
        for logical_id, props in self.template.resources("AWS::DynamoDB::Table").items():
            name = f"{STACK}-{logical_id}"
            table = self.dynamodb.create_table(
                TableName=name,
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
                BillingMode=props["BillingMode"],
            )["TableDescription"]
            if "TimeToLiveSpecification" in props:
                self.dynamodb.update_time_to_live(
                    TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
                )
            self.template.bind(logical_id, name, Arn=table["TableArn"])
        # The claims table, which the workflow's ClaimUpdate writes.
        self.table_name = self.template.resolve(
            self.template.resource("AWS::Serverless::StateMachine")[1]["DefinitionSubstitutions"]["UpdatesTableName"]
        )

    def _create_buckets(self) -> None:
        """Every S3 bucket, with its encryption, public access block and lifecycle from the template."""
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=self.s3_endpoint)
        for logical_id, props in self.template.resources("AWS::S3::Bucket").items():
            name = f"{STACK}-{logical_id}".lower()
            s3.create_bucket(Bucket=name)
            s3.put_bucket_encryption(
                Bucket=name,
                # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                    ]
                },
            )
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
            rules = self.template.resolve(props["LifecycleConfiguration"]["Rules"])
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={
                    "Rules": [
                        {
                            "ID": rule["Id"],
                            "Status": rule["Status"],
                            "Filter": {"Prefix": ""},
                            "Expiration": {"Days": int(rule["ExpirationInDays"])},
                            "AbortIncompleteMultipartUpload": {
                                "DaysAfterInitiation": int(
                                    rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
                                )
                            },
                        }
                        for rule in rules
                    ]
                },
            )
            self.template.bind(logical_id, name, Arn=f"arn:aws:s3:::{name}")
        self.s3 = s3

    def _load_functions(self) -> dict[str, LocalFunction]:
        """Bind every function, give each its own environment (the template's variables, Globals
        merged, and Lambda's), import its handler module and check its settings in it (init)."""
        function_ids = list(self.template.resources("AWS::Serverless::Function"))
        for logical_id in function_ids:
            name = f"{STACK}-{logical_id}"
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            self.template.bind(logical_id, name, Arn=arn)
        self._reset_function_caches()

        functions: dict[str, LocalFunction] = {}
        handler_modules = []
        self.webhook_function: LocalFunction | None = None
        for logical_id in function_ids:
            props = self.template.function_properties(logical_id)
            environment = self._function_environment(logical_id, props)
            module_name, handler_name = props["Handler"].rsplit(".", 1)
            with lambda_environment.running_as(environment):
                module, handler, init_error = init_function(module_name, handler_name)
            if module is not None:
                handler_modules.append(module)
            function = LocalFunction(
                name=self.template.refs[logical_id],
                arn=self.template.attributes[(logical_id, "Arn")],
                handler=handler,
                memory_mb=int(props.get("MemorySize", 128)),
                timeout_s=int(props.get("Timeout", 3)),
                environment=environment,
                init_error=init_error,
            )
            self.functions_by_id[logical_id] = function
            functions[function.arn] = functions[function.name] = function
            for event in props.get("Events", {}).values():
                if event["Type"] == "HttpApi":
                    self.webhook_function = function
                    self.webhook_route = (event["Properties"]["Path"], event["Properties"]["Method"])
        self._redirect_function_logs(handler_modules)
        self._stack.enter_context(metrics_per_invocation(handler_modules))
        return functions

    def _refuse_reserved_variables(self) -> None:
        """ValueError naming a template variable Lambda reserves: a deploy refuses it, and here it
        would hide the value Lambda gives (AWS Lambda Developer Guide, "Reserved environment variables")."""
        for logical_id in self.template.resources("AWS::Serverless::Function"):
            variables = self.template.function_properties(logical_id)["Environment"]["Variables"]
            reserved = sorted(set(variables) & LAMBDA_RESERVED_VARIABLES)
            if reserved:
                raise ValueError(f"{logical_id} sets {', '.join(reserved)}, which Lambda reserves")

    def _function_environment(self, logical_id: str, props: dict) -> dict[str, str]:
        """What the function's code sees as os.environ on Lambda: its variables and Lambda's own
        (AWS Lambda Developer Guide, "Defined runtime environment variables"), the machine's network
        settings (_HOST_VARIABLES), and the two endpoints only the engine sets."""
        variables = {key: str(value) for key, value in self.template.resolve(props["Environment"]["Variables"]).items()}
        name = self.template.refs[logical_id]
        lambdas = {
            **_AWS_ENV,
            "_HANDLER": props["Handler"],
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{props.get('Runtime', 'python3.13')}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props.get("MemorySize", 128)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{logical_id}",
            "LAMBDA_TASK_ROOT": str(ROOT / props.get("CodeUri", "functions/")),
            "TZ": ":UTC",
        }
        return {
            **{key: os.environ[key] for key in _HOST_VARIABLES if key in os.environ},
            **lambdas,
            **variables,
            # Not in the template: the Lambda code defaults to the real Bot API.
            "TELEGRAM_API_URL": self.telegram_api_url,
            # boto3's own setting (no tgrelay code reads it): S3 requests and presigned URLs go to moto's HTTP server.
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
        }

    def as_function(self, logical_id: str) -> contextlib.AbstractContextManager[None]:
        """While entered, this thread sees the environment of the template's function `logical_id`
        (e.g. "CallAgentFunction"): for code outside an invocation that makes a handler's clients or
        reads its settings (bench/cost.py meters the handlers' clients)."""
        return lambda_environment.running_as(self.functions_by_id[logical_id].environment)

    def _execution_rules(self, functions: dict[str, LocalFunction]) -> list[tuple[dict, LocalFunction]]:
        """(event pattern, target) of every function's EventBridgeRule event (the state machine exists)."""
        rules = []
        for logical_id in self.template.resources("AWS::Serverless::Function"):
            for event in self.template.function_properties(logical_id).get("Events", {}).values():
                if event["Type"] == "EventBridgeRule":
                    pattern = self.template.resolve(event["Properties"]["Pattern"])
                    rules.append((pattern, functions[self.template.refs[logical_id]]))
        return rules

    def _schedules(self, functions: dict[str, LocalFunction]) -> list[tuple[int, str, LocalFunction]]:
        """(period in seconds, rule name, target) of every function's Schedule event."""
        schedules = []
        for logical_id in self.template.resources("AWS::Serverless::Function"):
            for event_id, event in self.template.function_properties(logical_id).get("Events", {}).items():
                if event["Type"] == "Schedule":
                    period = rate_seconds(event["Properties"]["Schedule"])
                    schedules.append(
                        (period, f"{STACK}-{logical_id}{event_id}", functions[self.template.refs[logical_id]])
                    )
        return schedules

    def _create_state_machine(self) -> None:
        logical_id, props = self.template.resource("AWS::Serverless::StateMachine")
        definition = (ROOT / props["DefinitionUri"]).read_text()
        for key, value in self.template.resolve(props.get("DefinitionSubstitutions", {})).items():
            definition = definition.replace("${" + key + "}", str(value))
        self.definition = json.loads(definition)
        arn = self.sfn.create_state_machine(
            name=f"{STACK}-{logical_id}",
            definition=definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/{STACK}-{logical_id}Role",
            type=props.get("Type", "STANDARD"),
        )["stateMachineArn"]
        self.template.bind(logical_id, arn, Name=f"{STACK}-{logical_id}")
        self.state_machine_arn = arn

    def _start_webhook(self, functions: dict[str, LocalFunction]) -> None:
        if self.webhook_function is None:
            raise ValueError("template.yaml has no function with an HttpApi event")
        function = self.webhook_function

        def invoke(event: dict) -> dict:
            answer = function.invoke(event)
            if "FunctionError" in answer:  # what API Gateway answers when the function fails
                response = {"statusCode": 500, "body": json.dumps({"message": "Internal Server Error"})}
            else:
                response = answer["Payload"]
                self._perform_webhook_method(response)
            status = response.get("statusCode", 200)
            self.webhook_answers.append((status if isinstance(status, int) else 200, str(response.get("body") or "")))
            return response

        path, method = self.webhook_route
        with _binding(self.webhook_port, "webhook"):
            self.http_api = HttpApi(path, method, invoke, port=self.webhook_port)
        self.http_api.start()
        self._stack.callback(self.http_api.stop)

    def _perform_webhook_method(self, response: dict) -> None:
        """What Telegram does with a webhook answer that names a Bot API method: performs it,
        telling nobody how it went. (Here before the answer goes back, so a test sees it at once.)"""
        if response.get("statusCode") != 200:
            return
        try:
            body = json.loads(response.get("body") or "")
        except (TypeError, ValueError):
            return
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            return
        # Telegram passes on every field; the Bot API ignores the ones it does not know ("ok").
        params = {key: value for key, value in body.items() if key not in ("method", "ok")}
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{self.telegram_api_url}/bot{self.bot_token}/{body['method']}", json=params, timeout=10)

    # -- environment ------------------------------------------------------------------

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def _reset_function_caches(self) -> None:
        """Clients and cached secrets of an earlier engine in this process must not leak in."""
        from tgrelay import clients

        clients.clear()

    def _redirect_function_logs(self, handler_modules) -> None:
        """Send the handlers' Powertools log lines and metrics (CloudWatch EMF JSON, which Powertools
        prints) to `log_path` instead of stdout: on Lambda both go to the function's log stream."""
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        stream = self._stack.enter_context(self.log_path.open("a", encoding="utf-8", buffering=1))
        self._stack.enter_context(metrics_to(stream))
        # A Logger logs under the service name the environment had when its module was imported:
        # the template's, or another if something in this process imported the module earlier.
        services: set[str | None] = {
            function.environment.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
            for function in self.functions_by_id.values()
        }
        services |= {getattr(getattr(module, "logger", None), "service", None) for module in handler_modules}
        handlers = {handler for service in services - {None} for handler in logging.getLogger(service).handlers}
        for handler in handlers:
            if isinstance(handler, logging.StreamHandler):
                previous = handler.setStream(stream)
                self._stack.callback(handler.setStream, previous)

    # -- driving and inspecting -------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        return self.http_api.url

    def post_update(self, update: Any, *, secret: str | None = None, raw: bytes | None = None) -> httpx.Response:
        """POST an update to the webhook over HTTP, with the right secret header by default."""
        headers = {SECRET_HEADER: self.webhook_secret if secret is None else secret}
        if self.telegram is not None and update is not None:
            self.telegram.learn_files(update)  # Telegram knows the files of the updates it sends
        if raw is None:
            raw, headers["content-type"] = json.dumps(update).encode(), "application/json"
        return self._http.post(self.webhook_url, content=raw, headers=headers, timeout=30)

    def wait_idle(self, timeout: float = 60) -> None:
        """Until the source queue is empty, the pipe is not mid-batch and no execution runs."""
        deadline = time.monotonic() + timeout
        queue_url = self.pipe.queue_url
        while time.monotonic() < deadline:
            counts = self.sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            queued = sum(int(value) for value in counts.values())
            if (
                not queued
                and not self.pipe.busy
                and not self.running_executions()
                and self.rules.caught_up(self._finished)
            ):
                return
            time.sleep(0.02)
        raise TimeoutError(f"still busy after {timeout} s")

    def running_executions(self) -> list[str]:
        # A finished execution stays finished: ask only about the ones not yet seen to finish.
        running = []
        for arn in list(self.pipe.started):
            if arn not in self._finished:
                if self.describe(arn)["status"] == "RUNNING":
                    running.append(arn)
                else:
                    self._finished.add(arn)
        return running

    def describe(self, execution_arn: str) -> "DescribeExecutionOutputTypeDef":
        return self.sfn.describe_execution(executionArn=execution_arn)

    def executions(self) -> "list[DescribeExecutionOutputTypeDef]":
        """describe_execution of every execution the pipe started, in start order."""
        return [self.describe(arn) for arn in self.pipe.started]

    def history(self, execution_arn: str) -> "list[HistoryEventTypeDef]":
        return self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]

    def claim(self, update_id: int) -> dict | None:
        """The dedupe record of `update_id`, as plain values."""
        item = self.dynamodb.get_item(
            TableName=self.table_name, Key={"pk": {"S": f"update#{update_id}"}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else {key: next(iter(value.values())) for key, value in item.items()}

    def turn_statuses(self, conversation: str) -> dict[int, str]:
        """The conversation's items in the turns table (session_key, e.g. "telegram:42"):
        update_id -> status (QUEUED, WAITING, TURN, MERGED)."""
        items = self.dynamodb.query(
            TableName=self.template.refs["TurnsTable"],
            KeyConditionExpression="conversation = :conversation",
            ExpressionAttributeValues={":conversation": {"S": conversation}},
            ConsistentRead=True,
        )["Items"]
        return {int(item["update_id"]["N"]): item["status"]["S"] for item in items}

    @property
    def dead_letter_queue_url(self) -> str:
        redrive = json.loads(
            self.sqs.get_queue_attributes(QueueUrl=self.pipe.queue_url, AttributeNames=["RedrivePolicy"])["Attributes"][
                "RedrivePolicy"
            ]
        )
        return self.sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].rsplit(":", 1)[1])["QueueUrl"]

    def dead_letters(self) -> list[dict]:
        """Every message in the dead-letter queue, left in place."""
        return peek_queue(self.sqs, self.dead_letter_queue_url)

    def replay_dead_letters(self) -> int:
        """Move every DLQ message back to the source queue (what StartMessageMoveTask does)."""
        return move_messages(self.sqs, self.dead_letter_queue_url, self.pipe.queue_url)


def peek_queue(sqs, queue_url: str) -> list[dict]:
    """The queue's messages, left in place: each is received (and so hidden) once, then made
    visible again. In a FIFO queue a message group shows at most 10 messages, because SQS
    returns nothing more of a group while some of it is in flight."""
    seen: dict[str, dict] = {}
    try:
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=30,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return list(seen.values())
            seen.update((message["MessageId"], message) for message in batch)
    finally:
        for message in seen.values():
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )


def take_messages(sqs, queue_url: str) -> Iterator[dict]:
    """Every message of a queue, received and then deleted once the caller is done with it."""
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return
        for message in batch:
            yield message
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def move_messages(sqs, source_url: str, destination_url: str) -> int:
    """Move messages like SQS StartMessageMoveTask: same body, attributes and group; deleted
    from the source only after the destination accepted them."""
    moved = 0
    for message in take_messages(sqs, source_url):
        sent: dict[str, Any] = {"QueueUrl": destination_url, "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            sent["MessageAttributes"] = message["MessageAttributes"]
        if "MessageGroupId" in message.get("Attributes", {}):
            sent["MessageGroupId"] = message["Attributes"]["MessageGroupId"]
            # A fresh id: the source queue may still remember the update's own id.
            sent["MessageDeduplicationId"] = secrets.token_hex(16)
        sqs.send_message(**sent)
        moved += 1
    return moved
