"""Admission of custom resources as the API server does it: prune, default, validate, run CEL rules.

The order follows the real server: unknown fields are pruned first (so that they cannot fail the
validation), then schema defaults are applied, then the OpenAPI schema is checked (with
``jsonschema``), and, only if that passed, the ``x-kubernetes-validations`` CEL rules are
evaluated (with ``celpy``). Errors are collected as :class:`FieldError` with Kubernetes-style
field paths (``spec.items[0].name``) and Kubernetes-style messages.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
import jsonschema
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.celtypes import BoolType
from celpy.evaluation import CELEvalError

# Keys of the root object that the schema does not govern: the server validates ObjectMeta itself.
_ROOT_META = ("apiVersion", "kind", "metadata")
_OLDSELF = re.compile(r"\boldSelf\b")


@dataclass(frozen=True)
class FieldError:
    """One cause of a 422 Invalid answer, as in ``Status.details.causes``."""

    field: str  # e.g. "spec.resourceConfig.userPoolConfigs.signInMethod"
    reason: str  # e.g. "FieldValueInvalid"
    message: str  # e.g. 'Invalid value: "string": is immutable'

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class AdmissionError(Exception):
    """The object is invalid; ``errors`` says why, field by field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def json_type(value: Any) -> str:
    """The OpenAPI type name of a JSON value, as the API server names it in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _shown(value: Any) -> str:
    """A value as the server shows it after ``Invalid value:`` (scalars verbatim, else the type)."""
    if isinstance(value, dict | list):
        return json.dumps(json_type(value))
    return json.dumps(value)


def join_path(base: str, key: str | int) -> str:
    """Extend a field path by a property name or a list index."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


# --------------------------------------------------------------------------------------------------
# Pruning and defaulting: both walk the value and the structural schema together.


def _preserves_unknown(schema: Mapping[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def prune(value: Any, schema: Mapping[str, Any], path: str = "", *, root: bool = True) -> list[str]:
    """Drop the fields the schema does not declare (in place); return their paths.

    ``metadata``, ``apiVersion`` and ``kind`` of the root (and of embedded resources) are kept,
    because the server treats them as ObjectMeta/TypeMeta, not as schema-governed data.
    """
    pruned: list[str] = []
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        keep_meta = root or bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            if keep_meta and key in _ROOT_META:
                continue
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if value[key] is None and sub is not None and not sub.get("nullable"):
                del value[key]  # the server drops nulls of non-nullable fields (then defaults them)
                continue
            if key in props:
                pruned += prune(value[key], props[key], join_path(path, key), root=False)
            elif isinstance(extra, dict):
                pruned += prune(value[key], extra, join_path(path, key), root=False)
            elif not _preserves_unknown(schema) and extra is not True:
                del value[key]
                pruned.append(join_path(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            pruned += prune(item, schema["items"], join_path(path, index), root=False)
    return pruned


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> None:
    """Fill in ``default`` values of absent properties (in place), like the server's defaulting."""
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in props:
                    apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


# --------------------------------------------------------------------------------------------------
# OpenAPI v3 (structural) schema -> JSON Schema draft 4 (which shares OpenAPI 3.0's
# boolean exclusiveMinimum/exclusiveMaximum), then jsonschema errors -> Kubernetes causes.


def _to_jsonschema(schema: Mapping[str, Any], *, root: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default", "description", "example"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: _to_jsonschema(v) for k, v in val.items() if not (root and k in _ROOT_META)}
        elif key in ("items", "additionalProperties", "not") and isinstance(val, dict):
            out[key] = _to_jsonschema(val)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_to_jsonschema(v) for v in val]
        elif key == "required" and root:
            out[key] = [k for k in val if k not in _ROOT_META]
        else:
            out[key] = val
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if schema.get("nullable") and "type" in out:
        out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


_FORMATS = jsonschema.FormatChecker(["email", "ipv4", "ipv6"])

_DOLLAR = re.compile(r"(?<!\\)\$")


def re2_search(pattern: str, text: str) -> bool:
    """``pattern`` searched in ``text`` as the API server's RE2 reads it, where Python differs:
    ``$`` only at the very end (not before a final newline) and ``\\w``, ``\\d``, ``\\s`` ASCII only."""
    return re.search(_DOLLAR.sub(r"\\Z", pattern), text, re.ASCII) is not None


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not re2_search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 4 as the API server applies it, with RE2's reading of "pattern".
_Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _pattern})  # type: ignore[no-untyped-call]


@_FORMATS.checks("byte", raises=(binascii.Error, ValueError))
def _is_byte(value: object) -> bool:
    if isinstance(value, str):
        base64.b64decode(value, validate=True)
    return True


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")))


@_FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.date.fromisoformat(value))


@_FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def _schema_errors(error: jsonschema.ValidationError) -> Iterator[FieldError]:
    path = ""
    for key in error.absolute_path:
        path = join_path(path, key)
    # jsonschema types these as "Any | Unset"; in an error raised by a validator they are set.
    value: Any = error.instance
    rule: Any = error.validator_value
    schema: Any = error.schema
    match error.validator:
        case "required":
            missing = re.match(r"'(.*)' is a required property", error.message)
            name = missing.group(1) if missing else str(rule)
            yield FieldError(join_path(path, name), "FieldValueRequired", "Required value")
        case "enum":
            allowed = ", ".join(json.dumps(v) for v in rule)
            yield FieldError(
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {_shown(value)}: supported values: {allowed}",
            )
        case "type":
            expected = rule if isinstance(rule, str) else " or ".join(rule)
            actual = json.dumps(json_type(value))
            yield FieldError(
                path,
                "FieldValueTypeInvalid",
                f"Invalid value: {actual}: {path} in body must be of type {expected}: {actual}",
            )
        case "pattern":
            yield FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {path} in body should match '{rule}'",
            )
        case "minLength":
            yield FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {path} in body should be at least {rule} chars long",
            )
        case "maxLength":
            yield FieldError(path, "FieldValueTooLong", f"Too long: may not be more than {rule} bytes")
        case "minimum":
            op = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
            yield FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {path} in body should be {op} {rule}",
            )
        case "maximum":
            op = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
            yield FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {path} in body should be {op} {rule}",
            )
        case "minItems":
            yield FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {len(value)}: {path} in body should have at least {rule} items",
            )
        case "maxItems":
            yield FieldError(
                path, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {rule} items"
            )
        case "uniqueItems":
            yield FieldError(path, "FieldValueDuplicate", f"Duplicate value: {_shown(value)}")
        case "format":
            yield FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {path} in body must be of type {rule}: {_shown(value)}",
            )
        case _:
            yield FieldError(path, "FieldValueInvalid", f"Invalid value: {_shown(value)}: {error.message}")


# --------------------------------------------------------------------------------------------------
# CEL: x-kubernetes-validations rules, compiled once per CRD.


@dataclass(frozen=True)
class _Rule:
    rule: str
    program: Any  # celpy.Runner
    message: str | None
    message_program: Any | None
    reason: str
    field_path: str
    transition: bool  # references oldSelf: evaluated on updates only, when there is an old value


_CEL = celpy.Environment()

# Property names that are CEL keywords: rules name them ``__{keyword}__``, as in Kubernetes
# (its documentation, "Escaping" under validation rules); ``self.__import__`` is ``import``.
_CEL_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)


def _escaped(value: Any) -> Any:
    """``value`` with the object keys that are CEL keywords spelled as rules spell them."""
    if isinstance(value, dict):
        return {(f"__{k}__" if k in _CEL_RESERVED else k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def _compile(expr: str, where: str) -> Any:
    try:
        return _CEL.program(_CEL.compile(expr))
    except CELParseError as exc:
        raise AdmissionError(
            [
                FieldError(
                    where,
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(expr)}: compilation failed: {exc}",
                )
            ]
        ) from exc


def _compile_rules(schema: Mapping[str, Any], where: str) -> list[_Rule]:
    rules = []
    for index, spec in enumerate(schema.get("x-kubernetes-validations", [])):
        at = f"{where}.x-kubernetes-validations[{index}]"
        text = spec["rule"]
        message_expr = spec.get("messageExpression")
        rules.append(
            _Rule(
                rule=text,
                program=_compile(text, f"{at}.rule"),
                message=spec.get("message"),
                message_program=_compile(message_expr, f"{at}.messageExpression") if message_expr else None,
                reason=spec.get("reason", "FieldValueInvalid"),
                field_path=spec.get("fieldPath", ""),
                transition=bool(_OLDSELF.search(text)),
            )
        )
    return rules


def _subschema(schema: Mapping[str, Any], field_path: str) -> Mapping[str, Any]:
    """The schema at a rule's relative ``fieldPath`` such as ``.settings.mfaTypes`` (best effort)."""
    for key in re.findall(r"\.([^.\[]+)|\['([^']+)'\]", field_path):
        name = key[0] or key[1]
        schema = schema.get("properties", {}).get(name) or schema.get("additionalProperties") or {}
        if not isinstance(schema, Mapping):
            return {}
    return schema


def _cause(reason: str, type_name: str, message: str) -> str:
    prefix = {
        "FieldValueForbidden": "Forbidden",
        "FieldValueRequired": "Required value",
        "FieldValueDuplicate": f"Duplicate value: {json.dumps(type_name)}",
    }.get(reason, f"Invalid value: {json.dumps(type_name)}")
    return f"{prefix}: {message}"


VERDICTS_KEPT = 100_000  # top-level fields' verdicts remembered per Admission


def _digest(*values: Any) -> bytes:
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=16).digest()


class Admission:
    """Admission of one served version of a CRD: built from its ``openAPIV3Schema``."""

    def __init__(self, schema: Mapping[str, Any], where: str = "openAPIV3Schema") -> None:
        self.schema = schema
        self._validator = _Validator(_to_jsonschema(schema, root=True), format_checker=_FORMATS)
        self._rules: dict[int, list[_Rule]] = {}
        # The verdicts of the rules under a top-level field (spec, status), by its value and old
        # value: CEL has no clock or state, so the same values get the same verdicts. Most writes
        # (annotations, status) leave the spec as it was, and interpreting every rule again was
        # most of the emulated API's CPU at scale.
        self._verdicts: dict[bytes, list[FieldError]] = {}
        self._compile_all(schema, where)

    def _compile_all(self, schema: Mapping[str, Any], where: str) -> None:
        if schema.get("x-kubernetes-validations"):
            self._rules[id(schema)] = _compile_rules(schema, where)
        for name, sub in schema.get("properties", {}).items():
            self._compile_all(sub, f"{where}.properties[{name}]")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), Mapping):
                self._compile_all(schema[key], f"{where}.{key}")

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Drop undeclared fields and apply defaults (in place); return the dropped paths."""
        pruned = prune(obj, self.schema)
        apply_defaults(obj, self.schema)
        return pruned

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
        """Check the schema, then (if it passed) the CEL rules; ``old`` is None on create.

        Raises :class:`AdmissionError` when the object is refused.
        """
        errors = [cause for error in self._validator.iter_errors(obj) for cause in _schema_errors(error)]
        if not errors:
            self._run_rules(self.schema, obj, old, old is not None, "", errors)
        if errors:
            raise AdmissionError(sorted(set(errors), key=lambda e: (e.field, e.message)))

    def _run_rules(
        self,
        schema: Mapping[str, Any],
        new: Any,
        old: Any,
        has_old: bool,
        path: str,
        errors: list[FieldError],
    ) -> None:
        rules = self._rules.get(id(schema), [])
        unchanged = bool(rules) and has_old and new == old  # compared only where rules are
        for rule in rules:
            if rule.transition and not has_old:
                continue  # as in Kubernetes: transition rules only run on updates of existing values
            if unchanged and not rule.transition:
                # Validation ratcheting (on by default since Kubernetes 1.30): the errors of a
                # rule without oldSelf on a value the update leaves as it was are dropped, so
                # the server's answer does not depend on them.
                continue
            error = self._evaluate(rule, schema, new, old if has_old else None, path)
            if error is not None:
                errors.append(error)
        if isinstance(new, dict):
            props: Mapping[str, Any] = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            old_map = old if has_old and isinstance(old, dict) else {}
            for key, value in new.items():
                sub = props.get(key, extra if isinstance(extra, Mapping) else None)
                if sub is None or (not path and key in _ROOT_META):
                    continue
                if path:
                    self._run_rules(
                        sub, value, old_map.get(key), key in old_map, join_path(path, key), errors
                    )
                else:
                    errors += self._top_level(sub, key, value, old_map.get(key), key in old_map)
        elif isinstance(new, list) and isinstance(schema.get("items"), Mapping):
            # Items are correlated with old items only for map-lists (by their keys), like the server.
            keys = (
                schema.get("x-kubernetes-list-map-keys", [])
                if schema.get("x-kubernetes-list-type") == "map"
                else []
            )
            old_items = (
                {tuple(i.get(k) for k in keys): i for i in old if isinstance(i, dict)}
                if keys and has_old and isinstance(old, list)
                else {}
            )
            for index, item in enumerate(new):
                ident = tuple(item.get(k) for k in keys) if isinstance(item, dict) else ()
                found = bool(keys) and ident in old_items
                self._run_rules(
                    schema["items"], item, old_items.get(ident), found, join_path(path, index), errors
                )

    def _top_level(
        self, schema: Mapping[str, Any], key: str, new: Any, old: Any, has_old: bool
    ) -> list[FieldError]:
        """The rules' verdicts under the top-level field ``key``, remembered by its values."""
        digest = _digest(key, new, old, has_old)
        found = self._verdicts.get(digest)
        if found is None:
            found = []
            self._run_rules(schema, new, old, has_old, key, found)
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()  # a bound on memory; the next writes fill it again
            self._verdicts[digest] = found
        return list(found)

    def _evaluate(
        self, rule: _Rule, schema: Mapping[str, Any], new: Any, old: Any, path: str
    ) -> FieldError | None:
        activation = {"self": json_to_cel(_escaped(new))}
        if rule.transition:
            activation["oldSelf"] = json_to_cel(_escaped(old))
        field = path + rule.field_path
        type_name = _subschema(schema, rule.field_path).get("type", json_type(new))
        try:
            result = rule.program.evaluate(activation)
        except Exception as exc:  # celpy raises CELEvalError, and also plain TypeErrors on odd input
            result = exc if isinstance(exc, CELEvalError) else CELEvalError(str(exc))
        if isinstance(result, CELEvalError):
            return FieldError(
                field,
                "FieldValueInvalid",
                _cause("FieldValueInvalid", type_name, f"{result.args[0]} evaluating rule: {rule.rule}"),
            )
        if result is True or (isinstance(result, BoolType) and bool(result)):
            return None
        message = rule.message or f"failed rule: {rule.rule}"
        if rule.message_program is not None:
            try:
                dynamic = rule.message_program.evaluate(activation)
            except Exception:  # a broken messageExpression falls back to the message, like the server
                dynamic = None
            if isinstance(dynamic, str) and dynamic.strip():
                message = str(dynamic)
        return FieldError(field, rule.reason, _cause(rule.reason, type_name, message))


_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate_name(name: str) -> FieldError | None:
    """``metadata.name`` must be an RFC 1123 subdomain, as for most kinds of the real server."""
    if len(name) <= 253 and _DNS1123_SUBDOMAIN.match(name):
        return None
    return FieldError(
        "metadata.name",
        "FieldValueInvalid",
        (
            f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ),
    )
