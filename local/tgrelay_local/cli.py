"""`tgrelay` — run the workflow on this machine (`demo`, `local`) and operate it, here or on AWS
(`retry-plan`, `cost`, `history`, `dlq`, `replay`, `register-webhook`, `diagram`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.exceptions
import httpx

from tgrelay_local import operator, plans
from tgrelay_local.clock import RetryClock
from tgrelay_local.history import format_path, state_path
from tgrelay_local.names import DEFAULT_WEBHOOK_SECRET, STACK
from tgrelay_local.template import ROOT

if TYPE_CHECKING:  # the engine imports moto: only `demo` and `local` load it
    from tgrelay_local.engine import LocalRelay, PortInUse

EVENTS = ROOT / "events" / "telegram"
DEFAULT_AWS_PORT = 8083
LOG_DIR = ROOT / ".tgrelay"

# The last state of an execution names its outcome. An execution that ends in MergedIntoTurn did
# not answer its update itself: the turn of an earlier message of its conversation did
# (QueuedMessages=merge), and that turn's outcome is the update's.
OUTCOMES = {
    "MarkDone": "replied",
    "AlreadyHandled": "duplicate skipped",
    "MergedIntoTurn": "merged into an earlier turn",
    "MarkUndeliverable": "undeliverable",
    "Failed": "dead-lettered",
}


# Exit statuses (README: Operating it). argparse itself exits 2 on a usage error.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_TO_DO = 3  # `dlq`: the queue is empty; `replay`: nothing to move
EXIT_INTERRUPTED = 130  # Ctrl-C before the command could finish (the shell's 128 + SIGINT)

# Which option sets the port each local server listens on (engine.PortInUse.role).
PORT_FLAGS = {"webhook": "--webhook-port", "telegram": "--telegram-port", "agent": "--agent-port", "aws": "--aws-port"}


def _speed(value: str) -> float:
    """argparse type: a speed factor > 0."""
    speed = float(value)
    if not speed > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return speed


def _seconds(value: str) -> float:
    """argparse type: a number of seconds, 0 or more."""
    seconds = float(value)
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return seconds


def _port(value: str) -> int:
    """argparse type: a TCP port, 0 (any free one) to 65535."""
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {value}")
    return port


class CommandError(Exception):
    """What went wrong, in one line an operator can act on (printed without a traceback)."""


def main(argv: list[str] | None = None) -> int:
    """Run one `tgrelay` command; its exit status (EXIT_*)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CommandError as error:
        print(f"tgrelay {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"tgrelay {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """Every command and option, each with its help text; option defaults are shown by --help."""
    parser = argparse.ArgumentParser(prog="tgrelay", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.{' ' + details if details else ''}",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )

    demo = command(
        "demo",
        "post every sample update through the local stack and account for each",
        "Exits 0 when every update was answered, skipped or dead-lettered once; 1 otherwise.",
    )
    demo.add_argument("--speed", type=_speed, default=100.0, help="retry waits run this many times faster")
    _add_parameters(demo)
    demo.set_defaults(run=run_demo)

    local = command(
        "local",
        "run the local stack until Ctrl-C",
        "The terminal shows each execution as it ends and each webhook answer that did not enqueue"
        f" the update; handler logs and metrics go to {LOG_DIR.relative_to(ROOT)}/local.log.",
    )
    local.add_argument("--webhook-port", type=_port, default=8080, help="the webhook's port (0: any free port)")
    local.add_argument("--telegram-port", type=_port, default=8081, help="fake Telegram Bot API port (0: any)")
    local.add_argument("--agent-port", type=_port, default=8082, help="echo agent port (0: any)")
    local.add_argument("--agent-url", help="a real agent server instead of the echo agent")
    local.add_argument(
        "--stream-replies",
        type=_seconds,
        nargs="?",
        const=0.1,
        metavar="SECONDS",
        help="the echo agent streams every answer (text/event-stream), one word per SECONDS (0.1 if not given);"
        " per request: a fault with stream true/false",
    )
    local.add_argument(
        "--agent-token",
        default=os.environ.get("TGRELAY_AGENT_TOKEN", ""),
        help="bearer token for --agent-url (or TGRELAY_AGENT_TOKEN)",
    )
    local.add_argument(
        "--bot-token",
        default=os.environ.get("TGRELAY_BOT_TOKEN"),
        help="a real bot token (or TGRELAY_BOT_TOKEN): talk to your bot; updates come by getUpdates long polling",
    )
    local.add_argument(
        "--webhook-secret",
        default=DEFAULT_WEBHOOK_SECRET,
        help="the X-Telegram-Bot-Api-Secret-Token the webhook expects",
    )
    local.add_argument("--speed", type=_speed, default=1.0, help="retry waits run this many times faster")
    local.add_argument(
        "--aws-port", type=_port, default=DEFAULT_AWS_PORT, help="the local AWS endpoint (moto server; 0: any)"
    )
    _add_parameters(local)
    local.set_defaults(run=run_local)

    plan = command(
        "retry-plan",
        "each Task's retry waits and worst case, read from the ASL; then the automatic replays of dead letters",
    )
    plan.set_defaults(run=lambda args: print(f"{plans.retry_plan()}\n\n{plans.auto_replay_plan()}") or EXIT_OK)
    cost = command("cost", "billed state transitions per path and $ per million updates, read from the ASL")
    cost.set_defaults(run=lambda args: print(plans.cost_table()) or EXIT_OK)
    diagram = command("diagram", "the state machine as a Mermaid flowchart (the README's diagram)")
    diagram.set_defaults(run=lambda args: print(plans.mermaid()) or EXIT_OK)

    history = command("history", "an execution's path through the states, with retries and durations")
    history.add_argument("execution_arn", help="the execution's ARN (from the console, `tgrelay dlq` or local)")
    _add_target(history)
    history.set_defaults(run=run_history)
    dlq = command(
        "dlq",
        "the dead-letter queue's entries with their error attributes",
        f"Exits {EXIT_NOTHING_TO_DO} when the queue is empty.",
    )
    _add_target(dlq)
    dlq.set_defaults(run=run_dlq)
    replay = command(
        "replay",
        "move every dead-letter queue message back to the updates queue",
        f"Exits {EXIT_NOTHING_TO_DO} when there is nothing to move.",
    )
    _add_target(replay)
    replay.set_defaults(run=run_replay)
    register = command(
        "register-webhook",
        "setWebhook again (after the bot token was set), through the stack's registration function",
        "A deployed stack only: `tgrelay local` needs no webhook registration (the fake Bot API has none;"
        " with a real bot token it fetches updates by getUpdates).",
    )
    register.add_argument("--stack-name", required=True, help="the deployed stack's name")
    register.add_argument("--region", help="its AWS region (default: AWS_REGION or the profile's)")
    register.set_defaults(run=run_register_webhook)
    return parser


def _add_parameters(parser: argparse.ArgumentParser) -> None:
    """Template parameter overrides, read the way `sam deploy` reads them."""
    parser.add_argument(
        "--parameter-overrides",
        nargs="+",
        metavar="KEY=VALUE",
        help="template parameters, as for `sam deploy` (Key=Value or ParameterKey=Key,ParameterValue=Value);"
        " given, they replace the config file's parameter_overrides, as in SAM",
    )
    parser.add_argument(
        "--config-file",
        type=Path,
        help="the SAM config file whose [<config-env>.deploy.parameters] parameter_overrides apply"
        " (default: samconfig.toml of the repository, if it exists)",
    )
    parser.add_argument("--config-env", default="default", help="the environment (table) of --config-file to read")


def template_parameters(args: argparse.Namespace) -> dict[str, str]:
    """The template parameter overrides `args` give: --parameter-overrides, else the SAM config
    file's parameter_overrides (its `deploy` command, `global` merged in), parsed by SAM's own
    parser. Raises CommandError for a value SAM would refuse."""
    # SAM CLI's own reader and parser (aws-sam-cli is pinned in the dev extras): the same file
    # means the same parameters here and in `sam deploy`.
    from click import ClickException
    from samcli.cli.types import CfnParameterOverridesType
    from samcli.lib.config.exceptions import SamConfigFileReadException
    from samcli.lib.config.samconfig import SamConfig

    values = args.parameter_overrides
    source = "--parameter-overrides"
    if values is None:
        config_file = args.config_file or ROOT / "samconfig.toml"
        if args.config_file is not None and not args.config_file.is_file():
            raise CommandError(f"--config-file {args.config_file}: no such file")
        if not config_file.is_file():
            return {}
        args.config_file = config_file
        source = f"{args.config_file} [{args.config_env}.deploy.parameters] parameter_overrides"
        try:
            config = SamConfig(args.config_file.parent, args.config_file.name)
            if args.config_env not in config.get_stage_configuration_names():
                raise CommandError(f"{args.config_file} has no [{args.config_env}] environment (--config-env)")
            values = config.get_all(["deploy"], "parameters", args.config_env).get("parameter_overrides")
        except (SamConfigFileReadException, ValueError) as error:
            # SAM wraps the parser's exception as its argument (and its own str() then fails).
            detail = error.args[0] if error.args else error
            raise CommandError(f"cannot read {args.config_file}: {detail}") from None
    try:
        return CfnParameterOverridesType().convert(values, None, None)
    except ClickException as error:
        raise CommandError(f"{source}: {error.format_message()}") from None


@contextlib.contextmanager
def _local_stack(**options: Any) -> Iterator[LocalRelay]:
    """A started LocalRelay(**options), stopped on the way out. A parameter the template refuses
    (name or value) or a port that is taken is a CommandError."""
    from tgrelay_local.engine import LocalRelay, PortInUse

    try:
        relay = LocalRelay(**options)
    except PortInUse as error:
        raise _port_error(error) from None
    except ValueError as error:
        raise CommandError(str(error)) from None
    try:
        relay.start()
    except PortInUse as error:
        raise _port_error(error) from None
    try:
        yield relay
    finally:
        relay.stop()


def _port_error(error: PortInUse) -> CommandError:
    flag = PORT_FLAGS[error.role]
    return CommandError(
        f"port {error.port} ({error.role}) is already in use: stop what listens there or pass another {flag}"
    )


# -- demo ------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    # In update_id order, as Telegram delivers them (one chat's updates one after another).
    samples = [(path.name, json.loads(path.read_text())) for path in EVENTS.glob("*.json")]
    samples.sort(key=lambda sample: (sample[1]["update_id"], sample[0]))
    by_name = dict(samples)
    log_path = LOG_DIR / "demo.log"
    log_path.unlink(missing_ok=True)
    clock = RetryClock("scaled", scale=args.speed)

    parameters = _local_parameters(args)
    with _local_stack(clock=clock, log_path=log_path, parameters=parameters) as relay:
        assert relay.telegram is not None and relay.agent is not None  # no URLs given: it runs both fakes
        print(
            f"Local stack up: webhook {relay.webhook_url}, fake Telegram {relay.telegram.url}, agent {relay.agent_url}"
        )
        script = _inject_demo_faults(relay, by_name)
        for line in script:
            print(f"  scripted: {line}")

        posted: list[tuple[str, dict, httpx.Response]] = []
        for name, update in samples:
            posted.append((name, update, relay.post_update(update)))
        # Telegram delivers again when it misses our answer: same update_id, so SQS's dedupe
        # drops the copy (on AWS; moto forgets the id once the message is consumed).
        again = "private_text.json" if "private_text.json" in by_name else samples[0][0]
        posted.append((f"{again} (delivered again)", by_name[again], relay.post_update(by_name[again])))
        relay.wait_idle()

        # The same update after SQS's 5-minute dedupe window: only the DynamoDB claim stops it.
        late = _redeliver_after_dedupe_window(relay)
        relay.wait_idle()
        # A dead letter whose cause was passing comes back by itself (AutoReplay), on the scaled clock.
        expected = "group_text.json" in by_name and relay.template.parameters["AutoReplay"] == "true"
        auto_replayed = _wait_for_auto_replays(relay, expected=int(expected))
        relay.wait_idle()
        replayed = relay.replay_dead_letters()
        relay.wait_idle()

        print(f"\nWebhook answers ({len(posted)} POSTs):")
        for name, _, response in posted:
            print(f"  {response.status_code}  {name:<40} {response.text}")
        for (chat, topic), update_ids in _conversations(posted).items():
            if len(update_ids) > 1:
                where = f"chat {chat}" + (f" topic {topic}" if topic is not None else "")
                print(
                    f"  {where}: updates {', '.join(map(str, update_ids))} are one conversation: one agent turn at"
                    " a time, in order; those waiting when a turn begins are answered in it (QueuedMessages=merge)"
                )
        report = _report_executions(relay)
        print("\nTelegram received:")
        for message in relay.telegram.sent_messages():
            topic = f" topic {message['message_thread_id']}" if "message_thread_id" in message else ""
            print(f"  chat {message['chat_id']}{topic}: {_short(message['text'])}")
        summary = _summary(relay, posted, report, late, auto_replayed, replayed)

    print("\nSummary")
    for label, value in summary.items():
        print(f"  {label:<28} {value}")
    print(f"  {'wall time':<28} {time.monotonic() - started:.1f} s")
    print(f"\nHandler logs: {log_path.relative_to(ROOT)}")
    ok = summary["lost"] == 0 and summary["duplicate replies"] == 0
    print("OK: every update accounted for" if ok else "FAILED: updates lost or answered twice")
    return 0 if ok else 1


def _inject_demo_faults(relay: LocalRelay, samples: dict[str, dict]) -> list[str]:
    """Faults that take some sample updates down the retry, dead-letter and blocked paths."""
    assert relay.telegram is not None and relay.agent is not None  # the demo's relay runs both fakes
    script = []
    if "group_text.json" in samples:
        update_id = samples["group_text.json"]["update_id"]
        # The first execution's every attempt: 1 + CallAgent's 6 AgentUnavailable retries.
        relay.agent.add_fault({"status": 503, "count": 7, "match": {"update_id": update_id}})
        script.append(
            f"agent answers 503 to every attempt for update {update_id} (retried with backoff, dead-lettered with"
            " the 'I will try again' apology, replayed automatically after AutoReplayDelays' first wait)"
        )
    if "forum_topic_text.json" in samples:
        update_id = samples["forum_topic_text.json"]["update_id"]
        relay.agent.add_fault({"status": 400, "count": 1, "match": {"update_id": update_id}})
        script.append(f"agent rejects update {update_id} with 400 (dead-lettered, then replayed)")
    if "photo_with_caption.json" in samples:
        update = samples["photo_with_caption.json"]
        # Matched on the echo reply's text, so only the turn that answers this update meets the
        # "blocked" answer. Its chat has earlier messages: waiting when a turn begins, they ride
        # along (QueuedMessages=merge), so that turn may start at any of them.
        before = [
            text
            for other in sorted(samples.values(), key=lambda other: other["update_id"])
            if other["update_id"] < update["update_id"]
            and _chat_of(other) == _chat_of(update)
            and (text := _text_of(other))
        ]
        from tgrelay.envelope import media_fields
        from tgrelay_local.fakes import describe_file

        # The echo agent names the photo after the texts (the samples before it carry no files).
        (photo,) = media_fields(update["message"])["attachments"]
        described = describe_file({**photo, "size": photo["file_size"]})
        for start in range(len(before) + 1):
            reply = "echo: " + "\n".join([*before[start:], update["message"]["caption"]]) + f" [{described}]"
            relay.telegram.add_fault({"status": 403, "count": None, "match": {"text": reply}})
        script.append(
            f"the user has blocked the bot by the time update {update['update_id']} is answered"
            " (alone, or in one turn with messages of its chat before it)"
        )
    return script


def _chat_of(update: dict) -> tuple | None:
    """The sample's conversation: chat, and forum topic if any."""
    message = update.get("message") or (update.get("callback_query") or {}).get("message")
    return None if message is None else (message["chat"]["id"], message.get("message_thread_id"))


def _text_of(update: dict) -> str | None:
    """What the agent is asked for a sample the webhook enqueues (template defaults); else None."""
    if "callback_query" in update:
        return update["callback_query"].get("data")
    message = update.get("message") or {}
    return message.get("text") or message.get("caption")


def _conversations(posted) -> dict[tuple, list[int]]:
    """The enqueued updates of each conversation, in update_id order."""
    conversations: dict[tuple, set[int]] = {}
    for _, update, response in posted:
        body = response.json() if response.status_code == 200 else {}
        if body and "skipped" not in body and not _answered_here(body):
            chat = _chat_of(update)
            assert chat is not None  # the webhook enqueued it: it has a chat
            conversations.setdefault(chat, set()).add(update["update_id"])
    return {chat: sorted(ids) for chat, ids in conversations.items()}


def _redeliver_after_dedupe_window(relay: LocalRelay) -> int | None:
    """Put the first executed update's message on the queue again under a fresh dedupe id."""
    if not relay.pipe.started:
        return None
    # The pipe's InputTemplate handed the execution {update, group_id}: the body it parsed, its group.
    record = json.loads(relay.describe(relay.pipe.started[0])["input"])[0]
    update_id = record["update"]["update_id"]
    relay.sqs.send_message(
        QueueUrl=relay.pipe.queue_url,
        MessageBody=json.dumps(record["update"]),
        MessageGroupId=record["group_id"],
        MessageDeduplicationId=f"{update_id}-after-window",  # the webhook's is the update_id
    )
    return update_id


def _report_executions(relay: LocalRelay) -> list[tuple[int, str, Mapping[str, Any], list[int]]]:
    """Print each execution's path; (update_id, outcome, description, the update_ids its turn answered
    besides its own) per execution."""
    report: list[tuple[int, str, Mapping[str, Any], list[int]]] = []
    print(f"\nExecutions ({len(relay.pipe.started)}):")
    for arn in relay.pipe.started:
        description = relay.describe(arn)
        update_id = json.loads(description["input"])[0]["update"]["update_id"]
        steps = state_path(relay.history(arn))
        outcome = OUTCOMES.get(steps[-1].state, "lost") if steps else "lost"
        carried = _carried(description)
        seconds = (description["stopDate"] - description["startDate"]).total_seconds()
        with_others = f" (with {', '.join(map(str, carried))})" if carried else ""
        print(f"\nupdate {update_id}  {description['status']}  {outcome}{with_others}  {seconds:.2f} s  ...{arn[-12:]}")
        print(format_path(steps))
        report.append((update_id, outcome, description, carried))
    return report


def _carried(description: Mapping[str, Any]) -> list[int]:
    """The update_ids answered in this execution's turn besides its own (WaitForTurn's result,
    $.update.merged), from a succeeded execution's output; [] otherwise."""
    try:
        merged = json.loads(description.get("output") or "{}")["update"].get("merged") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return [envelope["update_id"] for envelope in merged]


def _wait_for_auto_replays(relay: LocalRelay, expected: int, timeout: float = 60) -> int:
    """Until DeadLetterReplayFunction (on its schedule, on the relay's clock) has replayed `expected`
    dead letters, or `timeout` s; how many it replayed."""
    deadline = time.monotonic() + timeout
    while True:
        replayed = sum(answer.get("Payload", {}).get("replayed", 0) for answer in relay.schedules.results)
        if replayed >= expected or time.monotonic() > deadline:
            return replayed
        time.sleep(0.2)


def _summary(
    relay: LocalRelay, posted, report, late: int | None, auto_replayed: int, replayed: int
) -> dict[str, int | str]:
    answers = [(update, response.status_code, response.json()) for _, update, response in posted]
    answered = [update["update_id"] for update, status, body in answers if status == 200 and _answered_here(body)]
    enqueued = {
        update["update_id"]
        for update, status, body in answers
        if status == 200 and "skipped" not in body and not _answered_here(body)
    }
    skipped = [update["update_id"] for update, status, body in answers if status == 200 and "skipped" in body]
    rejected = [update["update_id"] for update, status, _ in answers if status != 200]
    outcomes = Counter(outcome for _, outcome, _, _ in report)
    # A turn answers its own update and those merged into it; each of them counts as replied once.
    replies_per_update = Counter(
        answered_id
        for update_id, outcome, _, carried in report
        if outcome == "replied"
        for answered_id in (update_id, *carried)
    )
    undeliverable = {
        answered_id
        for update_id, outcome, _, carried in report
        if outcome == "undeliverable"
        for answered_id in (update_id, *carried)
    }
    # A dead letter carries its turn: its update and those merged into it ("merged").
    in_dlq = {update_id for message in relay.dead_letters() for update_id in _dead_letter_update_ids(message["Body"])}
    settled = set(replies_per_update) | undeliverable | in_dlq
    accepted_posts = sum(
        1 for update, status, body in answers if status == 200 and "skipped" not in body and not _answered_here(body)
    )
    return {
        "webhook POSTs": len(posted),
        "enqueued updates": len(enqueued),
        "answered at webhook": len(answered),
        "skipped at webhook": len(skipped),
        "rejected at webhook (4xx)": len(rejected),
        "dropped by SQS dedupe": accepted_posts + (late is not None) + auto_replayed + replayed - len(report),
        "redelivered after window": 0 if late is None else 1,
        "executions": len(report),
        "replied": outcomes["replied"],
        "merged into an earlier turn": outcomes["merged into an earlier turn"],
        "duplicates skipped": outcomes["duplicate skipped"],
        "undeliverable": outcomes["undeliverable"],
        "dead-lettered": outcomes["dead-lettered"],
        "replayed automatically": auto_replayed,
        "replayed from DLQ": replayed,
        "in DLQ now": len(in_dlq),
        "lost": len(enqueued - settled),
        "duplicate replies": sum(1 for count in replies_per_update.values() if count > 1),
    }


def _dead_letter_update_ids(body: str) -> list[int]:
    """The update_ids a dead letter carries: its own, then those merged into its turn."""
    envelope = json.loads(body)
    return [envelope["update_id"], *(merged["update_id"] for merged in envelope.get("merged") or [])]


def _answered_here(body: dict) -> bool:
    """The webhook answered the update itself (/start, /help): its answer is a Bot API request.
    (An enqueued button press carries one too: answerCallbackQuery, which stops the spinner.)"""
    return body.get("method") not in (None, "answerCallbackQuery")


def _short(text: str, width: int = 70) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# -- operator commands: a deployed stack, or a running `tgrelay local` -------------------


def _add_target(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack-name", help="a deployed stack (AWS credentials from the environment)")
    where.add_argument(
        "--local",
        nargs="?",
        const=f"http://127.0.0.1:{DEFAULT_AWS_PORT}",
        metavar="ENDPOINT",
        help=f"a running `tgrelay local`, by its AWS endpoint (alone: http://127.0.0.1:{DEFAULT_AWS_PORT})",
    )
    parser.add_argument("--region", help="the stack's AWS region (default: AWS_REGION or the profile's)")


@contextlib.contextmanager
def _aws_errors(args: argparse.Namespace) -> Iterator[None]:
    """Turn what boto3 raises for a wrong target into one line saying what to do."""
    try:
        yield
    except botocore.exceptions.NoRegionError:
        raise CommandError("no AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION)") from None
    except botocore.exceptions.NoCredentialsError:
        raise CommandError(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (`aws configure`)"
        ) from None
    except botocore.exceptions.EndpointConnectionError as error:
        if args.local:
            raise CommandError(
                f"nothing answers at {args.local}: start `tgrelay local` (its AWS endpoint is --aws-port,"
                f" {DEFAULT_AWS_PORT} by default) or pass --local with its endpoint"
            ) from None
        raise CommandError(f"cannot reach AWS at {error.kwargs.get('endpoint_url')}: check the network") from None
    except botocore.exceptions.ClientError as error:
        raise CommandError(_client_error(error, args)) from None
    except botocore.exceptions.BotoCoreError as error:  # a profile, region, endpoint or TLS problem
        raise CommandError(str(error)) from None
    except ValueError as error:  # botocore: an --local endpoint that is not a URL; operator: not a tgrelay stack
        raise CommandError(str(error)) from None


def _client_error(error: botocore.exceptions.ClientError, args: argparse.Namespace) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    if code == "ExecutionDoesNotExist":
        return f"no execution {getattr(args, 'execution_arn', '')} in {_where(args)}"
    if code == "InvalidArn":
        return f"not an execution ARN: {getattr(args, 'execution_arn', '')} ({message})"
    if code == "ValidationError" and "does not exist" in message:  # CloudFormation's "Stack with id X does not exist"
        return f"no stack named {args.stack_name!r} in {_region(args)}"
    if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
        return f"{_where(args)} has no tgrelay queues: is it a `tgrelay local`?"
    return f"{error.operation_name} failed: {code}: {message}"


def _where(args: argparse.Namespace) -> str:
    """The stack a command reads, in words."""
    if args.local:
        return f"the local stack {STACK} at {args.local}"
    return f"stack {args.stack_name} ({_region(args)})"


def _region(args: argparse.Namespace) -> str:
    try:
        return operator.session_for(args.region).region_name or "the default region"
    except botocore.exceptions.BotoCoreError:  # e.g. AWS_PROFILE names no profile: _aws_errors says so
        return "the default region"


def _target(args: argparse.Namespace) -> operator.Deployment:
    return operator.local(args.local) if args.local else operator.deployed(args.stack_name, args.region)


def run_history(args: argparse.Namespace) -> int:
    with _aws_errors(args):
        deployment = _target(args)
        description = deployment.sfn.describe_execution(executionArn=args.execution_arn)
        steps = operator.execution_path(deployment, args.execution_arn)
    print(f"{description['status']}  {args.execution_arn}")
    if description.get("error"):
        print(f"error: {description['error']}")
    print(format_path(steps))
    return EXIT_OK


def run_dlq(args: argparse.Namespace) -> int:
    with _aws_errors(args):
        entries = operator.dead_letters(_target(args))
    print(f"{_where(args)}: {len(entries)} message(s) in the dead-letter queue")
    for entry in entries:
        print(f"\nupdate {entry['update_id']}  {entry['error']}")
        if entry["merged"]:
            print(f"  merged into its turn: {', '.join(map(str, entry['merged']))}")
        if entry["cause"]:
            print(f"  cause: {_short(entry['cause'], 200)}")
        if entry["execution"]:
            print(f"  execution: {entry['execution']}")
    return EXIT_OK if entries else EXIT_NOTHING_TO_DO


def run_replay(args: argparse.Namespace) -> int:
    with _aws_errors(args):
        deployment = _target(args)
        waiting = operator.dead_letter_count(deployment)
        if not waiting:
            print(f"{_where(args)}: the dead-letter queue is empty; nothing to replay")
            return EXIT_NOTHING_TO_DO
        released = operator.release_claims(deployment)
        if released:
            print(f"released {released} claim(s) left IN_PROGRESS by the execution that parked them")
        if args.local:
            # moto has no StartMessageMoveTask: the engine's move does the same, message by message.
            from tgrelay_local.engine import move_messages

            moved = move_messages(deployment.sqs, deployment.dead_letter_queue_url, deployment.queue_url)
            print(f"moved {moved} message(s) back to the updates queue")
            return EXIT_OK
        # The workflow sends its dead letters itself, so SQS knows no "original source" for
        # them: the destination is named explicitly.
        task = deployment.sqs.start_message_move_task(
            SourceArn=deployment.queue_arn(deployment.dead_letter_queue_url),
            DestinationArn=deployment.queue_arn(deployment.queue_url),
        )
    print(f"move task started for {waiting} message(s): {task['TaskHandle']}")
    print("progress: aws sqs list-message-move-tasks --source-arn <DeadLetterQueue ARN>")
    return EXIT_OK


def run_register_webhook(args: argparse.Namespace) -> int:
    args.local = None  # a deployed stack only
    with _aws_errors(args):
        deployment = operator.deployed(args.stack_name, args.region)
        if not deployment.registration_function:
            raise CommandError("this stack was deployed with RegisterWebhook=false: it has no registration function")
        answer = deployment.lambda_.invoke(
            FunctionName=deployment.registration_function,
            Payload=json.dumps({"url": deployment.webhook_url}).encode(),
        )
    print(answer["Payload"].read().decode())
    return EXIT_FAILED if "FunctionError" in answer else EXIT_OK


# -- local -----------------------------------------------------------------------------


def run_local(args: argparse.Namespace) -> int:
    real_telegram = bool(args.bot_token)
    ports = [args.webhook_port, args.telegram_port, args.agent_port, args.aws_port]
    taken = sorted({port for port in ports if port and ports.count(port) > 1})
    if taken:
        raise CommandError(f"port {taken[0]} is given to two servers: give each its own port (or 0: any free one)")
    parameters = _local_parameters(args)
    stop = threading.Event()
    refusals: list[str] = []  # Telegram's answer when it refuses getUpdates
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # each line as it happens, also into a pipe
    log_path = LOG_DIR / "local.log"
    with _local_stack(
        clock=RetryClock("scaled", scale=args.speed) if args.speed != 1 else RetryClock("real"),
        agent_url=args.agent_url,
        agent_token=args.agent_token,
        bot_token=args.bot_token,
        telegram_api_url="https://api.telegram.org" if real_telegram else None,
        webhook_secret=args.webhook_secret,
        webhook_port=args.webhook_port,
        telegram_port=args.telegram_port,
        agent_port=args.agent_port,
        aws_port=args.aws_port,
        log_path=log_path,
        parameters=parameters,
    ) as relay:
        print(f"webhook         POST {relay.webhook_url}")
        print(f"  secret header X-Telegram-Bot-Api-Secret-Token: {relay.webhook_secret}")
        if relay.telegram:
            print(
                f"fake Telegram   {relay.telegram.url}/bot{relay.bot_token}/<method>"
                "  (/_calls, /_faults, /_reset, /_migrate)"
            )
        else:
            print("Telegram        the real Bot API; updates by getUpdates long polling")
            threading.Thread(target=_long_poll, args=(relay, stop, refusals), name="getUpdates", daemon=True).start()
        if relay.agent:
            relay.agent.stream_delay = args.stream_replies
            streams = f", streams a word per {args.stream_replies:g} s" if args.stream_replies is not None else ""
            print(f"echo agent      {relay.agent_url}  ({relay.agent.url}/_calls, /_faults, /_reset){streams}")
        else:
            print(f"agent server    {relay.agent_url}")
        print(f"AWS (moto)      {relay.aws_endpoint}  (tgrelay history|dlq|replay --local {relay.aws_endpoint})")
        if parameters:
            print(f"parameters      {' '.join(f'{key}={value}' for key, value in parameters.items())}")
        print(f"handler logs    {_shown_path(log_path)}\nCtrl-C stops.")
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            with contextlib.suppress(KeyboardInterrupt):
                _follow(relay, stop)
        finally:
            signal.signal(signal.SIGTERM, previous)
    if refusals:
        raise CommandError(
            f"Telegram refused getUpdates ({refusals[0]}): a 409 means the bot has a webhook"
            " (deleteWebhook first), a 401 a wrong --bot-token"
        )
    return EXIT_OK


def _local_parameters(args: argparse.Namespace) -> dict[str, str]:
    """template_parameters(args) for the local stack: AgentUrl is the echo agent's or --agent-url's."""
    parameters = template_parameters(args)
    if parameters.pop("AgentUrl", None) is not None:
        print("note: AgentUrl from the parameter overrides is not used locally (the echo agent, or --agent-url)")
    return parameters


def _shown_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _follow(relay: LocalRelay, stop: threading.Event) -> None:
    """Until `stop`: one line per execution when it ends, and one per webhook answer that did not
    enqueue the update (a skip, a refusal, an answer given at the webhook)."""
    started = answered = 0
    running: list[str] = []
    while not stop.wait(0.2):
        for status, body in relay.webhook_answers[answered:]:
            answered += 1
            if line := _webhook_line(status, body):
                print(line)
        running += relay.pipe.started[started:]
        started = len(relay.pipe.started)
        for arn in list(running):
            description = relay.describe(arn)
            if description["status"] != "RUNNING":
                running.remove(arn)
                steps = state_path(relay.history(arn))
                update_id = json.loads(description["input"])[0].get("update", {}).get("update_id")
                print(
                    f"execution ...{arn[-12:]} update {update_id} {description['status']}:"
                    f" {' > '.join(step.state for step in steps)}"
                )


def _webhook_line(status: int, body: str) -> str | None:
    """The terminal line for a webhook answer; None for a plain enqueue ({"ok": true})."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status == 200 and isinstance(answer, dict):
        if "skipped" in answer:
            return f"webhook 200 skipped: {answer['skipped']}"
        if _answered_here(answer):
            return f"webhook 200 answered at the webhook: {answer['method']}"
        return None
    return f"webhook {status}: {_short(body, 120)}"


def _long_poll(relay: LocalRelay, stop: threading.Event, refusals: list[str]) -> None:
    """Real bot without a public URL: fetch updates by getUpdates and post them to the webhook.
    Telegram's refusal ends it (and `tgrelay local`): its description is put in `refusals`."""
    api = f"{relay.telegram_api_url}/bot{relay.bot_token}"
    offset = None
    with httpx.Client(timeout=40) as client:
        while not stop.is_set():
            try:
                answer = client.post(f"{api}/getUpdates", json={"timeout": 30, "offset": offset}).json()
            except httpx.HTTPError as error:
                print(f"getUpdates failed ({type(error).__name__}); trying again", file=sys.stderr)
                stop.wait(5)
                continue
            if not answer.get("ok"):
                refusals.append(f"{answer.get('error_code')} {answer.get('description')}")
                stop.set()
                return
            for update in answer["result"]:
                relay.post_update(update)
                offset = update["update_id"] + 1


if __name__ == "__main__":
    sys.exit(main())
