"""Just enough Kubernetes protobuf decoding for kubectl's generator commands.

``kubectl create namespace|secret|configmap`` send their body as protobuf (the ``k8s\\0``
envelope around a ``runtime.Unknown``), unlike ``kubectl apply/create -f``, which send JSON.
Those three kinds are decoded here into their JSON form; the sandbox always answers in JSON,
which kubectl accepts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            yield number, buf[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4  # fixed-width numbers: no field we decode uses them
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _message(buf: bytes) -> dict[int, list[int | bytes]]:
    result: dict[int, list[int | bytes]] = {}
    for number, value in _fields(buf):
        result.setdefault(number, []).append(value)
    return result


def _first(fields: dict[int, list[int | bytes]], number: int) -> bytes:
    values = fields.get(number)
    return values[0] if values and isinstance(values[0], bytes) else b""


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _map(entries: list[int | bytes], value: Callable[[bytes], Any]) -> dict[str, Any]:
    result = {}
    for entry in entries:
        fields = _message(entry) if isinstance(entry, bytes) else {}
        key, raw = fields.get(1, [b""])[0], fields.get(2, [b""])[0]
        result[_text(key)] = value(raw if isinstance(raw, bytes) else b"")
    return result


def _metadata(buf: bytes) -> dict[str, Any]:
    # ObjectMeta: name=1, generateName=2, namespace=3, labels=11, annotations=12, finalizers=14.
    fields = _message(buf)
    meta: dict[str, Any] = {}
    for number, key in [(1, "name"), (2, "generateName"), (3, "namespace")]:
        if _first(fields, number):  # Go writes empty strings too; JSON would omit them
            meta[key] = _first(fields, number).decode()
    for number, key in [(11, "labels"), (12, "annotations")]:
        if number in fields:
            meta[key] = _map(fields[number], bytes.decode)
    if 14 in fields:
        meta["finalizers"] = [_text(f) for f in fields[14]]
    return meta


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# Field numbers of each kind, from k8s.io/api/core/v1/generated.proto.
_KINDS: dict[str, Callable[[dict[int, list[int | bytes]]], dict[str, Any]]] = {
    "Namespace": lambda f: {},
    "Secret": lambda f: {
        **({"data": _map(f[2], _b64)} if 2 in f else {}),
        **({"type": _first(f, 3).decode()} if _first(f, 3) else {}),
        **({"stringData": _map(f[4], bytes.decode)} if 4 in f else {}),
        **({"immutable": bool(f[5][0])} if 5 in f else {}),
    },
    "ConfigMap": lambda f: {
        **({"data": _map(f[2], bytes.decode)} if 2 in f else {}),
        **({"binaryData": _map(f[3], _b64)} if 3 in f else {}),
        **({"immutable": bool(f[4][0])} if 4 in f else {}),
    },
}


def decode(body: bytes) -> dict[str, Any]:
    """Decode a protobuf-encoded Namespace, Secret or ConfigMap; ValueError for anything else."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf envelope")
    unknown = _message(body[len(MAGIC) :])
    type_meta = _message(_first(unknown, 1))
    api_version, kind = _first(type_meta, 1).decode(), _first(type_meta, 2).decode()
    if api_version != "v1" or kind not in _KINDS:
        raise ValueError(f"protobuf bodies of {api_version}/{kind} are not supported")
    fields = _message(_first(unknown, 2))
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": _metadata(_first(fields, 1)),
        **_KINDS[kind](fields),
    }


# ---- encoding: only the empty OpenAPI v2 document --------------------------------------------------

OPENAPI_V2_MIME = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"  # as the real server answers


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _encode_bytes(number: int, value: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(value)) + value


def openapi_v2_document(title: str, version: str) -> bytes:
    """An ``openapi_v2.Document`` (gnostic) with ``swagger``, ``info`` and no definitions.

    kubectl fetches ``/openapi/v2`` (protobuf only) to validate a ``kind: List`` on the client
    (``kubectl apply -f backup.yaml``); a kind without a definition there is not checked on
    the client, and the server still validates every item with ``fieldValidation=Strict``.
    Document: swagger=1, info=2; Info: title=1, version=2.
    """
    info = _encode_bytes(1, title.encode()) + _encode_bytes(2, version.encode())
    return _encode_bytes(1, b"2.0") + _encode_bytes(2, info)
