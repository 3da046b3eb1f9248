"""The automatic replay of dead letters as deployed: its schedule, its switch, its alarm."""

from tgrelay_local import plans

from .test_asl import readme_block_after
from .test_translated import of_type


def test_a_schedule_runs_the_replay_function_every_five_minutes(resources):
    rule = resources["DeadLetterReplayFunctionAutoReplaySchedule"]["Properties"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert rule.get("State", "ENABLED") == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["DeadLetterReplayFunction", "Arn"]}
    assert "Input" not in target, "the function reads the scheduled event's time"
    (permission,) = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Ref": "DeadLetterReplayFunction"}
    ]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": ["DeadLetterReplayFunctionAutoReplaySchedule", "Arn"]}


def test_the_parameters_reach_the_replay_function_and_the_apology(resources, sam_template):
    parameters = sam_template["Parameters"]
    assert parameters["AutoReplay"]["AllowedValues"] == ["true", "false"]
    assert parameters["AutoReplay"]["Default"] == "true"
    for function in ("DeadLetterReplayFunction", "SendReplyFunction"):
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert variables["AUTO_REPLAY"] == {"Ref": "AutoReplay"}, function
        assert variables["AUTO_REPLAY_DELAYS_SECONDS"] == {"Ref": "AutoReplayDelays"}, function
    variables = resources["DeadLetterReplayFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["DEAD_LETTER_QUEUE_URL"] == {"Ref": "DeadLetterQueue"}
    assert variables["QUEUE_URL"] == {"Ref": "UpdatesQueue"}
    assert resources["SendReplyFunction"]["Properties"]["Environment"]["Variables"]["RETRY_APOLOGY_TEXT"] == {
        "Ref": "RetryApologyText"
    }


def test_the_dead_letter_alarm_counts_what_waits_for_a_person(resources):
    alarm = resources["DeadLetterAlarm"]["Properties"]
    # AutoReplay on: the replay function's count of dead letters it leaves to a person.
    assert alarm["MetricName"] == {
        "Fn::If": ["AutoReplayOn", "DeadLettersForAPerson", "ApproximateNumberOfMessagesVisible"]
    }
    assert alarm["Namespace"] == {"Fn::If": ["AutoReplayOn", {"Ref": "MetricsNamespace"}, "AWS/SQS"]}
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    # The function emits it every run (5 minutes): one period holds one data point.
    assert alarm["Period"] == {"Fn::If": ["AutoReplayOn", 300, 60]}


def test_the_readme_shows_the_templates_replay_plan():
    shown = readme_block_after("for the shipped template:")
    assert shown == plans.auto_replay_plan().strip(), "stale: paste `tgrelay retry-plan`'s last part into README.md"
    assert "900 s (15 min), 3600 s (1 h), 14400 s (4 h)" in shown


def test_the_plan_says_when_auto_replay_is_off():
    from tgrelay_local.template import Template

    off = plans.auto_replay_plan(Template(parameters={"AgentUrl": "https://a.invalid", "AutoReplay": "false"}))
    assert off == "Dead letters (AutoReplay=false): every one waits for a person (tgrelay dlq, tgrelay replay)"
