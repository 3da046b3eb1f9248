"""Read template.yaml the way the local engine needs it: resources, parameters, and the
intrinsic functions (Ref, GetAtt, Sub) resolved to local names. Nothing is configured twice:
queue settings, environment variables, substitutions and the pipe's batch size all come
from the template."""

import math
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short tags (!Ref, !GetAtt, !Sub, ...)."""


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)  # YAML has no fourth kind of node
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_tag)


def load_template(path: Path = TEMPLATE) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def check_parameter(name: str, spec: dict, value: str) -> None:
    """Raise ValueError, naming the parameter and the rule, for a value CloudFormation would refuse
    (its parameter constraints: Type Number, AllowedValues, AllowedPattern, Min/MaxLength,
    Min/MaxValue; "Parameters" in the CloudFormation User Guide)."""
    allowed = [str(item) for item in spec.get("AllowedValues", [])]
    if allowed and value not in allowed:
        raise ValueError(f"parameter {name}={value!r}: must be one of {', '.join(allowed)}")
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        raise ValueError(f"parameter {name}={value!r}: must match {spec['AllowedPattern']}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise ValueError(f"parameter {name}: at least {spec['MinLength']} characters")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise ValueError(f"parameter {name}: at most {spec['MaxLength']} characters")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"parameter {name}={value!r}: must be a number") from None
        if not math.isfinite(number):
            raise ValueError(f"parameter {name}={value!r}: must be a number")
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise ValueError(f"parameter {name}={value!r}: at least {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise ValueError(f"parameter {name}={value!r}: at most {spec['MaxValue']}")


class Template:
    """template.yaml with parameters bound and a way to resolve intrinsics.

    Raises ValueError for a parameter the template does not have or a value it refuses."""

    def __init__(self, path: Path = TEMPLATE, parameters: dict[str, str] | None = None):
        self.path = path
        self.doc = load_template(path)
        self.parameters = {
            name: str((parameters or {}).get(name, spec.get("Default", "")))
            for name, spec in self.doc.get("Parameters", {}).items()
        }
        unknown = set(parameters or {}) - set(self.parameters)
        if unknown:
            raise ValueError(f"template.yaml has no parameters named {sorted(unknown)}")
        for name, value in (parameters or {}).items():
            check_parameter(name, self.doc["Parameters"][name], str(value))
        self.refs: dict[str, str] = dict(self.parameters)
        self.attributes: dict[tuple[str, str], str] = {}

    def resources(self, resource_type: str) -> dict[str, dict]:
        """Logical id -> Properties of every resource of `resource_type`, in template order."""
        return {
            logical_id: resource.get("Properties", {})
            for logical_id, resource in self.doc["Resources"].items()
            if resource["Type"] == resource_type
        }

    def resource(self, resource_type: str) -> tuple[str, dict]:
        """The one resource of `resource_type` (the template has exactly one)."""
        (found,) = self.resources(resource_type).items()
        return found

    def bind(self, logical_id: str, ref: str, **attributes: str) -> None:
        """Say what `!Ref logical_id` and `!GetAtt logical_id.Attr` mean locally."""
        self.refs[logical_id] = ref
        for name, value in attributes.items():
            self.attributes[(logical_id, name)] = value

    def function_properties(self, logical_id: str) -> dict:
        """A function's properties with the template's Globals applied (environment merged)."""
        globals_ = dict(self.doc.get("Globals", {}).get("Function", {}))
        props = self.doc["Resources"][logical_id]["Properties"]
        merged = {**globals_, **props}
        merged["Environment"] = {
            "Variables": {
                **globals_.get("Environment", {}).get("Variables", {}),
                **props.get("Environment", {}).get("Variables", {}),
            }
        }
        return merged

    def resolve(self, value: Any) -> Any:
        """`value` with Ref, Fn::GetAtt and Fn::Sub replaced by their local values."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self._ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            return self._attribute(logical_id, attribute)
        if set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub_name(m.group(1)), value["Fn::Sub"])
        if len(value) == 1 and next(iter(value)).startswith("Fn::"):
            raise ValueError(f"the local engine does not resolve {next(iter(value))}")
        return {key: self.resolve(item) for key, item in value.items()}

    def _ref(self, name: str) -> str:
        if name not in self.refs:
            raise KeyError(f"!Ref {name}: not a parameter or a resource the local engine created")
        return self.refs[name]

    def _attribute(self, logical_id: str, attribute: str) -> str:
        if (logical_id, attribute) not in self.attributes:
            raise KeyError(f"!GetAtt {logical_id}.{attribute}: unknown to the local engine")
        return self.attributes[(logical_id, attribute)]

    def _sub_name(self, name: str) -> str:
        if "." in name:
            return self._attribute(*name.split(".", 1))
        return self._ref(name)
