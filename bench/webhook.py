"""Webhook benchmark: tgrelay's WebhookFunction against a python-telegram-bot baseline.

    .venv/bin/python bench/webhook.py [--samples 7] [--requests 2000] [--skip-bundle]

Both handlers get the same API Gateway HTTP API (payload 2.0) event
(events/aws/http_api_v2_webhook.json, a fresh update_id each time) and send to the same
moto SQS FIFO queue, with the same moto Secrets Manager secret, in the same run:

  ours      tgrelay.webhook.handler (the template's environment for WebhookFunction): registers
            the message QUEUED in the turns table (one DynamoDB PutItem, turns.register_queued),
            then the SQS send_message
  baseline  bench/baseline_webhook.py: telegram.Bot(token) + Update.de_json(data, bot),
            then the same boto3 SQS send_message; it registers no turn

The turns table is created in moto with the keys template.yaml declares for the table that
WebhookFunction's TURNS_TABLE_NAME refers to. Ours makes one AWS call more than the baseline,
so beside the bare SQS send there is a floor with both calls: "bare send + PutItem" (warm) and
"floor+put" (cold), which show what the registration costs.

(a) cold init: a fresh interpreter per sample, from spawning it to the first request
    answered (interpreter start + imports + first request, which reads the secret and
    creates the SQS client, and for ours and floor+put the DynamoDB one); the variants
    alternate. Plus `python -X importtime`.
    moto runs as a loopback server here (127.0.0.1, a free port), since every sample is
    its own process.
(b) warm latency: both handlers, a bare SQS send_message and a bare PutItem + send_message,
    in this process against moto in-process (mock_aws), interleaved request by request,
    p50/p99 over --requests each. "added" = median over rounds of (variant - bare send of the
    same round); "over send+put" the same against the bare PutItem + send.
(c) deployment bundle: `sam build WebhookFunction` into a temporary directory (needs a
    python3.13: found through pyenv when there is one), its size and zipped size; beside it
    what python-telegram-bot adds to a bundle (pip install --target for the Lambda
    platform: arm64, Python 3.13).

Numbers are for this machine and moto, not for AWS: see "what this measures" at the end.
"""

import argparse
import contextlib
import gc
import importlib.metadata
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchlib import (
    BENCH,
    FAKE_AWS_ENV,
    REGION,
    ROOT,
    clean_environ,
    machine_line,
    median,
    ms,
    percentile,
    queue_attributes,
    secret_string,
    table,
    webhook_environment,
    webhook_function_id,
)

from tgrelay_local.lambda_events import LambdaContext, http_api_event
from tgrelay_local.template import Template
from tgrelay_local.toolchain import find_python313

EVENT = ROOT / "events" / "aws" / "http_api_v2_webhook.json"
CHILD = BENCH / "_cold_child.py"
TARGET_ADDED_MS = 1.0  # warm handler time over the bare SQS send
TARGET_COLD_RATIO = 0.5  # cold init at most half the baseline's
# floor: bench/bare_producer.py, boto3 + secret + send and nothing else (what both pay at least);
# floor+put: the same plus a DynamoDB client and the turn's PutItem (what ours pays at least)
COLD_VARIANTS = ("ours", "baseline", "floor", "floor+put")
MODULES = {
    "ours": "tgrelay.webhook",
    "baseline": "baseline_webhook",
    "floor": "bare_producer",
    "floor+put": "bare_producer",
}
REGISTERING = ("ours", "floor+put")  # the cold variants that write a turns item
TURNS_VARIABLE = "TURNS_TABLE_NAME"  # WebhookFunction's environment names the turns table here
BARE_SEND, BARE_SEND_PUT = "bare SQS send", "bare send + PutItem"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=7, help="cold-start samples per variant (7)")
    parser.add_argument("--requests", type=int, default=2000, help="warm requests per variant (2000)")
    parser.add_argument("--skip-bundle", action="store_true", help="skip (c), the sam build")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.requests < 100:
        parser.error("--samples must be >= 1 and --requests >= 100")

    print(machine_line())
    print(f"python-telegram-bot {importlib.metadata.version('python-telegram-bot')}, moto {_version('moto')}")
    print()
    progress(f"(a) cold init: {args.samples} fresh interpreters per variant ...")
    cold = measure_cold(args.samples)
    progress("(a) python -X importtime ...")
    imports = measure_importtimes()
    print(cold_table(cold, imports))
    print()
    progress(f"(b) warm latency: {args.requests} requests per variant ...")
    warm = measure_warm(args.requests)
    print(warm_table(warm))
    print()
    if not args.skip_bundle:
        progress("(c) sam build WebhookFunction (a minute or two) ...")
        print(bundle_table(measure_bundle()))
        print()
    print(verdict(cold, warm))
    return 0


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- (a) cold init ---------------------------------------------------------------------


def measure_cold(samples: int) -> dict[str, list[dict]]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update(FAKE_AWS_ENV)
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
        secrets = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
        queue_url, secret_arn, turns_table = _create_resources(sqs, secrets, dynamodb, "cold")
        env = clean_environ(
            {
                **FAKE_AWS_ENV,
                **_environment(queue_url, secret_arn, turns_table),
                "AWS_ENDPOINT_URL": endpoint,
            }
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # .pyc files exist on Lambda too: keep the cache
        base_event = json.loads(EVENT.read_text())
        results: dict[str, list[dict]] = {variant: [] for variant in COLD_VARIANTS}
        update_id = 700_000_000
        with tempfile.TemporaryDirectory() as tmp:
            # One throwaway run each: compiles .pyc files and warms the OS file cache, as a
            # Lambda image's are warm. Not reported.
            for variant in COLD_VARIANTS:
                update_id += 1
                _cold_sample(variant, _event_file(tmp, base_event, update_id), env)
            for index in range(samples):
                shift = index % len(COLD_VARIANTS)  # rotate who goes first
                for variant in COLD_VARIANTS[shift:] + COLD_VARIANTS[:shift]:
                    update_id += 1
                    results[variant].append(_cold_sample(variant, _event_file(tmp, base_event, update_id), env))
        enqueued = int(
            sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        expected = len(COLD_VARIANTS) * (samples + 1)
        if enqueued != expected:
            raise RuntimeError(f"cold start: {enqueued} messages on the queue, expected {expected}")
        # Ours logs a failed PutItem and enqueues anyway: make sure every registration happened.
        _check_registered(dynamodb, turns_table, len(REGISTERING) * (samples + 1), "cold start")
        return results
    finally:
        server.stop()


def _event_file(directory: str, base_event: dict, update_id: int) -> str:
    event = _event_with_update_id(base_event, update_id)
    path = Path(directory) / f"event-{update_id}.json"
    path.write_text(json.dumps(event))
    return str(path)


def _cold_sample(variant: str, event_path: str, env: dict[str, str]) -> dict:
    spawned = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(CHILD), variant, event_path],
        cwd=BENCH,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"cold sample {variant} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(lines[-1][len("BENCH ") :])
    if result["status"] != 200 or "skipped" in json.loads(result["body"]):
        raise RuntimeError(f"cold sample {variant} was not enqueued: {result['status']} {result['body']}")
    return {
        "total": result["answered"] - spawned,
        "interpreter": result["started"] - spawned,
        "imports": result["imported"] - result["started"],
        "first_request": result["answered"] - result["imported"],
    }


def measure_importtimes(runs: int = 5) -> dict[str, dict]:
    """`python -X importtime -c 'import <module>'` for every variant, interleaved, `runs`
    times each. Per variant, the fastest run (the least disturbed on a shared machine): the
    module's cumulative import time, how many modules the process imported, and the
    heaviest top-level packages in that run."""
    env = clean_environ({**FAKE_AWS_ENV, "SECRET_ARN": "unused", "QUEUE_URL": "unused", "PYTHONPATH": str(BENCH)})
    env.update({k: v for k, v in webhook_environment("unused", "unused").items() if k.startswith("POWERTOOLS_")})
    best: dict[str, dict] = {}
    for _ in range(runs):
        for module in dict.fromkeys(MODULES.values()):  # floor and floor+put share a module
            proc = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", f"import {module}"],
                cwd=BENCH,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"importtime {module} failed:\n{proc.stderr}")
            rows = []
            for line in proc.stderr.splitlines():
                match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
                if match:
                    rows.append((int(match.group(2)), match.group(4)))
            total = [cumulative for cumulative, name in rows if name == module][-1]
            if module in best and best[module]["us"] <= total:
                continue
            packages: dict[str, int] = {}
            for cumulative, name in rows:
                if "." not in name and name != module:
                    packages[name] = max(packages.get(name, 0), cumulative)
            heaviest = sorted(packages.items(), key=lambda item: -item[1])[:3]
            best[module] = {"module": module, "us": total, "modules": len(rows), "heaviest": heaviest}
    return {variant: best[module] for variant, module in MODULES.items()}


def cold_table(cold: dict[str, list[dict]], imports: dict[str, dict]) -> str:
    rows = []
    for variant in COLD_VARIANTS:
        samples = cold[variant]
        rows.append(
            [
                variant,
                len(samples),
                ms(median([s["total"] for s in samples]), 0),
                f"{ms(min(s['total'] for s in samples), 0)}-{ms(max(s['total'] for s in samples), 0)}",
                ms(median([s["interpreter"] for s in samples]), 0),
                ms(median([s["imports"] for s in samples]), 0),
                ms(median([s["first_request"] for s in samples]), 0),
                f"{imports[variant]['us'] / 1000:.0f}",
                imports[variant]["modules"],
            ]
        )
    total = {variant: median([s["total"] for s in cold[variant]]) for variant in COLD_VARIANTS}
    fastest = {variant: min(s["total"] for s in cold[variant]) for variant in COLD_VARIANTS}
    ratio = total["ours"] / total["baseline"]
    over_floor = (total["ours"] - total["floor"]) / (total["baseline"] - total["floor"])
    # Each handler above the least its own AWS calls cost: ours over floor+put, the baseline over floor.
    over_own = (total["ours"] - total["floor+put"]) / (total["baseline"] - total["floor"])
    notes = [
        f"ratio ours/baseline (median total): {ratio:.2f}  (target <= {TARGET_COLD_RATIO:.2f}); "
        f"above the floor, ours/baseline: {over_floor:.2f}",
        f"ratio of the fastest samples: {fastest['ours'] / fastest['baseline']:.2f}; above the floor: "
        f"{(fastest['ours'] - fastest['floor']) / (fastest['baseline'] - fastest['floor']):.2f}",
        f"registration at cold start (floor+put - floor, medians): {ms(total['floor+put'] - total['floor'], 0)} ms; "
        f"ours above floor+put / baseline above floor: {over_own:.2f}",
        "ours registers the turn (DynamoDB client + one PutItem before the send); the baseline and floor do not.",
        "total = spawn of a fresh interpreter -> first request answered (event -> secret read -> SQS send -> 200),",
        "        against moto server on 127.0.0.1; median of the samples, min-max beside it; interp = spawn -> script",
        "        starts, imports = the handler module's import, 1st req = the first call (clients made, secret read).",
        "floor = bench/bare_producer.py: import boto3, two clients, read the secret, send the raw body; nothing else.",
        "floor+put = the floor plus a DynamoDB client and the conditional PutItem of the QUEUED item, before the send.",
        "importtime = `python -X importtime -c 'import <module>'`: the module's cumulative time, fastest of 5 runs;",
        "        the baseline makes its boto3 clients at import (the usual way), ours and the floors at the 1st call.",
    ]
    for variant in COLD_VARIANTS:
        if variant == "floor+put":
            continue  # the floor's module
        heaviest = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in imports[variant]["heaviest"])
        notes.append(f"heaviest imports ({variant if variant != 'floor' else 'floors'}): {heaviest}")
    return table(
        "(a) Cold init: fresh interpreter, import + first request (ms)",
        ["variant", "samples", "median", "min-max", "interp", "imports", "1st req", "importtime", "modules"],
        rows,
        notes,
    )


# -- (b) warm latency ------------------------------------------------------------------


def measure_warm(requests: int, warmup: int = 100) -> dict[str, list[float]]:
    import boto3
    from moto import mock_aws

    os.environ.update(FAKE_AWS_ENV)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        queue_url, secret_arn, turns_table = _create_resources(sqs, secrets, dynamodb, "warm")
        os.environ.update(_environment(queue_url, secret_arn, turns_table))

        ours = importlib.import_module("tgrelay.webhook").handler
        from tgrelay import clients, turns
        from tgrelay.envelope import envelope_from_update, message_group_id, session_key

        for cached in (clients.sqs, clients.dynamodb, clients.http):
            cached.cache_clear()
        _quiet_handler_logs()
        sys.path.insert(0, str(BENCH))
        baseline = importlib.import_module("baseline_webhook").handler
        bare_client = clients.sqs()  # the very client ours sends with
        bare_dynamodb = clients.dynamodb()  # and the one it registers with

        base_event = json.loads(EVENT.read_text())
        total = warmup + requests
        events = {
            "ours": [_event_with_update_id(base_event, 100_000_000 + i) for i in range(total)],
            "baseline": [_event_with_update_id(base_event, 200_000_000 + i) for i in range(total)],
        }
        # The bare calls: the envelope ours would send and the item it would register, built beforehand.
        ttl_seconds = int(os.environ["DEDUPE_TTL_SECONDS"])
        bare_messages, bare_items = [], []
        for i in range(total):
            for first_id, messages in ((300_000_000, bare_messages), (400_000_000, bare_items)):
                update = json.loads(base_event["body"])
                update["update_id"] = first_id + i
                envelope = envelope_from_update(update, received_at=int(time.time()), ttl_seconds=ttl_seconds)
                messages.append((json.dumps(envelope), message_group_id(envelope), str(envelope["update_id"])))
            bare_items[-1] += (
                {  # what turns.register_queued writes
                    "conversation": {"S": session_key(envelope)},
                    "update_id": {"N": str(envelope["update_id"])},
                    "status": {"S": turns.QUEUED},
                    "registered_at": {"N": str(envelope["received_at"])},
                    "expires_at": {"N": str(envelope["expires_at"])},
                },
            )

        context = LambdaContext("bench-WebhookFunction", timeout_s=10)

        def call_ours(i: int) -> dict:
            return ours(events["ours"][i], context)

        def call_baseline(i: int) -> dict:
            return baseline(events["baseline"][i], context)

        current = {"queue_url": queue_url}

        def call_bare(i: int) -> dict:
            body, group, dedupe = bare_messages[i]
            bare_client.send_message(
                QueueUrl=current["queue_url"], MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedupe
            )
            return {"statusCode": 200, "body": '{"ok": true}'}

        def call_bare_put(i: int) -> dict:
            body, group, dedupe, item = bare_items[i]
            bare_dynamodb.put_item(
                TableName=turns_table, Item=item, ConditionExpression="attribute_not_exists(conversation)"
            )
            bare_client.send_message(
                QueueUrl=current["queue_url"], MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedupe
            )
            return {"statusCode": 200, "body": '{"ok": true}'}

        calls = {BARE_SEND: call_bare, BARE_SEND_PUT: call_bare_put, "ours": call_ours, "baseline": call_baseline}
        names = list(calls)
        timings: dict[str, list[float]] = {name: [] for name in names}
        sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
        gc.collect()
        # Powertools Metrics prints its EMF blob to stdout: real work, kept, but not on screen.
        with contextlib.redirect_stdout(sink):
            for i in range(total):
                # Rotate the order each round so no variant always runs right after another.
                shift = i % len(names)
                for name in names[shift:] + names[:shift]:
                    started = time.perf_counter_ns()
                    answer = calls[name](i)
                    elapsed = (time.perf_counter_ns() - started) / 1e9
                    if answer["statusCode"] != 200 or "skipped" in json.loads(answer["body"]):
                        raise RuntimeError(f"warm {name}: not enqueued: {answer}")
                    if i >= warmup:
                        timings[name].append(elapsed)
                if i % 10 == 9:
                    # moto's SendMessage scans every queued message (FIFO dedupe check, queue
                    # attributes): its cost grows with the queue. A fresh queue every 10 rounds
                    # keeps it flat, for every variant alike (not timed).
                    current["queue_url"] = sqs.create_queue(
                        QueueName=f"bench-warm-{i}-UpdatesQueue.fifo", Attributes=queue_attributes()
                    )["QueueUrl"]
                    os.environ["QUEUE_URL"] = current["queue_url"]
        sink.close()
        # Ours logs a failed PutItem and answers 200 anyway: make sure it registered every time.
        _check_registered(dynamodb, turns_table, 2 * total, "warm")  # ours and the bare PutItem
        return timings


def _quiet_handler_logs() -> None:
    """Powertools writes each log line to stdout: keep formatting and writing it (real work
    on Lambda too), but into /dev/null instead of this table."""
    service = os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger(service).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


def added(warm: dict[str, list[float]], name: str, floor: str = BARE_SEND) -> float:
    """Median over the rounds of (variant - floor) in the same round: the calls of a round run
    back to back, so a slow moment on the shared machine hits both sides of the pair."""
    return median([value - bare for value, bare in zip(warm[name], warm[floor], strict=True)])


def warm_table(warm: dict[str, list[float]]) -> str:
    bare = warm[BARE_SEND]
    rows = []
    for name, values in warm.items():
        rows.append(
            [
                name,
                len(values),
                ms(percentile(values, 50), 3),
                ms(percentile(values, 99), 3),
                ms(sum(values) / len(values), 3),
                "-" if name == BARE_SEND else ms(added(warm, name), 3),
                "-" if name == BARE_SEND else ms(percentile(values, 99) - percentile(bare, 99), 3),
                "-" if name in (BARE_SEND, BARE_SEND_PUT) else ms(added(warm, name, BARE_SEND_PUT), 3),
            ]
        )
    ours, base = added(warm, "ours"), added(warm, "baseline")
    put = added(warm, BARE_SEND_PUT)
    ours_own = added(warm, "ours", BARE_SEND_PUT)
    notes = [
        f"ratio ours/baseline p50: {percentile(warm['ours'], 50) / percentile(warm['baseline'], 50):.2f}; "
        f"handler time added over the bare send, ours/baseline: {ours / base:.2f}",
        f"target: ours adds < {TARGET_ADDED_MS:.1f} ms over the bare send: {ms(ours, 3)} ms -> "
        + ("met" if ours < TARGET_ADDED_MS / 1000 else "MISSED"),
        "ours registers the turn (one DynamoDB PutItem before the send); the baseline does not.",
        f"        the PutItem alone (bare send + PutItem - bare send): {ms(put, 3)} ms; ours over the same two bare",
        f"        calls: {ms(ours_own, 3)} ms; the baseline over its one bare call: {ms(base, 3)} ms.",
        "added = median over rounds of (variant - bare send in the same round); added p99 = p99 - bare p99;",
        "        over send+put = the same median against the bare PutItem + send.",
        "in-process, moto in-process (mock_aws): the bare calls are botocore's client work plus moto's SQS and",
        "        DynamoDB models, no network; the secret is read once and cached by both (ours for 300 s).",
    ]
    return table(
        "(b) Warm latency per request (ms), interleaved, same moto SQS and DynamoDB",
        ["variant", "requests", "p50", "p99", "mean", "added", "added p99", "over send+put"],
        rows,
        notes,
    )


# -- (c) deployment bundle -------------------------------------------------------------


def measure_bundle() -> dict:
    env = clean_environ({"AWS_DEFAULT_REGION": REGION, "SAM_CLI_TELEMETRY": "0", **_aws_files_off()})
    python313 = find_python313(env)
    result: dict = {"ours": None, "baseline": None, "reason": None}
    with tempfile.TemporaryDirectory() as tmp:
        if python313 is None:
            result["reason"] = "no python3.13 found (sam build needs it for Runtime python3.13): skipped"
        else:
            sam = Path(sys.executable).parent / "sam"
            build = Path(tmp) / "build"
            started = time.monotonic()
            proc = subprocess.run(
                [
                    str(sam),
                    "build",
                    "WebhookFunction",
                    "--build-dir",
                    str(build),
                    "--template",
                    str(ROOT / "template.yaml"),
                ],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"sam build failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
            result["ours"] = _dir_sizes(build / "WebhookFunction")
            result["build_seconds"] = time.monotonic() - started
        # What python-telegram-bot brings into a bundle (boto3 is in the Lambda runtime already).
        target = Path(tmp) / "ptb"
        version = importlib.metadata.version("python-telegram-bot")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",  # sam build ships no .pyc either
                "--target",
                str(target),
                "--platform",
                "manylinux2014_aarch64",
                "--implementation",
                "cp",
                "--python-version",
                "3.13",
                "--only-binary=:all:",
                f"python-telegram-bot=={version}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode == 0:
            result["baseline"] = _dir_sizes(target)
        else:
            result["baseline_reason"] = f"pip install --target failed: {proc.stderr.strip().splitlines()[-1:]}"
    return result


def _aws_files_off() -> dict[str, str]:
    return {k: v for k, v in FAKE_AWS_ENV.items() if k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")} | {
        "AWS_EC2_METADATA_DISABLED": "true"
    }


def _dir_sizes(directory: Path) -> dict:
    files = [path for path in directory.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            archive.write(path, path.relative_to(directory))
    by_top: dict[str, int] = {}
    for path in files:
        top = path.relative_to(directory).parts[0]
        top = re.sub(r"-[\d.]+(\.dist-info)$", r"\1", top)
        by_top[top] = by_top.get(top, 0) + path.stat().st_size
    largest = sorted(by_top.items(), key=lambda item: -item[1])[:4]
    # Which bundled distributions pull in the SDK the Lambda runtime already has?
    sdk_requirers = sorted(
        metadata.parent.name.split("-")[0]
        for metadata in directory.glob("*.dist-info/METADATA")
        if re.search(r"^Requires-Dist: (botocore|boto3)\b(?!.*extra ==)", metadata.read_text(errors="replace"), re.M)
    )
    return {
        "bytes": size,
        "zipped": len(buffer.getvalue()),
        "files": len(files),
        "largest": largest,
        "sdk_bundled": any((directory / name).is_dir() for name in ("botocore", "boto3")),
        "sdk_requirers": sdk_requirers,
    }


def bundle_table(bundle: dict) -> str:
    rows, notes = [], []
    if bundle["ours"]:
        ours = bundle["ours"]
        rows.append(["WebhookFunction (sam build)", _mib(ours["bytes"]), _mib(ours["zipped"]), ours["files"]])
        largest = ", ".join(f"{name} {_mib(size)}" for name, size in ours["largest"])
        notes.append(f"largest in ours: {largest}")
        notes.append("one CodeUri for all functions: the bundle also holds the other handlers and httpx (theirs).")
        if ours["sdk_bundled"]:
            notes.append(
                "botocore/boto3 is IN the bundle although the python3.13 runtime has it; required by: "
                + (", ".join(ours["sdk_requirers"]) or "?")
            )
        notes.append(f"sam build WebhookFunction took {bundle['build_seconds']:.0f} s")
    else:
        notes.append(f"WebhookFunction: {bundle['reason']}")
    if bundle["baseline"]:
        base = bundle["baseline"]
        rows.append(["python-telegram-bot + deps only", _mib(base["bytes"]), _mib(base["zipped"]), base["files"]])
        largest = ", ".join(f"{name} {_mib(size)}" for name, size in base["largest"])
        notes.append(f"largest in python-telegram-bot's: {largest}")
        notes.append("(what a baseline bundle carries before any handler code: pip install --target, arm64, cp313)")
    else:
        notes.append(f"python-telegram-bot bundle: {bundle.get('baseline_reason', 'not measured')}")
    return table("(c) Deployment bundle", ["bundle", "size MiB", "zipped MiB", "files"], rows, notes)


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.2f}"


# -- shared ----------------------------------------------------------------------------


def _create_resources(sqs, secrets, dynamodb, suffix: str) -> tuple[str, str, str]:
    """The queue, the secret and the turns table the webhook uses; returns their URL, ARN, name."""
    queue_url = sqs.create_queue(QueueName=f"bench-{suffix}-UpdatesQueue.fifo", Attributes=queue_attributes())[
        "QueueUrl"
    ]
    secret_arn = secrets.create_secret(Name=f"bench-{suffix}-BotSecret", SecretString=secret_string())["ARN"]
    logical_id, props = turns_table_declaration()
    turns_table = f"bench-{suffix}-{logical_id}"
    dynamodb.create_table(
        TableName=turns_table,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode=props["BillingMode"],
    )
    if "TimeToLiveSpecification" in props:  # as the local engine does; moto never expires items
        dynamodb.update_time_to_live(TableName=turns_table, TimeToLiveSpecification=props["TimeToLiveSpecification"])
    return queue_url, secret_arn, turns_table


def turns_table_declaration() -> tuple[str, dict]:
    """The table WebhookFunction's TURNS_TABLE_NAME refers to, as template.yaml declares it:
    its logical id and Properties (load_template's document, Globals merged into the function)."""
    template = Template()
    variables = template.function_properties(webhook_function_id(template))["Environment"]["Variables"]
    logical_id = variables[TURNS_VARIABLE]["Ref"]
    resource = template.doc["Resources"][logical_id]
    if resource["Type"] != "AWS::DynamoDB::Table":
        raise ValueError(f"{TURNS_VARIABLE} refers to {logical_id}, a {resource['Type']}")
    return logical_id, resource["Properties"]


def _environment(queue_url: str, secret_arn: str, turns_table: str) -> dict[str, str]:
    """WebhookFunction's environment (benchlib.webhook_environment), with the turns table bound
    too: webhook_environment leaves out references to resources it does not know, this one."""
    return {**webhook_environment(queue_url, secret_arn), TURNS_VARIABLE: turns_table}


def _check_registered(dynamodb, table_name: str, expected: int, part: str) -> None:
    count = sum(
        page["Count"]
        for page in dynamodb.get_paginator("scan").paginate(TableName=table_name, Select="COUNT", ConsistentRead=True)
    )
    if count != expected:
        raise RuntimeError(f"{part}: {count} items in the turns table, expected {expected}")


def _event_with_update_id(base_event: dict, update_id: int) -> dict:
    """The sample's request with another update_id, built like every other HTTP API event here."""
    update = json.loads(base_event["body"])
    update["update_id"] = update_id
    body = json.dumps(update, separators=(",", ":"), ensure_ascii=False)
    return http_api_event(body, headers=base_event["headers"] | {"content-length": str(len(body.encode()))})


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def verdict(cold: dict[str, list[dict]], warm: dict[str, list[float]]) -> str:
    total = {variant: median([s["total"] for s in cold[variant]]) for variant in COLD_VARIANTS}
    cold_ratio = total["ours"] / total["baseline"]
    allowed = TARGET_COLD_RATIO * total["baseline"]
    ours_added = added(warm, "ours")
    over = ours_added - TARGET_ADDED_MS / 1000
    warm_verdict = "met" if over < 0 else f"MISSED by {ms(over, 3)} ms"
    if cold_ratio <= TARGET_COLD_RATIO:
        cold_verdict = "met"
    else:
        cold_verdict = (
            f"MISSED by {cold_ratio - TARGET_COLD_RATIO:.2f} ({ms(total['ours'] - allowed, 0)} ms over "
            f"{ms(allowed, 0)} ms); the floor alone is {total['floor'] / total['baseline']:.2f} x the baseline"
        )
    lines = [
        "Targets",
        f"  warm: handler adds < {TARGET_ADDED_MS:.1f} ms over the bare SQS send (paired median): "
        f"{ms(ours_added, 3)} ms -> {warm_verdict}",
        f"        of which the turn's PutItem (bare, in moto): {ms(added(warm, BARE_SEND_PUT), 3)} ms; "
        f"ours over bare send + PutItem: {ms(added(warm, 'ours', BARE_SEND_PUT), 3)} ms",
        f"  cold: at most {TARGET_COLD_RATIO:.2f} x the baseline's: {cold_ratio:.2f} x "
        f"({ms(total['ours'], 0)} ms vs {ms(total['baseline'], 0)} ms) -> {cold_verdict}",
        f"        the registration's cost at cold start (floor+put - floor): "
        f"{ms(total['floor+put'] - total['floor'], 0)} ms",
        "  Ours registers each message's turn (one DynamoDB PutItem more than the baseline, which registers",
        "  nothing); the targets were set against the bare SQS send and are judged so here, unchanged.",
        "What this measures: Python work on this machine (2 shared cores) against moto, not AWS. Real SQS",
        "  SendMessage takes milliseconds over the network and a Lambda cold start adds the runtime's own init;",
        "  both are the same for every variant, so compare the ratios and the 'added' column, not absolutes.",
        "  Except: ours also waits for DynamoDB's PutItem, a network round trip on AWS (typically a few ms)",
        "  that moto does in-process here and the baseline never pays.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
