"""Guards no other unit test exercises (issue 12, item 1): each test here fails when its guard is
removed or changed. The workflow's guards are in tests/workflow/test_guards.py (this file has
another name: two test modules of one basename cannot be collected together)."""

from unit_helpers import CLAIMS_TABLE_NAME, create_table

from tgrelay import claims, clients

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tgrelay-Relay:sending"


def test_the_chunk_count_is_read_consistently(aws, monkeypatch):
    """chunks_already_sent decides which chunks a retried SendReply skips. An eventually consistent
    read may miss the count the previous attempt wrote a moment ago, and the retry sends those
    chunks again: the GetItem must ask for a strongly consistent read."""
    create_table(aws.dynamodb, "UpdatesTable", CLAIMS_TABLE_NAME)
    monkeypatch.setenv("TABLE_NAME", CLAIMS_TABLE_NAME)
    aws.dynamodb.put_item(
        TableName=CLAIMS_TABLE_NAME,
        Item={"pk": {"S": "update#41"}, "execution": {"S": EXECUTION}, "chunks_sent": {"N": "2"}},
    )
    requests: list[tuple[str, dict]] = []

    def record(params, model, **_):
        requests.append((model.name, dict(params)))

    # The function's own client (the one chunks_already_sent calls); conftest clears its cache after.
    clients.dynamodb().meta.events.register("before-parameter-build.dynamodb", record)

    assert claims.chunks_already_sent(41, EXECUTION) == 2

    assert requests == [
        (
            "GetItem",
            {"TableName": CLAIMS_TABLE_NAME, "Key": {"pk": {"S": "update#41"}}, "ConsistentRead": True},
        )
    ]
