"""Shared paths and loaders for the template tier (template.yaml, the ASL, the SAM translation)."""

import copy
import json
from pathlib import Path

import pytest
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
ASL_PATH = REPO / "statemachine" / "relay.asl.json"
FUNCTIONS_DIR = REPO / "functions"


def load_asl() -> dict:
    return json.loads(ASL_PATH.read_text())


@pytest.fixture(scope="session")
def asl() -> dict:
    return load_asl()


PARAMETER_VALUES = {"AgentUrl": "https://agent.example.com/turn"}


class NoManagedPolicyLookups:
    """SAM asks this only for managed policies named without an ARN; there is no IAM to ask offline."""

    def __init__(self) -> None:
        self.calls = 0

    def load(self) -> dict[str, str]:
        self.calls += 1
        return {}


def local_paths_to_s3(sam: dict) -> None:
    """What `sam package` does before deploying: local CodeUri/DefinitionUri become S3 locations."""
    function_globals = sam.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = "s3://tgrelay-artifacts/functions.zip"
    for name, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = f"s3://tgrelay-artifacts/{name}.zip"
        if resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            props["DefinitionUri"] = f"s3://tgrelay-artifacts/{name}.asl.json"


@pytest.fixture(scope="module")
def sam_template() -> dict:
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def cfn(sam_template) -> dict:
    sam = copy.deepcopy(sam_template)
    local_paths_to_s3(sam)
    with pytest.MonkeyPatch.context() as mp:
        # The partition of the ARNs SAM writes comes from the region.
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        loader = NoManagedPolicyLookups()
        translated = transform(sam, dict(PARAMETER_VALUES), loader)
    assert loader.calls == 0, "a policy names a managed policy without its ARN"
    return translated


@pytest.fixture(scope="module")
def resources(cfn) -> dict:
    return cfn["Resources"]
