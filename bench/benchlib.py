"""Shared pieces of the benchmark scripts: tables, percentiles, the machine line, and the
WebhookFunction environment read from template.yaml (nothing is configured twice).

Only the standard library and the local engine's template reader are imported here, so a
script can import this module before it decides what else to load.
"""

import contextlib
import datetime
import math
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tgrelay_local.engine import LocalRelay

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
REGION = "us-east-1"
WEBHOOK_SECRET = "local-webhook-secret"  # the header value in events/aws/http_api_v2_webhook.json
BOT_TOKEN = "123456789:local-fake-bot-token"

# Credentials moto accepts. No profile, no config file, no instance metadata: a benchmark
# never needs (or finds) a real AWS account.
FAKE_AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def clean_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without any AWS_* variable (no profile or key can leak in), plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_") or key == "AWS_CA_BUNDLE"}
    env.update(extra or {})
    return env


def machine_line() -> str:
    cores = os.cpu_count() or 0
    today = datetime.date.today().isoformat()
    return (
        f"machine: {cores} cores, {platform.machine()}, Python {platform.python_version()} "
        f"({sys.implementation.name}), {platform.system()} {platform.release()}; run {today}"
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def table(
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    notes: Iterable[str] = (),
    align: str | None = None,
) -> str:
    """A plain-text table. `align` has one letter per column, l or r; by default the first
    column is left-aligned and the others right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max([len(str(h))] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.ljust(widths[i]) if align[i] == "l" else value.rjust(widths[i]) for i, value in enumerate(values)
        ]
        return "  " + "  ".join(parts).rstrip()

    out = [title, line([str(h) for h in headers]), "  " + "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    out += [f"  {note}" for note in notes]
    return "\n".join(out)


def ms(seconds: float, digits: int = 2) -> str:
    return f"{seconds * 1000:.{digits}f}"


def webhook_environment(queue_url: str, secret_arn: str) -> dict[str, str]:
    """WebhookFunction's environment as template.yaml gives it (Globals merged), with the
    queue and secret bound to the benchmark's moto resources."""
    from tgrelay_local.template import Template

    template = Template(parameters={"AgentUrl": "http://127.0.0.1:9/agent"})
    secret_id, _ = template.resource("AWS::SecretsManager::Secret")
    template.bind(secret_id, secret_arn)
    for logical_id, props in template.resources("AWS::SQS::Queue").items():
        if "RedrivePolicy" in props:  # the source queue: the one the webhook sends to
            template.bind(logical_id, queue_url, Arn="arn:aws:sqs:us-east-1:123456789012:bench")
    variables = template.function_properties(webhook_function_id(template))["Environment"]["Variables"]
    environment: dict[str, str] = {}
    for key, value in variables.items():
        try:
            environment[key] = str(template.resolve(value))
        except KeyError:
            continue  # a reference to a resource the benchmark does not create; the webhook does not read it
    # Powertools Metrics needs a namespace once a metric is added; the tests set the same default.
    environment.setdefault("POWERTOOLS_METRICS_NAMESPACE", "tgrelay")
    return environment


def webhook_function_id(template) -> str:
    for logical_id in template.resources("AWS::Serverless::Function"):
        events = template.function_properties(logical_id).get("Events", {})
        if any(event.get("Type") == "HttpApi" for event in events.values()):
            return logical_id
    raise ValueError("template.yaml has no function with an HttpApi event")


def queue_attributes() -> dict[str, str]:
    """The source queue's FIFO settings from template.yaml."""
    from tgrelay_local.template import Template

    template = Template(parameters={"AgentUrl": "http://127.0.0.1:9/agent"})
    for props in template.resources("AWS::SQS::Queue").values():
        if "RedrivePolicy" in props:
            return {
                "FifoQueue": str(props.get("FifoQueue", False)).lower(),
                "ContentBasedDeduplication": str(props.get("ContentBasedDeduplication", False)).lower(),
            }
    raise ValueError("template.yaml has no source queue")


def secret_string() -> str:
    """The bot secret's JSON as the stack holds it once the tokens are filled in."""
    import json

    from tgrelay_local.template import Template

    template = Template(parameters={"AgentUrl": "http://127.0.0.1:9/agent"})
    _, props = template.resource("AWS::SecretsManager::Secret")
    generate = props["GenerateSecretString"]
    value = json.loads(generate["SecretStringTemplate"])
    value.update({"bot_token": BOT_TOKEN, generate["GenerateStringKey"]: WEBHOOK_SECRET})
    return json.dumps(value)


@contextlib.contextmanager
def quiet_engine() -> Iterator["LocalRelay"]:
    """The local engine as every benchmark runs it: the recorded retry clock (FULL jitter at the top
    of its range), the handlers' log lines in a temporary file (`relay.log_path`) and Powertools
    Metrics' EMF lines, which it prints to stdout, in another - not between the tables."""
    # Powertools Metrics needs a namespace once a metric is added (the tests set the same default).
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "tgrelay")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    from tgrelay_local.clock import RetryClock
    from tgrelay_local.engine import LocalRelay

    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "stdout.log", "w") as handler_stdout:
        relay = LocalRelay(clock=RetryClock("recorded", jitter=1.0), log_path=Path(tmp) / "handlers.log")
        with contextlib.redirect_stdout(handler_stdout), relay:
            yield relay
