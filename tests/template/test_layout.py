"""functions/tgrelay/ in three kinds (README: Layout): handlers, domain, adapters. The domain
modules do no I/O: they import no adapter, no AWS or HTTP library, so their rules can be read
and tested without a network; nothing under local/ is imported by functions/ (DESIGN.md §2)."""

import ast

import pytest

from .conftest import FUNCTIONS_DIR

PACKAGE = FUNCTIONS_DIR / "tgrelay"
HANDLERS = {"webhook", "call_agent", "send_reply", "turns", "auto_replay", "register_webhook"}
DOMAIN = {
    "envelope",
    "conversation",
    "replies",
    "contract",
    "formatting",
    "text",
    "dead_letters",
    "shapes",
    "errors",
    "telegram_limits",
    "settings",
}
ADAPTERS = {"clients", "telegram", "agent", "streaming", "drafts", "attachments", "reply_files", "claims", "secrets"}
# What talks to a service: the adapters, and the libraries they use for it (a package, or the one
# module of a package that does: urllib.parse only reads URLs, urllib.request fetches them).
IO_LIBRARIES = {"boto3", "botocore", "httpx", "urllib.request", "http", "socket", "requests"}


def imported(module: str) -> set[str]:
    """The top-level names a module imports (tgrelay.x as x)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "tgrelay":
                names |= {f"tgrelay.{alias.name}" for alias in node.names}
    return {name.removeprefix("tgrelay.") if name.startswith("tgrelay.") else name.split(".")[0] for name in names}


def io_imported(module: str) -> set[str]:
    """The IO_LIBRARIES a module imports (a package, or a module of one, by its dotted name)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    names |= {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    return {lib for lib in IO_LIBRARIES for name in names if name == lib or name.startswith(lib + ".")}


def test_every_module_has_one_kind():
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert modules == HANDLERS | DOMAIN | ADAPTERS, "add the new module to its kind here and in the README's Layout"
    assert not (HANDLERS & DOMAIN or HANDLERS & ADAPTERS or DOMAIN & ADAPTERS)


@pytest.mark.parametrize("module", sorted(DOMAIN))
def test_domain_modules_do_no_io(module):
    names = imported(module)
    assert not names & ADAPTERS, f"{module} imports the adapter(s) {sorted(names & ADAPTERS)}"
    assert not names & HANDLERS, f"{module} imports the handler(s) {sorted(names & HANDLERS)}"
    assert not io_imported(module), f"{module} imports {sorted(io_imported(module))}"


@pytest.mark.parametrize("module", sorted(HANDLERS | DOMAIN | ADAPTERS))
def test_nothing_in_functions_imports_local(module):
    assert not {name for name in imported(module) if name.startswith("tgrelay_local")}
