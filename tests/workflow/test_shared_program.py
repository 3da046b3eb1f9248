"""The engine parses the state machine once and every execution evaluates the same program
(moto_seams.parsed_program): that holds only while evaluating leaves the program as it was parsed.
Executions through retries, a Catch and the happy path, then the shared program is compared with a
fresh parse, every attribute of every object reachable (the heap keys aside, made once on purpose)."""

from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from workflow_helpers import make_update, mark, post, settle

from tgrelay_local import moto_seams


def fingerprint(value, memo: dict | None = None) -> str:
    memo = {} if memo is None else memo
    if isinstance(value, str | int | float | bool | bytes | type(None)):
        return repr(value)
    if id(value) in memo:
        return f"<ref {memo[id(value)]}>"
    memo[id(value)] = len(memo)
    if isinstance(value, dict):
        return "{" + ",".join(f"{fingerprint(k, memo)}:{fingerprint(v, memo)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return type(value).__name__ + "[" + ",".join(fingerprint(item, memo) for item in items) + "]"
    if hasattr(value, "__dict__"):
        fields = {k: v for k, v in vars(value).items() if k != "_EvalComponent__heap_key"}
        inside = ",".join(f"{k}={fingerprint(v, memo)}" for k, v in sorted(fields.items()))
        return f"{type(value).__name__}({inside})"
    return f"{type(value).__name__}:{value!r}"[:120]


def test_executions_leave_the_shared_program_as_it_was_parsed(relay):
    since = mark(relay)
    retried, rejected = make_update(text="retried twice"), make_update(text="rejected")
    relay.agent.add_fault({"status": 503, "count": 2, "match": {"update_id": retried["update_id"]}})
    relay.agent.add_fault({"status": 400, "match": {"update_id": rejected["update_id"]}})
    for update in (make_update(text="plain"), retried, rejected):
        post(relay, update)
    executions = settle(relay, since)
    assert sorted(execution["status"] for execution in executions) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    asked = [call["request"]["update_id"] for call in relay.agent.calls_snapshot()]
    assert asked.count(retried["update_id"]) == 3  # two 503s retried by CallAgent's Retry

    # The definition as moto keeps it, which is what its executions evaluate.
    definition = relay.sfn.describe_state_machine(stateMachineArn=relay.state_machine_arn)["definition"]
    parses = moto_seams._parse.cache_info().misses
    shared = moto_seams.parsed_program(definition)
    assert moto_seams._parse.cache_info().misses == parses  # the program the executions ran
    fresh = AmazonStateLanguageParser.parse(definition)[0]
    assert shared is not fresh and fingerprint(shared) == fingerprint(fresh)
