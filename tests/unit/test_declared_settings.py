"""Each handler module's SETTINGS (settings.declare) is the truth: exactly the settings its code reads.

What the code reads is found in the source, not by running it: from the handler, every function of
`tgrelay` it can reach (a call, or any mention of the function, across modules), plus the code the
modules run at import, and in that code every read of the environment with a literal name:
setting("X") and number_setting("X") (required without a default), os.environ.get / os.getenv
(optional), os.environ["X"] (required), and calls of a function that passes its own parameter to
one of those (conversation._choice("GROUP_MESSAGES", ...)). Reachability is by function, not by
module: the webhook imports turns for register_queued, not for the claims table its handler uses.
"""

import ast
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tgrelay import settings
from tgrelay.errors import ConfigurationError

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "functions" / "tgrelay"
PACKAGE = "tgrelay"
SETTINGS_MODULE = "tgrelay.settings"
REQUIRED, OPTIONAL = "required", "optional"


# -- the scan -------------------------------------------------------------------------------------


@dataclass
class Module:
    name: str
    tree: ast.Module
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef] = field(default_factory=dict)
    # local name -> what it names, dotted ("tgrelay.settings.setting", "os")
    imports: dict[str, str] = field(default_factory=dict)


def _load_package() -> dict[str, Module]:
    modules = {}
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        name = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        module = Module(name, ast.parse(path.read_text(), filename=str(path)))
        for node in module.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                module.defs[node.name] = node
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        module.imports[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        module.imports[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        modules[name] = module
    return modules


class Scan:
    """The settings each handler of the package reads (see the module docstring)."""

    # reader -> how a call of it names the setting and whether it has a default
    BASE_READERS = {
        f"{SETTINGS_MODULE}.setting": "setting",
        f"{SETTINGS_MODULE}.number_setting": "setting",
        "os.environ.get": "get",
        "os.getenv": "get",
    }

    def __init__(self) -> None:
        self.modules = _load_package()
        # derived reader "tgrelay.m.f" -> (index of the parameter it reads, required or optional)
        self.derived: dict[str, tuple[int, str]] = {}
        self.problems: list[str] = []
        self._find_derived_readers()

    # names

    def canonical(self, dotted: str) -> str:
        """`dotted` after following re-exports inside the package (tgrelay.m.f imported into m from elsewhere)."""
        for _ in range(10):
            module_name, _, attribute = dotted.rpartition(".")
            module = self.modules.get(module_name)
            if module is None or attribute in module.defs or attribute not in module.imports:
                return dotted
            dotted = module.imports[attribute]
        return dotted

    def resolve(self, module: Module, node: ast.expr) -> str | None:
        """The dotted name an expression names (a Name or an Attribute chain), ignoring local shadowing."""
        if isinstance(node, ast.Name):
            if node.id in module.defs:
                return f"{module.name}.{node.id}"
            if node.id in module.imports:
                return self.canonical(module.imports[node.id])
            return None
        if isinstance(node, ast.Attribute):
            base = self.resolve(module, node.value)
            return self.canonical(f"{base}.{node.attr}") if base else None
        return None

    def definition(self, dotted: str) -> tuple[Module, ast.AST] | None:
        module_name, _, attribute = dotted.rpartition(".")
        module = self.modules.get(module_name)
        if module is None or attribute not in module.defs:
            return None
        return module, module.defs[attribute]

    # reads

    def _read(self, module: Module, call: ast.Call) -> tuple[ast.expr | None, str] | None:
        """(the expression naming the setting, required/optional) if `call` reads the environment."""
        target = self.resolve(module, call.func)
        if target in self.BASE_READERS:
            name = call.args[0] if call.args else None
            if self.BASE_READERS[target] == "get":
                return name, OPTIONAL
            default = (
                call.args[1]
                if len(call.args) > 1
                else next((keyword.value for keyword in call.keywords if keyword.arg == "default"), None)
            )
            without_default = default is None or (isinstance(default, ast.Constant) and default.value is None)
            return name, REQUIRED if without_default else OPTIONAL
        if target in self.derived:
            index, kind = self.derived[target]
            return (call.args[index] if len(call.args) > index else None), kind
        return None

    def _subscript_read(self, module: Module, node: ast.Subscript) -> ast.expr | None:
        if self.resolve(module, node.value) == "os.environ":
            return node.slice
        return None

    def _find_derived_readers(self) -> None:
        """Functions that read the setting their parameter names (conversation._choice); to a fixpoint."""
        changed = True
        while changed:
            changed = False
            for module in self.modules.values():
                if module.name == SETTINGS_MODULE:
                    continue
                for name, node in module.defs.items():
                    dotted = f"{module.name}.{name}"
                    if dotted in self.derived or isinstance(node, ast.ClassDef):
                        continue
                    parameters = [arg.arg for arg in node.args.posonlyargs + node.args.args]
                    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                        read = self._read(module, call)
                        if read and isinstance(read[0], ast.Name) and read[0].id in parameters:
                            self.derived[dotted] = (parameters.index(read[0].id), read[1])
                            changed = True
                            break

    def reads_in(self, module: Module, nodes: list[ast.AST], where: str) -> Iterator[tuple[str, str]]:
        """(setting, required/optional) for every read in `nodes`; a name that is not a literal is a problem."""
        for node in (n for top in nodes for n in ast.walk(top)):
            name: ast.expr | None
            if isinstance(node, ast.Call) and (read := self._read(module, node)):
                name, kind = read
            elif isinstance(node, ast.Subscript) and (subscript := self._subscript_read(module, node)):
                name, kind = subscript, REQUIRED
            else:
                continue
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                yield name.value, kind
            elif f"{module.name}.{where}" not in self.derived:
                self.problems.append(f"{module.name}.{where} line {node.lineno}: a setting read by a computed name")

    # reachability

    @staticmethod
    def _import_time_code(module: Module) -> list[ast.AST]:
        """What a module runs when imported: all but the bodies of its functions."""
        code: list[ast.AST] = []
        for node in module.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                code.extend(node.decorator_list)
                code.extend(node.args.defaults + [d for d in node.args.kw_defaults if d is not None])
            else:
                code.append(node)
        return code

    def _imported_modules(self, module: Module) -> set[str]:
        found = set()
        for dotted in module.imports.values():
            for candidate in (dotted, dotted.rpartition(".")[0]):
                if candidate in self.modules:
                    found.add(candidate)
                    break
        return found

    def import_closure(self, module_name: str) -> list[str]:
        seen, stack = {module_name}, [module_name]
        while stack:
            for imported in self._imported_modules(self.modules[stack.pop()]) - seen:
                seen.add(imported)
                stack.append(imported)
        return sorted(seen)

    def handler_reads(self, handler_module: str) -> dict[str, str]:
        """setting -> required/optional, for everything the handler of `handler_module` may read."""
        reads: dict[str, str] = {}

        def note(name: str, kind: str) -> None:
            reads[name] = REQUIRED if REQUIRED in (kind, reads.get(name)) else kind

        pending: list[tuple[Module, list[ast.AST], str]] = []
        for module_name in self.import_closure(handler_module):
            module = self.modules[module_name]
            pending.append((module, self._import_time_code(module), "<import>"))
        reached = {f"{handler_module}.handler"}
        pending.append((self.modules[handler_module], [self.modules[handler_module].defs["handler"]], "handler"))
        while pending:
            module, nodes, where = pending.pop()
            if module.name != SETTINGS_MODULE:  # its own reads are of the names it is given
                for name, kind in self.reads_in(module, nodes, where):
                    note(name, kind)
            for node in (n for top in nodes for n in ast.walk(top)):
                if not isinstance(node, ast.Name | ast.Attribute):
                    continue
                target = self.resolve(module, node)
                if target and target not in reached and (found := self.definition(target)):
                    reached.add(target)
                    pending.append((found[0], [found[1]], target.rpartition(".")[2]))
        return reads

    def handler_modules(self) -> list[str]:
        return sorted(name for name, module in self.modules.items() if "handler" in module.defs)


@pytest.fixture(scope="module")
def scan() -> Scan:
    return Scan()


# -- the declarations against the scan ------------------------------------------------------------


def test_the_scan_finds_the_six_handlers(scan):
    assert scan.handler_modules() == [
        "tgrelay.auto_replay",
        "tgrelay.call_agent",
        "tgrelay.register_webhook",
        "tgrelay.send_reply",
        "tgrelay.turns",
        "tgrelay.webhook",
    ]


def test_every_setting_is_read_by_a_literal_name(scan):
    for module in scan.handler_modules():
        scan.handler_reads(module)
    assert scan.problems == []


@pytest.mark.parametrize("module_name", Scan().handler_modules())
def test_a_handler_declares_exactly_what_it_reads(scan, module_name):
    declared = importlib.import_module(module_name).SETTINGS
    assert isinstance(declared, settings.Declared)
    assert declared.module == module_name
    reads = scan.handler_reads(module_name)
    read = {kind: {name for name, k in reads.items() if k == kind} for kind in (REQUIRED, OPTIONAL)}
    assert not (declared.required & declared.optional), "declared both required and optional"
    assert read[REQUIRED] - declared.required == set(), f"{module_name} reads these without declaring them required"
    assert read[OPTIONAL] - declared.optional == set(), f"{module_name} reads these without declaring them optional"
    assert declared.required - read[REQUIRED] == set(), (
        f"{module_name} declares these required but does not read them so"
    )
    assert declared.optional - read[OPTIONAL] == set(), (
        f"{module_name} declares these optional but does not read them so"
    )


# -- the scan sees what it must (its own mistakes would make the test above pass for nothing) ---------


def test_the_scan_follows_calls_across_modules_and_not_whole_modules(scan):
    webhook = scan.handler_reads("tgrelay.webhook")
    assert webhook["TURNS_TABLE_NAME"] == REQUIRED  # webhook.handler -> turns.register_queued
    assert webhook["SECRET_ARN"] == REQUIRED  # webhook.handler -> secrets.secret_field
    assert webhook["GROUP_MESSAGES"] == OPTIONAL  # conversation.route -> _choice -> os.environ.get
    assert "TABLE_NAME" not in webhook  # turns reads it, but not on register_queued's path
    assert "AGENT_URL" not in scan.handler_reads("tgrelay.send_reply")


def test_the_scan_sees_a_new_read_without_a_declaration(scan):
    """What happens when someone adds setting("NEW") to a handler's path and forgets SETTINGS."""
    module = scan.modules["tgrelay.send_reply"]
    original = module.defs["handler"]
    extra = ast.parse('setting("NEW_SETTING")\nnumber_setting("NEW_NUMBER", 3)').body
    module.defs["handler"] = ast.FunctionDef(
        name="handler",
        args=original.args,
        body=[*extra, *original.body],
        decorator_list=[],
        returns=None,
        type_params=[],
    )
    try:
        reads = scan.handler_reads("tgrelay.send_reply")
    finally:
        module.defs["handler"] = original
    assert reads["NEW_SETTING"] == REQUIRED
    assert reads["NEW_NUMBER"] == OPTIONAL


# -- the check at init ----------------------------------------------------------------------------


def test_lambdas_handler_module_is_checked_at_import_naming_every_missing_variable(monkeypatch):
    monkeypatch.setenv("_HANDLER", "tgrelay.example.handler")
    monkeypatch.setenv("PRESENT", "x")
    monkeypatch.delenv("ABSENT_ONE", raising=False)
    monkeypatch.delenv("ABSENT_TWO", raising=False)
    monkeypatch.setenv("EMPTY", "")  # present: an empty parameter still fails where it is read, as before
    with pytest.raises(ConfigurationError) as raised:
        settings.declare(
            "tgrelay.example", required=("PRESENT", "EMPTY", "ABSENT_ONE", "ABSENT_TWO"), optional=("ABSENT_THREE",)
        )
    assert str(raised.value) == (
        "environment variables ABSENT_ONE, ABSENT_TWO are not set (tgrelay.example needs them)"
    )
    monkeypatch.setenv("ABSENT_ONE", "x")
    with pytest.raises(ConfigurationError, match=r"^environment variable ABSENT_TWO is not set \(tgrelay"):
        settings.declare("tgrelay.example", required=("PRESENT", "ABSENT_ONE", "ABSENT_TWO"))


@pytest.mark.parametrize("handler", [None, "tgrelay.webhook.handler", "tgrelay.example_more.handler"])
def test_any_other_import_checks_nothing(monkeypatch, handler):
    """A library import (webhook imports turns), the local engine and the tests set settings per use."""
    if handler is None:
        monkeypatch.delenv("_HANDLER", raising=False)
    else:
        monkeypatch.setenv("_HANDLER", handler)
    monkeypatch.delenv("ABSENT_ONE", raising=False)
    declared = settings.declare("tgrelay.example", required=("ABSENT_ONE",), optional=("ABSENT_TWO",))
    assert declared == settings.Declared("tgrelay.example", frozenset({"ABSENT_ONE"}), frozenset({"ABSENT_TWO"}))
    assert "ABSENT_ONE" not in os.environ
