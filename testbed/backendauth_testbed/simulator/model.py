"""What the simulator reads from the botocore ``amplifybackend`` service model.

Routes, input validation and secret redaction are all derived from the model by walking its
shapes, so that the simulator speaks exactly the wire format boto3 speaks and cannot drift from
it by a hand-written table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from backendauth_operator.aws.service_model import service_model

#: The operations the simulator serves, in the order their routes are registered.
OPERATIONS = (
    "CreateBackendAuth",
    "GetBackendAuth",
    "UpdateBackendAuth",
    "DeleteBackendAuth",
    "GetBackendJob",
    "ListBackendJobs",
    "UpdateBackendJob",
    "GetBackend",
    "ImportBackendAuth",
)

#: Operations that start a job, and so are subject to the one-pending-job rule and to the
#: ambiguous fault.
MUTATING = frozenset({"CreateBackendAuth", "UpdateBackendAuth", "DeleteBackendAuth", "ImportBackendAuth"})


def changes_something(op: str) -> bool:
    """Whether an AmplifyBackend operation changes anything (all but the Get and List ones):
    these are the calls ``/_sim/calls`` lists under ``mutating``."""
    return not op.startswith(("Get", "List"))


REDACTED = "***"


@dataclass(frozen=True)
class Route:
    """One operation's HTTP binding, as the model's ``http`` trait gives it."""

    operation: str
    method: str
    path: str  # aiohttp route syntax, which happens to equal the model's ``{label}`` syntax


def routes() -> list[Route]:
    """The HTTP routes of the served operations, from the model's ``http.requestUri``."""
    result = []
    for name in OPERATIONS:
        http = service_model().operation_model(name).http
        result.append(Route(name, http["method"], http["requestUri"]))
    return result


def unserved_routes() -> list[Route]:
    """The routes of the model's other operations: answered 404 ``UnknownOperationException``,
    but recorded in the call log (so that a DeleteBackend, say, is seen)."""
    model = service_model()
    result = []
    for name in model.operation_names:
        if name not in OPERATIONS:
            http = model.operation_model(name).http
            result.append(Route(name, http["method"], http["requestUri"]))
    return result


def operation(name: str) -> OperationModel:
    """The botocore operation model of ``name``."""
    return service_model().operation_model(name)


def wire_name(member_name: str, shape: Shape) -> str:
    """The JSON/URI name of a member (``locationName`` when the model sets one)."""
    name: str = shape.serialization.get("name", member_name)
    return name


def _body_members(shape: StructureShape) -> Iterator[tuple[str, str, Shape]]:
    for name, member in shape.members.items():
        if "location" not in member.serialization:
            yield name, wire_name(name, member), member


def validate_input(op: str, body: dict[str, Any]) -> list[str]:
    """Check a request body against the operation's input shape; return one message per problem.

    URI members are not checked here: the router only matches a request whose path has them.
    Only body members are allowed in the body, so that a misplaced ``appId`` is reported.
    """
    shape = operation(op).input_shape
    assert shape is not None  # every served operation has an input
    errors: list[str] = []
    body_shape = {wire: (name, member) for name, wire, member in _body_members(shape)}
    for key, value in body.items():
        if key not in body_shape:
            errors.append(f"{key}: unknown member")
        else:
            errors.extend(_validate(body_shape[key][1], value, key))
    for wire, (name, _member) in body_shape.items():
        if name in shape.required_members and wire not in body:
            errors.append(f"{wire}: required member is missing")
    return errors


def _bounds(shape: Shape, size: float, path: str, what: str) -> list[str]:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if lo is not None and size < lo:
        return [f"{path}: {what} must be at least {lo}"]
    if hi is not None and size > hi:
        return [f"{path}: {what} must be at most {hi}"]
    return []


def _validate(shape: Shape, value: Any, path: str) -> list[str]:
    """Validate ``value`` against ``shape`` recursively; ``path`` names it in messages."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        members = {wire_name(n, m): (n, m) for n, m in shape.members.items()}
        errors: list[str] = []
        for key, item in value.items():
            if key not in members:
                errors.append(f"{path}.{key}: unknown member")
            else:
                errors.extend(_validate(members[key][1], item, f"{path}.{key}"))
        for wire, (name, _m) in members.items():
            if name in shape.required_members and wire not in value:
                errors.append(f"{path}.{wire}: required member is missing")
        return errors
    if kind == "list":
        assert isinstance(shape, ListShape)
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        errors = _bounds(shape, len(value), path, "length")
        for i, item in enumerate(value):
            errors.extend(_validate(shape.member, item, f"{path}[{i}]"))
        return errors
    if kind == "map":
        assert isinstance(shape, MapShape)
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        errors = []
        for key, item in value.items():
            errors.extend(_validate(shape.value, item, f"{path}.{key}"))
        return errors
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {type(value).__name__}"]
        enum: list[str] = shape.metadata.get("enum", [])
        if enum and value not in enum:
            return [f"{path}: {value!r} is not one of {', '.join(enum)}"]
        return _bounds(shape, len(value), path, "length")
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]
    # bool is an int in Python: exclude it from the numeric types explicitly.
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: expected an integer, got {value!r}"]
        return _bounds(shape, value, path, "value")
    if kind in ("double", "float"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{path}: expected a number, got {value!r}"]
        return _bounds(shape, value, path, "value")
    return []  # timestamps, blobs: not used by the served operations


def _redact_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_all(v) for v in value]
    return REDACTED


def redact(shape: Shape, value: Any) -> Any:
    """A copy of ``value`` with every scalar under a ``sensitive`` shape or member replaced.

    Keys are kept so that a test can still see *which* members were sent. Only valid input
    reaches this function, so unknown keys do not occur; they are redacted anyway to be safe.
    """
    if shape.metadata.get("sensitive"):
        return _redact_all(value)
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = {wire_name(n, m): m for n, m in shape.members.items()}
        return {k: redact(members[k], v) if k in members else _redact_all(v) for k, v in value.items()}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [redact(shape.member, v) for v in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {k: redact(shape.value, v) for k, v in value.items()}
    return value


def redact_body(op: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request body of ``op`` with its sensitive values redacted."""
    shape = operation(op).input_shape
    assert shape is not None
    redacted: dict[str, Any] = redact(shape, body)
    return redacted
