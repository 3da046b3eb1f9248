"""Each function's environment in template.yaml (Globals merged with its own) gives its handler every
setting the handler declares (SETTINGS, held to the code by tests/unit/test_declared_settings.py).

These checks read the template: a variable on the wrong function is named before anything runs
(tests/workflow/test_function_environments.py shows the same mistake failing the local workflow)."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tgrelay.settings import Declared
from tgrelay_local.template import Template, load_template

from .conftest import TEMPLATE

# Read by Powertools itself, not by tgrelay's code.
LIBRARY_PREFIXES = ("POWERTOOLS_",)


def declared_settings(template: Template) -> dict[str, Declared]:
    """Function logical id -> its handler module's SETTINGS."""
    found = {}
    for logical_id in template.resources("AWS::Serverless::Function"):
        module_name = template.function_properties(logical_id)["Handler"].rsplit(".", 1)[0]
        found[logical_id] = importlib.import_module(module_name).SETTINGS
    return found


def environment_problems(template: Template) -> list[str]:
    """Every way a function's environment disagrees with what its handler reads; [] when none."""
    declared = declared_settings(template)
    environments = {
        logical_id: set(template.function_properties(logical_id)["Environment"]["Variables"]) for logical_id in declared
    }
    globals_ = set(template.doc.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    configured = set().union(*environments.values())
    problems = []
    for logical_id, settings in declared.items():
        environment = environments[logical_id]
        for name in sorted(settings.required - environment):
            problems.append(f"{logical_id} lacks {name}, which {settings.module} reads without a default")
        # A setting with a code default that the template configures elsewhere: here the default
        # would win silently (e.g. EDITED_MESSAGES on the webhook but not on the registration).
        for name in sorted((settings.optional & configured) - environment):
            problems.append(
                f"{logical_id} lacks {name}, which {settings.module} reads (the template sets it elsewhere)"
            )
        own = environment - globals_
        for name in sorted(own - settings.required - settings.optional):
            if not name.startswith(LIBRARY_PREFIXES):
                problems.append(f"{logical_id} sets {name}, which {settings.module} never reads")
    read_anywhere = set().union(*(settings.required | settings.optional for settings in declared.values()))
    for name in sorted(globals_ - read_anywhere):
        if not name.startswith(LIBRARY_PREFIXES):
            problems.append(f"Globals set {name}, which no handler reads")
    return problems


def test_every_function_has_what_its_handler_reads_and_nothing_it_does_not():
    problems = environment_problems(Template(TEMPLATE))
    assert not problems, "template.yaml:\n" + "\n".join(problems)


def test_every_function_of_the_template_declares_its_settings():
    template = Template(TEMPLATE)
    assert sorted(declared_settings(template)) == sorted(template.resources("AWS::Serverless::Function"))


# -- the mistakes the check is for -----------------------------------------------------------------


def _move(doc: dict, name: str, source: str, target: str) -> None:
    variables = doc["Resources"][source]["Properties"]["Environment"]["Variables"]
    value = variables.pop(name)
    doc["Resources"][target]["Properties"].setdefault("Environment", {}).setdefault("Variables", {})[name] = value


def _drop_global(doc: dict, name: str) -> None:
    del doc["Globals"]["Function"]["Environment"]["Variables"][name]


MUTATIONS: dict[str, tuple[Any, list[str]]] = {
    # The example: every reply would fail on AWS while every local test passes.
    "TABLE_NAME from SendReplyFunction to CallAgentFunction": (
        lambda doc: _move(doc, "TABLE_NAME", "SendReplyFunction", "CallAgentFunction"),
        [
            "SendReplyFunction lacks TABLE_NAME, which tgrelay.send_reply reads without a default",
            "CallAgentFunction sets TABLE_NAME, which tgrelay.call_agent never reads",
        ],
    ),
    # A setting with a default: TurnsFunction would merge whatever QueuedMessages says.
    "QUEUED_MESSAGES from TurnsFunction to WebhookFunction": (
        lambda doc: _move(doc, "QUEUED_MESSAGES", "TurnsFunction", "WebhookFunction"),
        [
            "WebhookFunction sets QUEUED_MESSAGES, which tgrelay.webhook never reads",
            "TurnsFunction lacks QUEUED_MESSAGES, which tgrelay.turns reads (the template sets it elsewhere)",
        ],
    ),
    "TURNS_TABLE_NAME dropped from Globals": (
        lambda doc: _drop_global(doc, "TURNS_TABLE_NAME"),
        [
            f"{function} lacks TURNS_TABLE_NAME, which tgrelay.{module} reads without a default"
            for function, module in (
                ("WebhookFunction", "webhook"),
                ("CallAgentFunction", "call_agent"),
                ("SendReplyFunction", "send_reply"),
                ("TurnsFunction", "turns"),
            )
        ],
    ),
}


def mutated_template(tmp_path: Path, mutate: Any) -> Path:
    """A copy of template.yaml with `mutate` applied, written as JSON (which is YAML, with the long
    forms of the short tags; PyYAML's dumper may meet the OrderedDicts samcli's loader makes)."""
    doc = load_template(TEMPLATE)
    mutate(doc)
    path = tmp_path / "template.yaml"
    path.write_text(json.dumps(doc, indent=1))
    return path


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_variable_on_the_wrong_function_fails_naming_the_function_and_the_variable(tmp_path, mutation):
    mutate, expected = MUTATIONS[mutation]
    assert sorted(environment_problems(Template(mutated_template(tmp_path, mutate)))) == sorted(expected)


# -- the same at a cold start ----------------------------------------------------------------------


def cold_start(template: Template, logical_id: str) -> subprocess.CompletedProcess:
    """Import the function's handler module in a fresh interpreter with only its own environment
    (every value a placeholder, as the settings are only checked for presence) and what Lambda adds."""
    props = template.function_properties(logical_id)
    variables = {
        name: value if isinstance(value, str) else f"<{name}>"
        for name, value in props["Environment"]["Variables"].items()
    }
    environment = {
        **variables,
        "_HANDLER": props["Handler"],
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": logical_id,
        "PATH": os.environ.get("PATH", ""),
    }
    module_name = props["Handler"].rsplit(".", 1)[0]
    return subprocess.run(
        [sys.executable, "-c", f"import {module_name}"], env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("logical_id", sorted(Template(TEMPLATE).resources("AWS::Serverless::Function")))
def test_each_handler_initialises_in_its_own_environment(logical_id):
    started = cold_start(Template(TEMPLATE), logical_id)
    assert started.returncode == 0, started.stderr.strip().splitlines()[-1]


def test_a_missing_variable_fails_the_cold_start_with_its_name(tmp_path):
    mutate, _ = MUTATIONS["TABLE_NAME from SendReplyFunction to CallAgentFunction"]
    started = cold_start(Template(mutated_template(tmp_path, mutate)), "SendReplyFunction")
    assert started.returncode != 0
    assert started.stderr.strip().splitlines()[-1] == (
        "tgrelay.errors.ConfigurationError: environment variable TABLE_NAME is not set (tgrelay.send_reply needs it)"
    )
