"""The external tools on the repository as it is: sam validate (plain and --lint), statelint, sam build.

Every tool runs as a subprocess from the virtualenv the tests run in, with a fixed region, telemetry off
and no AWS credentials of any kind: none of these checks may need an AWS account.
"""

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from samcli.yamlhelper import yaml_parse

from tgrelay_local.toolchain import find_python313

from .conftest import ASL_PATH, REPO, TEMPLATE

VENV_BIN = Path(sys.executable).parent

# Variables that could hand a subprocess credentials or a profile that leads to some.
# Everything else named AWS_* goes too, except the CA bundle pip needs behind a TLS-inspecting proxy.
KEEP_AWS_VARS = {"AWS_CA_BUNDLE"}


def tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {VENV_BIN} (it is a dev dependency: pip install -e '.[dev]')")
    return str(path)


def clean_env(base: Mapping[str, str], tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("AWS_") or k in KEEP_AWS_VARS}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        SAM_CLI_TELEMETRY="0",
        # No ~/.aws files either, and no instance metadata lookups.
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture
def tool_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(os.environ, tmp_path)


def run(cmd: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_no_aws_credentials_reach_the_tools(tmp_path):
    base = {
        "PATH": "/usr/bin",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_SESSION_TOKEN": "example",
        "AWS_PROFILE": "prod",
        "AWS_REGION": "eu-west-1",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/creds",
        "AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    }
    env = clean_env(base, tmp_path)
    assert {k for k in env if k.startswith("AWS_")} == {
        "AWS_CA_BUNDLE",
        "AWS_DEFAULT_REGION",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_EC2_METADATA_DISABLED",
    }
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["SAM_CLI_TELEMETRY"] == "0"
    assert not Path(env["AWS_SHARED_CREDENTIALS_FILE"]).exists()


def test_sam_validate(tool_env):
    proc = run([tool("sam"), "validate", "--template", str(TEMPLATE)], tool_env)
    assert proc.returncode == 0, explain(proc)
    assert re.search(r"template\.yaml is a valid SAM Template", proc.stdout + proc.stderr), explain(proc)


def test_sam_validate_lint(tool_env):
    proc = run([tool("sam"), "validate", "--lint", "--template", str(TEMPLATE)], tool_env)
    assert proc.returncode == 0, explain(proc)
    # With --lint the line is exactly this: any cfn-lint finding is printed instead of it.
    assert re.search(r"template\.yaml is a valid SAM Template$", proc.stdout + proc.stderr, re.MULTILINE), explain(proc)


def test_statelint(tool_env):
    proc = run([tool("statelint"), str(ASL_PATH.relative_to(REPO))], tool_env)
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.strip() == "", explain(proc)


def function_ids() -> list[str]:
    resources = yaml_parse(TEMPLATE.read_text())["Resources"]
    return [name for name, res in resources.items() if res["Type"] == "AWS::Serverless::Function"]


@pytest.mark.slow
def test_sam_build(tool_env, tmp_path):
    if find_python313(tool_env) is None:
        pytest.skip("python3.13 is missing: sam build needs it on PATH for Runtime python3.13 (pyenv install 3.13)")
    build_dir = tmp_path / "build"
    started = time.monotonic()
    proc = run(
        [tool("sam"), "build", "--build-dir", str(build_dir), "--template", str(TEMPLATE)], tool_env, timeout=900
    )
    elapsed = time.monotonic() - started
    print(f"\nsam build took {elapsed:.1f} s")
    assert proc.returncode == 0, explain(proc)
    assert (build_dir / "template.yaml").is_file()

    functions = function_ids()
    assert functions, "template.yaml defines no AWS::Serverless::Function"
    for name in functions:
        built = build_dir / name
        assert (built / "tgrelay" / "webhook.py").is_file(), f"{name}: the tgrelay package is not in the bundle"
        assert (built / "httpx" / "__init__.py").is_file(), f"{name}: httpx (functions/requirements.txt) missing"
        assert (built / "aws_lambda_powertools" / "__init__.py").is_file(), f"{name}: aws_lambda_powertools missing"
        assert (built / "httpx_sse" / "__init__.py").is_file(), f"{name}: httpx_sse (streamed answers) missing"
        # The agent contract: the published schemas and their validator (Powertools' `validation` extra).
        assert (built / "fastjsonschema" / "__init__.py").is_file(), f"{name}: fastjsonschema missing"
        for schema in ("agent-request", "agent-reply"):
            assert (built / "tgrelay" / "contract" / f"{schema}.schema.json").is_file(), f"{name}: {schema} missing"
        assert (built / "telegramify_markdown" / "__init__.py").is_file(), f"{name}: telegramify_markdown missing"
        # pyromark is compiled: the bundle must carry the build for the functions' arm64 python3.13.
        compiled = [path.name for path in (built / "pyromark").glob("*.so")]
        assert compiled and all("313" in so and "aarch64" in so for so in compiled), f"{name}: pyromark {compiled}"
        # The bundle is functions/ only: the local engine and the tests never ship.
        assert not (built / "tgrelay_local").exists(), f"{name}: local/ code leaked into the bundle"
        assert not (built / "tests").exists(), f"{name}: tests leaked into the bundle"
