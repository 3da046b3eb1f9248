"""Each function's own environment variables, as Lambda gives them, inside the engine's one process.

On Lambda a function's code sees only its own variables (template.yaml, Globals merged) and the
ones Lambda adds. The engine runs every function in one process, where os.environ is one mapping;
giving every handler the union of all functions' variables let a variable on the wrong function
pass every local test and break on AWS. While `FunctionEnvironments` is installed, os.environ is a
view: in a thread running an invocation (and in any thread that invocation starts - the typing and
draft threads of CallAgent) it reads and writes that function's variables only; anywhere else (the
engine, moto, the tests) the process's own environment.

Installed before the engine makes any boto3 session: botocore's config chain keeps the os.environ
it first sees, so a function's client reads that function's AWS_* settings.

Where it stops short of Lambda (README, "Where the local engine differs from AWS"):
- module state is shared (clients, the cached secret, Powertools' loggers and what they read at
  import), since the handlers share one interpreter; a worker process per function would separate
  that too - built and measured (branch engine-workers) at twice the suite's time;
- concurrent invocations of one function share its environment dict (on Lambda each environment
  has its own copy): a handler that writes os.environ would be seen by the other; none does;
- a thread takes the environment of the invocation that starts it and keeps it: a pool thread
  started in one invocation and reused by another keeps the first one's (the handlers start only
  CallAgent's typing and draft threads, one per invocation); os.environb and threads started
  with _thread.start_new_thread see the process's.
"""

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any
from unittest import mock

# The environment of the invocation this thread runs; None outside any invocation.
_current: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("function_environment", default=None)


class _Environ(MutableMapping[str, str]):
    """os.environ while installed: the current invocation's variables, else the process's."""

    def __init__(self, process: MutableMapping[str, str]):
        self.process = process

    def _mapping(self) -> MutableMapping[str, str]:
        current = _current.get()
        return self.process if current is None else current

    def __getitem__(self, key: str) -> str:
        return self._mapping()[key]

    def __setitem__(self, key: str, value: str) -> None:
        if not isinstance(value, str):  # as os.environ refuses it
            raise TypeError(f"str expected, not {type(value).__name__}")
        self._mapping()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._mapping()))

    def __len__(self) -> int:
        return len(self._mapping())

    def copy(self) -> dict[str, str]:
        return dict(self._mapping())

    def __or__(self, other: Any) -> dict[str, str]:  # os.environ | {...}, as os._Environ allows
        return {**self._mapping(), **other}

    def __ror__(self, other: Any) -> dict[str, str]:
        return {**other, **self._mapping()}


@contextlib.contextmanager
def running_as(environment: dict[str, str]) -> Iterator[None]:
    """While entered, this thread (and threads it starts) sees `environment` as os.environ."""
    token = _current.set(environment)
    try:
        yield
    finally:
        _current.reset(token)


def _start_in_same_environment(original_start: Any) -> Any:
    def start(thread: threading.Thread) -> None:
        environment = _current.get()
        if environment is not None:
            run = thread.run

            def run_in_environment() -> None:
                with running_as(environment):
                    run()

            thread.run = run_in_environment  # type: ignore[method-assign]
        original_start(thread)

    return start


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """While entered, os.environ (and os.getenv, which reads it) is the per-invocation view, and a
    thread started inside an invocation runs in that invocation's environment. One engine runs in a
    process at a time (a second one's moto refuses its resources); nested, the inner view reads
    through the outer one."""
    with (
        mock.patch.object(os, "environ", _Environ(os.environ)),
        mock.patch.object(threading.Thread, "start", _start_in_same_environment(threading.Thread.start)),
    ):
        yield
