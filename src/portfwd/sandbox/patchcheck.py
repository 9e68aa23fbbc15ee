"""What a patched object must still be before the sandbox keeps it: its fields' JSON types, and
a workload size the sandbox can run.

A real API server decodes a patched object into its Go type and answers 400 with Go's JSON
error when a field has the wrong type (`{"spec":5}` on a Service, `"replicas":"x"`); the
sandbox has no Go types, so the object before the patch stands in for its schema: every field
it has keeps its JSON type (a list's items the type of its first item). Replicas are capped at
:data:`MAX_REPLICAS`: each is a pod with its own backends, and a scale to 100,000 would eat
the machine.
"""

from __future__ import annotations

from typing import Any

MAX_REPLICAS = 100


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def type_problem(kind: str, before: Any, after: Any, path: str = "") -> str | None:
    """Go's decoding error for the first field of `after` whose type differs from `before`'s,
    or None."""
    if before is None or after is None:
        return None
    was, now = _json_kind(before), _json_kind(after)
    if was != now:
        if was == "number" and isinstance(before, int) and not isinstance(before, bool):
            want = "int32"
        else:
            want = {"object": "struct", "array": "slice", "number": "number"}.get(was, was)
        field = f" {kind}{path}" if path else f" {kind}"
        return f"json: cannot unmarshal {now} into Go struct field{field} of type {want}"
    if isinstance(before, dict):
        for key, value in after.items():
            problem = type_problem(kind, before.get(key), value, f"{path}.{key}")
            if problem is not None:
                return problem
    elif isinstance(before, list) and before:
        for item in after:
            problem = type_problem(kind, before[0], item, path)
            if problem is not None:
                return problem
    return None


def replicas_problem(kind: str, name: str, replicas: Any) -> str | None:
    """The 422 message for a replica count the sandbox will not run, or None."""
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > MAX_REPLICAS:
        return (
            f'{kind} "{name}" is invalid: spec.replicas: Invalid value: {replicas}: the portfwd '
            f"sandbox runs at most {MAX_REPLICAS} replicas of a workload"
        )
    return None
