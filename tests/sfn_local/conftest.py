"""Step Functions Local (amazon/aws-stepfunctions-local) started by testcontainers, with
MockConfigFile.json in it: AWS's own interpreter runs relay.asl.json, every service
integration answered by the mock file's test cases.

Where no Docker engine answers, every test that needs it is skipped with the reason."""

import json
import time

import boto3
import pytest
from sfn_local_support import (
    ACCOUNT,
    IMAGE,
    MOCK_CONFIG,
    MOCK_CONFIG_IN_CONTAINER,
    PORT,
    REGION,
    deployed_definition,
    docker_skip_reason,
    execution_input,
    longest_wait,
    mock_test_cases,
)

STARTUP_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skips (never errors) unless a Docker engine answers where testcontainers will look."""
    reason = docker_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def sfn_local(docker_engine):
    """A stepfunctions client for a fresh Step Functions Local container."""
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(IMAGE)
        .with_exposed_ports(PORT)
        .with_env("SFN_MOCK_CONFIG", MOCK_CONFIG_IN_CONTAINER)
        .with_env("AWS_DEFAULT_REGION", REGION)
        .with_env("AWS_ACCOUNT_ID", ACCOUNT)
        # Copied in before the server boots (it reads the file once, at start). A copy and
        # not a bind mount: it also works when the Docker engine is remote (CI, DinD).
        .with_copy_into_container(MOCK_CONFIG, MOCK_CONFIG_IN_CONTAINER)
    )
    with container:
        client = boto3.client(
            "stepfunctions",
            endpoint_url=f"http://{container.get_container_host_ip()}:{container.get_exposed_port(PORT)}",
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                client.list_state_machines()
                break
            except Exception as error:  # any failure means "not up yet"
                if time.monotonic() > deadline:
                    stdout, stderr = container.get_logs()
                    pytest.fail(
                        f"Step Functions Local did not answer within {STARTUP_TIMEOUT_S} s ({error}):\n"
                        f"{stdout.decode(errors='replace')}{stderr.decode(errors='replace')}"
                    )
                time.sleep(0.5)
        yield client


@pytest.fixture(scope="module")
def relay_machine(sfn_local) -> dict:
    """The state machine created from relay.asl.json, substitutions resolved from template.yaml."""
    name, definition, template = deployed_definition()
    try:
        arn = sfn_local.create_state_machine(
            name=name,
            definition=definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}Role",
            type="STANDARD",
        )["stateMachineArn"]
    except sfn_local.exceptions.InvalidDefinition as error:
        pytest.fail(f"Step Functions Local rejected statemachine/relay.asl.json: {error}")
    return {"name": name, "arn": arn, "template": template}


@pytest.fixture(scope="module")
def executions(sfn_local, relay_machine) -> dict[str, dict]:
    """Every test case of MockConfigFile.json, started at once and awaited together: the
    Retry waits are real (see README), so the tier takes the longest, not their sum."""
    started = {}
    for number, case in enumerate(sorted(mock_test_cases()), start=1):
        execution_input_, envelope, record = execution_input(918_273_600 + number)
        arn = sfn_local.start_execution(
            stateMachineArn=f"{relay_machine['arn']}#{case}",
            name=f"{case}-{number}",
            input=json.dumps(execution_input_),
        )["executionArn"]
        started[case] = {
            "arn": arn,
            "name": f"{case}-{number}",
            "input": execution_input_,
            "record": record,
            "envelope": envelope,
        }

    deadline = time.monotonic() + longest_wait() + 60
    for case, run in started.items():
        while (description := sfn_local.describe_execution(executionArn=run["arn"]))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                pytest.fail(f"{case} still running after the longest Retry wait and a minute")
            time.sleep(0.25)
        run["description"] = description
        run["events"] = sfn_local.get_execution_history(executionArn=run["arn"], maxResults=1000)["events"]
    return started
