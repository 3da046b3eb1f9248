"""The local stack's template parameters: read like `sam deploy` reads them, checked like
CloudFormation checks them; and the history view's columns."""

import argparse
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tgrelay_local.cli import CommandError, template_parameters
from tgrelay_local.history import Step, format_path
from tgrelay_local.template import Template, check_parameter


def _args(tmp_path: Path, overrides: list[str] | None = None, config: str | None = None, env: str = "default"):
    config_file = tmp_path / "samconfig.toml"
    if config is not None:
        config_file.write_text(config)
    return argparse.Namespace(parameter_overrides=overrides, config_file=config_file, config_env=env)


CONFIG = """version = 0.1
[default.global.parameters]
parameter_overrides = "GroupMessages=all"
[default.deploy.parameters]
stack_name = "tgrelay"
parameter_overrides = "BotUsername=my_bot StartText=\\"Hi there, friend\\""
[staging.deploy.parameters]
parameter_overrides = ["BotUsername=staging_bot", "QueuedMessages=each"]
"""


def test_the_config_files_deploy_parameters_apply(tmp_path):
    # SAM merges [env.global.parameters] under [env.deploy.parameters]: deploy's option wins whole.
    assert template_parameters(_args(tmp_path, config=CONFIG)) == {
        "BotUsername": "my_bot",
        "StartText": "Hi there, friend",
    }
    assert template_parameters(_args(tmp_path, config=CONFIG, env="staging")) == {
        "BotUsername": "staging_bot",
        "QueuedMessages": "each",
    }


def test_command_line_overrides_replace_the_config_files_as_in_sam(tmp_path):
    args = _args(tmp_path, overrides=["GroupMessages=all", "ParameterKey=BotUsername,ParameterValue=cli_bot"])
    args.config_file.write_text(CONFIG)
    assert template_parameters(args) == {"GroupMessages": "all", "BotUsername": "cli_bot"}


def test_no_config_file_means_no_overrides_unless_one_was_named(tmp_path, monkeypatch):
    monkeypatch.setattr("tgrelay_local.cli.ROOT", tmp_path)  # the repository's samconfig.toml: none
    assert (
        template_parameters(argparse.Namespace(parameter_overrides=None, config_file=None, config_env="default")) == {}
    )
    with pytest.raises(CommandError, match="samconfig.toml: no such file"):
        template_parameters(_args(tmp_path))  # named, and missing


def test_an_environment_the_config_file_does_not_have_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match=r"has no \[prod\] environment"):
        template_parameters(_args(tmp_path, config=CONFIG, env="prod"))


def test_a_malformed_override_or_config_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="--parameter-overrides: .*not a valid format"):
        template_parameters(_args(tmp_path, overrides=["just-words"]))
    with pytest.raises(CommandError, match="cannot read"):
        template_parameters(_args(tmp_path, config="this is [not toml"))


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("GroupMessages", "some", "must be one of addressed, all"),
        ("BotUsername", "has space", "must match"),
        ("AgentTimeoutSeconds", "soon", "must be a number"),
        ("AgentTimeoutSeconds", "0", "at least 1"),
        ("AgentTimeoutSeconds", "841", "at most 840"),
        ("AgentTimeoutSeconds", "nan", "must be a number"),  # float() takes it; CloudFormation does not
        ("StartText", "", "at least 1 characters"),
    ],
)
def test_the_template_refuses_what_cloudformation_would(name, value, error):
    with pytest.raises(ValueError, match=error):
        Template(parameters={name: value})


def test_values_cloudformation_accepts_pass():
    spec = Template().doc["Parameters"]
    for name, value in {"GroupMessages": "all", "BotUsername": "@a_bot", "AgentTimeoutSeconds": "840"}.items():
        check_parameter(name, spec[name], value)
    assert Template(parameters={"AgentTimeoutSeconds": "1"}).parameters["AgentTimeoutSeconds"] == "1"


def test_history_columns_line_up_for_long_error_names():
    start = datetime(2026, 11, 29)
    steps = [
        Step(
            "ClaimUpdate",
            start,
            start + timedelta(seconds=0.1),
            result="caught DynamoDB.ConditionalCheckFailedException",
        ),
        Step("AlreadyHandled", start, start + timedelta(seconds=0.2), result="ok"),
        Step("MergedIntoTurn", start, start + timedelta(seconds=1.5), result="ok"),
    ]
    lines = format_path(steps).splitlines()
    assert len({line.index(" s") for line in lines}) == 1, lines  # the seconds column lines up
    assert len({line.index(step.result) for line, step in zip(lines, steps, strict=True)}) == 1
