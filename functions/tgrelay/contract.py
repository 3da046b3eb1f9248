"""The agent contract as published: JSON Schema (draft 7) files in contract/ beside this module,
agent-request.schema.json (what agent.agent_request sends) and agent-reply.schema.json (what the
agent answers, and its stream events as definitions stream_delta and stream_error). README:
Agent server contract links them; an agent server's author can validate against them.

The agent's answers are checked here with fastjsonschema (the validator Powertools' validation
utility runs; installed with its `validation` extra), each schema compiled once per execution
environment, on first use, and the library imported then too: the webhook and SendReply import
this module (through replies) but never check an answer, so their cold start does not pay for it.
What JSON Schema cannot say is checked in code after it (replies.py; each schema's "description"
lists those rules).
"""

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgrelay.errors import AgentBadResponse

if TYPE_CHECKING:
    from fastjsonschema import JsonSchemaValueException

CONTRACT_DIR = Path(__file__).with_name("contract")
REQUEST_SCHEMA = "agent-request"
REPLY_SCHEMA = "agent-reply"
# The rules fastjsonschema's words do not explain ("must match pattern ^(...)$", "must be valid
# exactly by one definition"): their errors quote the failing part's "description" instead.
_DESCRIBED_RULES = ("pattern", "oneOf")
# How much of a refused value an error quotes (it reaches the execution history and the DLQ).
_QUOTED_CHARS = 80


@cache
def schema(name: str) -> dict:
    """The published schema `name` (REQUEST_SCHEMA or REPLY_SCHEMA) as a dict."""
    return json.loads((CONTRACT_DIR / f"{name}.schema.json").read_text("utf-8"))


@cache
def validator(name: str, definition: str | None = None) -> Callable[[Any], Any]:
    """The compiled check of schema `name`, or of its definition `definition`: returns the value,
    raises fastjsonschema.JsonSchemaValueException (its first error)."""
    import fastjsonschema

    document = schema(name)
    if definition is not None:
        document = {"definitions": document["definitions"], "$ref": f"#/definitions/{definition}"}
    return fastjsonschema.compile(document)


def check(value: Any, subject: str, name: str = REPLY_SCHEMA, definition: str | None = None) -> None:
    """Nothing if `value` follows schema `name` (or its definition `definition`, e.g. "stream_delta");
    AgentBadResponse naming the first field that does not, e.g. `agent reply: attachments[1].kind
    must be one of [...] (it is "sticker")`, where `subject` ("agent reply") names the value."""
    from fastjsonschema import JsonSchemaValueException

    try:
        validator(name, definition)(value)
    except JsonSchemaValueException as error:
        raise AgentBadResponse(contract_error(error, subject)) from None


def contract_error(error: "JsonSchemaValueException", subject: str) -> str:
    """fastjsonschema's error in the contract's words: the field's path as the agent wrote it
    (`buttons[0][1].url`), what it must be, and the value (shortened to _QUOTED_CHARS)."""
    name = error.name or "data"
    where = name.removeprefix("data").lstrip(".")
    field = f"{subject}: {where}" if where else subject
    quoted = json.dumps(error.value, ensure_ascii=False)
    if len(quoted) > _QUOTED_CHARS:
        quoted = quoted[: _QUOTED_CHARS - 1] + "…"
    description = (error.definition or {}).get("description") if isinstance(error.definition, dict) else None
    if error.rule in _DESCRIBED_RULES and description:
        return f"{field} is {quoted}; the contract says: {description}"
    words = f"{field} {error.message.removeprefix(name).strip()}"
    # An object's or a list's missing or extra items are named by the words already.
    return words if isinstance(error.value, dict | list) and error.rule != "type" else f"{words} (it is {quoted})"
