"""What the operator reads off the ASL: retry plan, cost per path, the README's picture."""

import re

from tgrelay_local import plans
from tgrelay_local.cli import main
from tgrelay_local.retry_plan import load_asl, retrier_for, retry_waits
from tgrelay_local.template import ROOT


def test_the_happy_path_and_the_duplicate_path_fit_the_budget():
    found = {path.name: path for path in plans.paths()}
    assert found["happy path"].states == ["ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply", "MarkDone"]
    duplicate = found["ClaimUpdate catches DynamoDB.ConditionalCheckFailedException"]
    assert duplicate.states == ["ClaimUpdate", "AlreadyHandled"]
    merged = found["WaitForTurn catches MergedIntoTurn"]
    assert merged.states == ["ClaimUpdate", "WaitForTurn", "MergedIntoTurn"]
    assert found["happy path"].transitions <= 5 and duplicate.transitions <= 2 and merged.transitions <= 3


def test_a_lost_turn_waits_for_it_again():
    for state in ("CallAgent", "SendReply"):
        [path] = [path for path in plans.paths() if path.name.startswith(f"{state} catches TurnLost")]
        assert path.states[path.states.index(state) + 1] == "WaitForTurn", path.states
        assert path.states[-1] == "MarkDone", path.states


def test_every_failure_path_ends_in_the_dead_letter_queue_or_a_deliberate_end():
    for path in plans.paths():
        assert path.states[-1] in {"MarkDone", "AlreadyHandled", "MergedIntoTurn", "MarkUndeliverable", "Failed"}, (
            path.name
        )
        if path.states[-1] == "Failed":
            # The turn is handed on before the message is dead-lettered.
            assert path.states[-5:] == [
                "RecordFailure",
                "ApologizeToUser",
                "HandOnTurn",
                "SendToDeadLetterQueue",
                "Failed",
            ], path.name


def test_cost_prices_each_path_at_the_standard_rate():
    table = plans.cost_table()
    assert re.search(r"happy path\s+5\s+125\.00", table)  # 5 x $0.025 per 1,000 transitions


def test_retry_plan_shows_the_asl_numbers():
    plan = plans.retry_plan()
    waits = retry_waits(retrier_for(load_asl(), "CallAgent", "AgentUnavailable"))
    assert "waits (s): " + ", ".join(f"0-{w:g}" for w in waits) in plan
    assert f"at most {sum(waits):g} s of waiting" in plan
    assert "12 attempts x up to 120 s" in plan  # AgentTimeoutSeconds' default from template.yaml


def test_the_readme_picture_is_the_asl(capsys):
    readme = (ROOT / "README.md").read_text()
    pictured = re.search(r"```mermaid\n(.*?)```", readme, re.S)
    assert pictured, "README.md has no mermaid block"
    assert pictured.group(1).strip() == plans.mermaid().strip(), "stale: paste `tgrelay diagram` into README.md"
    assert main(["diagram"]) == 0
    assert capsys.readouterr().out.strip() == plans.mermaid().strip()
