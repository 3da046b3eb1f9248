"""`tgrelay` as a person at a terminal meets it: quiet output, errors in one line of English,
help for every option, and the local stack configured by the same parameter overrides as
`sam deploy` (--parameter-overrides or samconfig.toml)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from moto import mock_aws
from workflow_helpers import chat_of, make_update, wait_for

from tgrelay_local.cli import EXIT_FAILED, EXIT_NOTHING_TO_DO, _long_poll, build_parser, main
from tgrelay_local.engine import SECRET_HEADER

CLI = [sys.executable, "-m", "tgrelay_local.cli"]
# Telegram's answer to getUpdates while the bot has a webhook.
CONFLICT = json.dumps(
    {"ok": False, "error_code": 409, "description": "Conflict: can't use getUpdates method while webhook is active"}
)


def _one_line_error(captured, command: str) -> str:
    """The command's stderr: exactly one line, naming the command, no traceback; returned."""
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"tgrelay {command}: ")
    return lines[0]


def test_demo_prints_no_metric_json_and_no_warnings():
    # --speed 1000, not the default 100: the scaled retry waits and AutoReplayDelays' first 900 s
    # take about 1 s instead of 9 s; what is asserted here does not depend on them.
    done = subprocess.run([*CLI, "demo", "--speed", "1000"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "OK: every update accounted for" in done.stdout
    assert not [line for line in done.stdout.splitlines() if '"_aws"' in line]
    assert done.stderr == ""
    # The metrics were not dropped: they are in the handler log, as on Lambda in the log stream.
    log = (Path(__file__).resolve().parents[2] / ".tgrelay" / "demo.log").read_text()
    assert '"CloudWatchMetrics"' in log


class LocalStack:
    """`tgrelay local` in a child process, on free ports; its terminal lines as they come."""

    def __init__(self, *arguments: str):
        self.process = subprocess.Popen(
            [*CLI, "local", "--webhook-port", "0", "--telegram-port", "0", "--agent-port", "0", "--aws-port", "0"]
            + ["--speed", "100", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        header = self.read_until(lambda line: line == "Ctrl-C stops.")
        self.webhook = re.search(r"POST (\S+)", header[0]).group(1)
        self.telegram = re.search(r"fake Telegram\s+(\S+)/bot", "\n".join(header)).group(1)
        self.aws = re.search(r"AWS \(moto\)\s+(\S+)", "\n".join(header)).group(1)

    def read_until(self, done, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"tgrelay local ended: {self.process.wait()} {self.process.stderr.read()}")
            line = line.rstrip("\n")
            self.lines.append(line)
            seen.append(line)
            if done(line):
                return seen
        raise AssertionError(f"not seen in {timeout} s; lines so far: {seen}")

    def post(self, update: dict) -> httpx.Response:
        headers = {SECRET_HEADER: "local-webhook-secret"}
        return httpx.post(self.webhook, json=update, headers=headers, timeout=30)

    def sent_texts(self, chat_id: int) -> list[str]:
        calls = httpx.get(f"{self.telegram}/_calls", timeout=10).json()
        return [
            call["payload"]["text"]
            for call in calls
            if call["method"] == "sendMessage" and call["payload"].get("chat_id") == chat_id
        ]

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=60)
        finally:
            self.process.kill()
        return status, self.process.stderr.read()


def _group_mention(name: str, text: str) -> dict:
    update = make_update("group_text.json", text=f"@{name} {text}")
    update["message"]["entities"] = [{"offset": 0, "length": len(name) + 1, "type": "mention"}]
    return update


@pytest.mark.parametrize("source", ["--parameter-overrides", "samconfig.toml"])
def test_local_takes_parameters_like_sam_and_shows_each_outcome_in_one_line(source, tmp_path):
    if source == "samconfig.toml":
        config = tmp_path / "samconfig.toml"
        config.write_text(
            'version = 0.1\n[default.deploy.parameters]\nparameter_overrides = "BotUsername=config_bot"\n'
        )
        bot, arguments = "config_bot", ["--config-file", str(config)]
    else:
        # The repository's samconfig.toml (if one is ever added) is replaced, as in SAM.
        bot, arguments = "override_bot", ["--parameter-overrides", "BotUsername=override_bot"]
    stack = LocalStack(*arguments)
    try:
        assert f"parameters      BotUsername={bot}" in stack.lines
        addressed = _group_mention(bot, "are you there?")
        assert stack.post(addressed).json() == {"ok": True}
        (line,) = stack.read_until(lambda line: line.startswith("execution"))
        assert f"update {addressed['update_id']} SUCCEEDED: CheckEnvelope > ClaimUpdate > WaitForTurn" in line
        chat = addressed["message"]["chat"]["id"]
        assert stack.sent_texts(chat) == [f"echo: @{bot} are you there?"]

        # The sample's bot name is now someone else's: not addressed, skipped, said in one line.
        other = _group_mention("tgrelay_demo_bot", "hello?")
        assert stack.post(other).json()["skipped"] == "group message not addressed to the bot"
        stack.read_until(lambda line: line == "webhook 200 skipped: group message not addressed to the bot")
        refused = stack.post({"update_id": "nope"})
        assert refused.status_code == 400
        stack.read_until(lambda line: line.startswith("webhook 400: "))

        # An operator command against it from another shell: nothing to do (exit 3), and no
        # access-log line on the stack's terminal.
        dlq = subprocess.run([*CLI, "dlq", "--local", stack.aws], capture_output=True, text=True, timeout=60)
        assert (dlq.returncode, dlq.stderr) == (EXIT_NOTHING_TO_DO, "")
        assert dlq.stdout == f"the local stack tgrelay-local at {stack.aws}: 0 message(s) in the dead-letter queue\n"
    finally:
        status, stderr = stack.stop()
    assert status == 0
    assert not [line for line in stack.lines if '"_aws"' in line]
    assert stderr == ""


def _busy_port():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


@pytest.mark.parametrize("flag", ["--webhook-port", "--telegram-port", "--agent-port", "--aws-port"])
def test_a_busy_port_is_named_with_its_flag(flag, capsys):
    ports = {"--webhook-port": "0", "--telegram-port": "0", "--agent-port": "0", "--aws-port": "0"}
    with _busy_port() as listener:
        port = listener.getsockname()[1]
        ports[flag] = str(port)
        status = main(["local", *(item for pair in ports.items() for item in pair)])
    assert status == EXIT_FAILED
    line = _one_line_error(capsys.readouterr(), "local")
    assert f"port {port}" in line and f"pass another {flag}" in line


def test_a_parameter_the_template_refuses_is_one_line(capsys):
    assert main(["demo", "--parameter-overrides", "GroupMessages=everything"]) == EXIT_FAILED
    line = _one_line_error(capsys.readouterr(), "demo")
    assert "GroupMessages='everything': must be one of addressed, all" in line

    assert main(["demo", "--parameter-overrides", "NoSuchParameter=1"]) == EXIT_FAILED
    assert "no parameters named ['NoSuchParameter']" in _one_line_error(capsys.readouterr(), "demo")

    assert main(["demo", "--parameter-overrides", "not-a-pair"]) == EXIT_FAILED
    assert "--parameter-overrides: " in _one_line_error(capsys.readouterr(), "demo")


@pytest.fixture
def no_aws_configuration(monkeypatch, tmp_path):
    """An environment with no AWS region, credentials or config files, and no instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("command", [["dlq"], ["replay"], ["history", "arn:aws:states:x"], ["register-webhook"]])
def test_no_region_is_one_line(command, no_aws_configuration, capsys):
    assert main([*command, "--stack-name", "tgrelay"]) == EXIT_FAILED
    assert "no AWS region: pass --region or set AWS_REGION" in _one_line_error(capsys.readouterr(), command[0])


def test_no_credentials_is_one_line(no_aws_configuration, capsys):
    assert main(["dlq", "--stack-name", "tgrelay", "--region", "eu-west-1"]) == EXIT_FAILED
    assert "no AWS credentials" in _one_line_error(capsys.readouterr(), "dlq")


def test_a_stack_that_does_not_exist_is_one_line(no_aws_configuration, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        assert main(["dlq", "--stack-name", "no-such-stack", "--region", "eu-west-1"]) == EXIT_FAILED
    assert _one_line_error(capsys.readouterr(), "dlq") == "tgrelay dlq: no stack named 'no-such-stack' in eu-west-1"


def test_an_unreachable_local_endpoint_is_one_line(capsys):
    with _busy_port() as listener:
        port = listener.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"  # closed now: nothing answers there
    for command in (["dlq"], ["replay"], ["history", "arn:aws:states:us-east-1:123456789012:execution:x:y"]):
        assert main([*command, "--local", endpoint]) == EXIT_FAILED
        line = _one_line_error(capsys.readouterr(), command[0])
        assert f"nothing answers at {endpoint}: start `tgrelay local`" in line


def test_every_command_and_option_has_help_and_shows_its_default():
    parser = build_parser()
    (commands,) = [action for action in parser._actions if action.dest == "command"]
    for name, command in commands.choices.items():
        assert command.description, f"{name} has no description"
        text = command.format_help()
        for action in command._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            if action.option_strings and action.default not in (None, False):
                assert f"{action.option_strings[0]}" in text
                assert "(default:" in action.help or "%(default)" in action.help or _shows_default(text, action)


def _shows_default(text: str, action) -> bool:
    """ArgumentDefaultsHelpFormatter appends "(default: X)" to the option's help."""
    flat = " ".join(text.split())
    return f"(default: {action.default})" in flat


def test_the_terminal_line_for_each_webhook_answer_kind():
    from tgrelay_local.cli import _webhook_line

    assert _webhook_line(200, json.dumps({"ok": True})) is None
    assert _webhook_line(200, json.dumps({"ok": True, "skipped": "edited messages are ignored"})) == (
        "webhook 200 skipped: edited messages are ignored"
    )
    assert _webhook_line(200, json.dumps({"ok": True, "method": "sendMessage", "chat_id": 1, "text": "hi"})) == (
        "webhook 200 answered at the webhook: sendMessage"
    )
    # A button press is enqueued; its answer stops the spinner (answerCallbackQuery): not shown.
    assert _webhook_line(200, json.dumps({"ok": True, "method": "answerCallbackQuery"})) is None
    assert _webhook_line(403, '{"message": "Forbidden"}') == 'webhook 403: {"message": "Forbidden"}'


@pytest.mark.parametrize(
    "arguments",
    [
        ["local", "--speed", "0"],
        ["demo", "--speed", "-1"],
        ["demo", "--speed", "nan"],
        ["local", "--aws-port", "70000"],
    ],
)
def test_impossible_option_values_are_usage_errors(arguments, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(arguments)
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_one_port_for_two_servers_is_one_line(capsys):
    assert main(["local", "--webhook-port", "18100", "--aws-port", "18100"]) == EXIT_FAILED
    assert "port 18100 is given to two servers" in _one_line_error(capsys.readouterr(), "local")


def test_a_missing_aws_profile_is_one_line_and_operator_commands_do_not_load_the_engine(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_PROFILE="no-such-profile", AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    done = subprocess.run([*CLI, "dlq", "--stack-name", "tgrelay"], capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stdout) == (EXIT_FAILED, "")
    assert done.stderr == "tgrelay dlq: The config profile (no-such-profile) could not be found\n"
    # moto builds a session when it is imported: the operator commands must not import it.
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, tgrelay_local.cli; print('moto' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert imported.stdout.strip() == "False"


def test_aws_region_is_honoured_like_the_aws_sdks_do(no_aws_configuration, monkeypatch, capsys):
    # boto3 alone reads only AWS_DEFAULT_REGION; the error's advice says AWS_REGION.
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        assert main(["dlq", "--stack-name", "no-such-stack"]) == EXIT_FAILED
    assert _one_line_error(capsys.readouterr(), "dlq") == "tgrelay dlq: no stack named 'no-such-stack' in eu-west-2"


def test_a_real_bots_poller_posts_each_update_once_and_telegrams_refusal_ends_it(relay):
    """`tgrelay local --bot-token`: updates come by getUpdates (here from the fake Bot API's
    backlog); each reaches the webhook once, the offset confirms it; a 409 (the bot has a webhook)
    stops the poller with Telegram's description."""
    updates = [make_update(text=f"polled {number}") for number in range(3)]
    stop, refusals = threading.Event(), []
    poller = threading.Thread(target=_long_poll, args=(relay, stop, refusals), daemon=True)
    poller.start()
    try:
        for update in updates:
            relay.telegram.queue_update(update)
        wait_for(lambda: all(relay.telegram.sent_messages(chat_of(u)) for u in updates), timeout=60)
        relay.telegram.add_fault({"method": "getUpdates", "status": 409, "body": CONFLICT, "count": None})
        poller.join(timeout=10)
        assert not poller.is_alive()
        relay.wait_idle(timeout=60)

        for update in updates:
            replies = [m["text"] for m in relay.telegram.sent_messages(chat_of(update))]
            assert replies == [f"echo: {update['message']['text']}"]
        assert refusals == ["409 Conflict: can't use getUpdates method while webhook is active"]
        # The offset confirmed every update, so Telegram would not send them again.
        polls = [call["payload"] for call in relay.telegram.calls_snapshot() if call["method"] == "getUpdates"]
        assert polls[-1]["offset"] == updates[-1]["update_id"] + 1
    finally:
        stop.set()
        relay.telegram.reset()
