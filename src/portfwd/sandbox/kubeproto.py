"""Just enough of Kubernetes' protobuf encoding to read a SelfSubjectAccessReview.

`kubectl auth can-i` only speaks protobuf for this request (its typed client prefers it and
does not fall back), so the sandbox decodes the envelope (`k8s\\x00` + runtime.Unknown) and
the few string fields it needs. Field numbers: k8s.io/api/authorization/v1/generated.proto.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"

# SelfSubjectAccessReview.spec (2) -> SelfSubjectAccessReviewSpec
RESOURCE_ATTRIBUTES = 1
NON_RESOURCE_ATTRIBUTES = 2
RESOURCE_FIELDS = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}
NON_RESOURCE_FIELDS = {1: "path", 2: "verb"}


class ProtoError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtoError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Top-level fields of one message: number -> values (bytes for length-delimited)."""
    out: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: bytes | int
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtoError("truncated field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _message(data: dict[int, list[bytes | int]], number: int) -> bytes | None:
    values = data.get(number)
    if not values or not isinstance(values[-1], bytes):
        return None
    return values[-1]


def _strings(msg: bytes, names: dict[int, str]) -> dict[str, str]:
    parsed = fields(msg)
    out = {}
    for number, name in names.items():
        raw = _message(parsed, number)
        if raw is not None:
            out[name] = raw.decode("utf-8", "replace")
    return out


def decode_access_review(body: bytes) -> dict[str, Any]:
    """The review's `spec` as the JSON form would carry it; raises ProtoError."""
    if not body.startswith(MAGIC):
        raise ProtoError("missing the k8s protobuf magic prefix")
    unknown = fields(body[len(MAGIC) :])
    raw = _message(unknown, 2)  # runtime.Unknown.raw
    if raw is None:
        raise ProtoError("empty object")
    spec_bytes = _message(fields(raw), 2)
    spec: dict[str, Any] = {}
    if spec_bytes is None:
        return spec
    parsed = fields(spec_bytes)
    res = _message(parsed, RESOURCE_ATTRIBUTES)
    if res is not None:
        spec["resourceAttributes"] = _strings(res, RESOURCE_FIELDS)
    non = _message(parsed, NON_RESOURCE_ATTRIBUTES)
    if non is not None:
        spec["nonResourceAttributes"] = _strings(non, NON_RESOURCE_FIELDS)
    return spec
