"""`tgrelay` — run the workflow on this machine (`demo`, `local`) and operate it, here or on AWS
(`retry-plan`, `cost`, `history`, `dlq`, `replay`, `register-webhook`, `diagram`)."""

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter

import httpx

from tgrelay_local import operator, plans
from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import DEFAULT_WEBHOOK_SECRET, LocalRelay
from tgrelay_local.history import format_path, state_path
from tgrelay_local.template import ROOT

EVENTS = ROOT / "events" / "telegram"
DEFAULT_AWS_PORT = 8083
LOG_DIR = ROOT / ".tgrelay"

# The last state of an execution names its outcome.
OUTCOMES = {
    "MarkDone": "replied",
    "AlreadyHandled": "duplicate skipped",
    "MarkUndeliverable": "undeliverable",
    "Failed": "dead-lettered",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tgrelay", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="post every sample update through the local stack and account for each")
    demo.add_argument("--speed", type=float, default=100.0, help="retry waits run this many times faster (100)")
    demo.set_defaults(run=run_demo)

    local = commands.add_parser("local", help="run the local stack until Ctrl-C")
    local.add_argument("--webhook-port", type=int, default=8080)
    local.add_argument("--telegram-port", type=int, default=8081, help="fake Telegram Bot API port")
    local.add_argument("--agent-port", type=int, default=8082, help="echo agent port")
    local.add_argument("--agent-url", help="a real agent server instead of the echo agent")
    local.add_argument("--agent-token", default=os.environ.get("TGRELAY_AGENT_TOKEN", ""))
    local.add_argument(
        "--bot-token",
        default=os.environ.get("TGRELAY_BOT_TOKEN"),
        help="a real bot token (or TGRELAY_BOT_TOKEN): talk to your bot; updates come by getUpdates long polling",
    )
    local.add_argument("--webhook-secret", default=DEFAULT_WEBHOOK_SECRET)
    local.add_argument("--speed", type=float, default=1.0, help="retry waits run this many times faster (1)")
    local.add_argument("--aws-port", type=int, default=DEFAULT_AWS_PORT, help="the local AWS endpoint (moto)")
    local.set_defaults(run=run_local)

    plan = commands.add_parser("retry-plan", help="each Task's retry waits and worst case, read from the ASL")
    plan.set_defaults(run=lambda args: print(plans.retry_plan()) or 0)
    cost = commands.add_parser("cost", help="billed state transitions per path and $ per million updates")
    cost.set_defaults(run=lambda args: print(plans.cost_table()) or 0)
    diagram = commands.add_parser("diagram", help="the state machine as a Mermaid flowchart (README)")
    diagram.set_defaults(run=lambda args: print(plans.mermaid()) or 0)

    history = commands.add_parser("history", help="an execution's path through the states")
    history.add_argument("execution_arn")
    _add_target(history)
    history.set_defaults(run=run_history)
    dlq = commands.add_parser("dlq", help="the dead-letter queue's entries with their error attributes")
    _add_target(dlq)
    dlq.set_defaults(run=run_dlq)
    replay = commands.add_parser("replay", help="move every dead-letter queue message back to the updates queue")
    _add_target(replay)
    replay.set_defaults(run=run_replay)
    register = commands.add_parser("register-webhook", help="setWebhook again (after the bot token was set)")
    register.add_argument("--stack-name", required=True)
    register.add_argument("--region")
    register.set_defaults(run=run_register_webhook)

    args = parser.parse_args(argv)
    return args.run(args)


# -- demo ------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    samples = [(path.name, json.loads(path.read_text())) for path in sorted(EVENTS.glob("*.json"))]
    by_name = dict(samples)
    log_path = LOG_DIR / "demo.log"
    log_path.unlink(missing_ok=True)
    clock = RetryClock("scaled", scale=args.speed)

    with LocalRelay(clock=clock, log_path=log_path) as relay:
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
        replayed = relay.replay_dead_letters()
        relay.wait_idle()

        print(f"\nWebhook answers ({len(posted)} POSTs):")
        for name, _, response in posted:
            print(f"  {response.status_code}  {name:<40} {response.text}")
        report = _report_executions(relay)
        print("\nTelegram received:")
        for message in relay.telegram.sent_messages():
            topic = f" topic {message['message_thread_id']}" if "message_thread_id" in message else ""
            print(f"  chat {message['chat_id']}{topic}: {_short(message['text'])}")
        summary = _summary(relay, posted, report, late, replayed)

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
    script = []
    if "group_text.json" in samples:
        update_id = samples["group_text.json"]["update_id"]
        relay.agent.add_fault({"status": 503, "count": 2, "match": {"update_id": update_id}})
        script.append(f"agent answers 503 twice for update {update_id} (retried with backoff)")
    if "forum_topic_text.json" in samples:
        update_id = samples["forum_topic_text.json"]["update_id"]
        relay.agent.add_fault({"status": 400, "count": 1, "match": {"update_id": update_id}})
        script.append(f"agent rejects update {update_id} with 400 (dead-lettered, then replayed)")
    if "photo_with_caption.json" in samples:
        update = samples["photo_with_caption.json"]
        # Matched on the echo reply's text, so only this update meets the "blocked" answer.
        reply = f"echo: {update['message']['caption']}"
        relay.telegram.add_fault({"status": 403, "count": None, "match": {"text": reply}})
        script.append(f"the user has blocked the bot by the time update {update['update_id']} is answered")
    return script


def _redeliver_after_dedupe_window(relay: LocalRelay) -> int | None:
    """Put the first executed update's message on the queue again under a fresh dedupe id."""
    if not relay.pipe.started:
        return None
    record = json.loads(relay.describe(relay.pipe.started[0])["input"])[0]
    relay.sqs.send_message(
        QueueUrl=relay.pipe.queue_url,
        MessageBody=record["body"],
        MessageGroupId=record["attributes"]["MessageGroupId"],
        MessageDeduplicationId=f"{record['attributes']['MessageDeduplicationId']}-after-window",
    )
    return json.loads(record["body"])["update_id"]


def _report_executions(relay: LocalRelay) -> list[tuple[int, str, dict]]:
    """Print each execution's path; (update_id, outcome, description) per execution."""
    report = []
    print(f"\nExecutions ({len(relay.pipe.started)}):")
    for arn in relay.pipe.started:
        description = relay.describe(arn)
        update_id = json.loads(json.loads(description["input"])[0]["body"])["update_id"]
        steps = state_path(relay.history(arn))
        outcome = OUTCOMES.get(steps[-1].state, "lost") if steps else "lost"
        seconds = (description["stopDate"] - description["startDate"]).total_seconds()
        print(f"\nupdate {update_id}  {description['status']}  {outcome}  {seconds:.2f} s  ...{arn[-12:]}")
        print(format_path(steps))
        report.append((update_id, outcome, description))
    return report


def _summary(relay: LocalRelay, posted, report, late: int | None, replayed: int) -> dict[str, int | str]:
    answers = [(update, response.status_code, response.json()) for _, update, response in posted]
    answered = [update["update_id"] for update, status, body in answers if status == 200 and _answered_here(body)]
    enqueued = {
        update["update_id"]
        for update, status, body in answers
        if status == 200 and "skipped" not in body and not _answered_here(body)
    }
    skipped = [update["update_id"] for update, status, body in answers if status == 200 and "skipped" in body]
    rejected = [update["update_id"] for update, status, _ in answers if status != 200]
    outcomes = Counter(outcome for _, outcome, _ in report)
    replies_per_update = Counter(update_id for update_id, outcome, _ in report if outcome == "replied")
    in_dlq = {json.loads(message["Body"])["update_id"] for message in relay.dead_letters()}
    settled = {u for u, outcome, _ in report if outcome in ("replied", "undeliverable")} | in_dlq
    accepted_posts = sum(
        1 for update, status, body in answers if status == 200 and "skipped" not in body and not _answered_here(body)
    )
    return {
        "webhook POSTs": len(posted),
        "enqueued updates": len(enqueued),
        "answered at webhook": len(answered),
        "skipped at webhook": len(skipped),
        "rejected at webhook (4xx)": len(rejected),
        "dropped by SQS dedupe": accepted_posts + (late is not None) + replayed - len(report),
        "redelivered after window": 0 if late is None else 1,
        "executions": len(report),
        "replied": outcomes["replied"],
        "duplicates skipped": outcomes["duplicate skipped"],
        "undeliverable": outcomes["undeliverable"],
        "dead-lettered": outcomes["dead-lettered"],
        "replayed from DLQ": replayed,
        "in DLQ now": len(in_dlq),
        "lost": len(enqueued - settled),
        "duplicate replies": sum(1 for count in replies_per_update.values() if count > 1),
    }


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
        help=f"a running `tgrelay local` (default endpoint http://127.0.0.1:{DEFAULT_AWS_PORT})",
    )
    parser.add_argument("--region")


def _target(args: argparse.Namespace) -> operator.Deployment:
    return operator.local(args.local) if args.local else operator.deployed(args.stack_name, args.region)


def run_history(args: argparse.Namespace) -> int:
    deployment = _target(args)
    description = deployment.sfn.describe_execution(executionArn=args.execution_arn)
    print(f"{description['status']}  {args.execution_arn}")
    if description.get("error"):
        print(f"error: {description['error']}")
    print(format_path(operator.execution_path(deployment, args.execution_arn)))
    return 0


def run_dlq(args: argparse.Namespace) -> int:
    entries = operator.dead_letters(_target(args))
    print(f"{len(entries)} message(s) in the dead-letter queue")
    for entry in entries:
        print(f"\nupdate {entry['update_id']}  {entry['error']}")
        if entry["cause"]:
            print(f"  cause: {_short(entry['cause'], 200)}")
        if entry["execution"]:
            print(f"  execution: {entry['execution']}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    deployment = _target(args)
    released = operator.release_claims(deployment)
    if released:
        print(f"released {released} claim(s) left IN_PROGRESS by the execution that parked them")
    if args.local:
        # moto has no StartMessageMoveTask: the engine's move does the same, message by message.
        from tgrelay_local.engine import move_messages

        moved = move_messages(deployment.sqs, deployment.dead_letter_queue_url, deployment.queue_url)
        print(f"moved {moved} message(s) back to the updates queue")
        return 0
    # The workflow sends its dead letters itself, so SQS knows no "original source" for
    # them: the destination is named explicitly.
    task = deployment.sqs.start_message_move_task(
        SourceArn=deployment.queue_arn(deployment.dead_letter_queue_url),
        DestinationArn=deployment.queue_arn(deployment.queue_url),
    )
    print(f"move task started: {task['TaskHandle']}")
    print("progress: aws sqs list-message-move-tasks --source-arn <DeadLetterQueue ARN>")
    return 0


def run_register_webhook(args: argparse.Namespace) -> int:
    deployment = operator.deployed(args.stack_name, args.region)
    if not deployment.registration_function:
        print("this stack was deployed with RegisterWebhook=false", file=sys.stderr)
        return 1
    answer = deployment.lambda_.invoke(
        FunctionName=deployment.registration_function, Payload=json.dumps({"url": deployment.webhook_url}).encode()
    )
    print(answer["Payload"].read().decode())
    return 1 if "FunctionError" in answer else 0


# -- local -----------------------------------------------------------------------------


def run_local(args: argparse.Namespace) -> int:
    real_telegram = bool(args.bot_token)
    relay = LocalRelay(
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
        log_path=LOG_DIR / "local.log",
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with relay:
        print(f"webhook         POST {relay.webhook_url}")
        print(f"  secret header X-Telegram-Bot-Api-Secret-Token: {relay.webhook_secret}")
        if relay.telegram:
            print(f"fake Telegram   {relay.telegram.url}/bot{relay.bot_token}/<method>  (/_calls, /_faults, /_reset)")
        else:
            print("Telegram        the real Bot API; updates by getUpdates long polling")
            threading.Thread(target=_long_poll, args=(relay, stop), name="getUpdates", daemon=True).start()
        if relay.agent:
            print(f"echo agent      {relay.agent_url}  ({relay.agent.url}/_calls, /_faults, /_reset)")
        else:
            print(f"agent server    {relay.agent_url}")
        print(f"AWS (moto)      {relay.aws_endpoint}  (tgrelay history|dlq|replay --local)")
        print(f"handler logs    {(LOG_DIR / 'local.log').relative_to(ROOT)}\nCtrl-C stops.")
        shown = 0
        try:
            while not stop.wait(0.5):
                for arn in relay.pipe.started[shown:]:
                    _print_when_done(relay, arn)
                    shown += 1
        except KeyboardInterrupt:
            pass
    return 0


def _print_when_done(relay: LocalRelay, arn: str) -> None:
    while relay.describe(arn)["status"] == "RUNNING":
        time.sleep(0.1)
    steps = state_path(relay.history(arn))
    print(f"execution ...{arn[-12:]}: {' > '.join(step.state for step in steps)}")


def _long_poll(relay: LocalRelay, stop: threading.Event) -> None:
    """Real bot without a public URL: fetch updates by getUpdates and post them to the webhook."""
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
                # 409: a webhook is set for this bot; getUpdates cannot be used alongside it.
                print(f"getUpdates refused: {answer.get('description')}", file=sys.stderr)
                stop.set()
                return
            for update in answer["result"]:
                relay.post_update(update)
                offset = update["update_id"] + 1


if __name__ == "__main__":
    sys.exit(main())
