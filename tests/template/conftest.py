"""Shared paths and loaders for the template tier (template.yaml, the ASL, the SAM translation)."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
ASL_PATH = REPO / "statemachine" / "relay.asl.json"
FUNCTIONS_DIR = REPO / "functions"


def load_asl() -> dict:
    return json.loads(ASL_PATH.read_text())


@pytest.fixture(scope="session")
def asl() -> dict:
    return load_asl()
