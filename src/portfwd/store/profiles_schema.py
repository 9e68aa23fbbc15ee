"""The profiles file described for people and editors: the documented example
(`portfwd profile example`) and a JSON Schema (`portfwd profile schema`).

The schema says what `profiles_check` accepts, as far as JSON Schema can: the checker also
knows what a schema cannot (group members that are forwards, local ports used twice,
contexts of the kubeconfig). Tests check that the example passes both.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from portfwd.store.profiles_check import (
    DEFAULTS_KEYS,
    FORWARD_KEYS,
    NAMESPACE_KEYS,
    SCHEMA_VERSION,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
# [LOCAL:]REMOTE where a bare port name is refused (its local port is unknown until resolved).
PORT_PATTERN = r"^([0-9]{1,5}|[0-9]{0,5}:([0-9]{1,5}|[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?))$"
TARGET_PATTERN = r"^([A-Za-z.]+/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def example_text() -> str:
    """The documented example profiles file."""
    return resources.files("portfwd.store").joinpath("profiles_example.yaml").read_text("utf-8")


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": description}


def _duration(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": DURATION_PATTERN, "description": description}


# Go's duration syntax (humanize.parse_duration), as the profiles take it: 10m, 1h30m, 45s.
DURATION_PATTERN = r"^((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$"


def schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of profiles.yaml."""
    address = {
        "description": "Local addresses to listen on: IP addresses or localhost "
        "(127.0.0.1 and ::1); text with commas or a list.",
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        ],
    }
    common = {
        "kubeconfig": _text("Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)."),
        "context": _text("Kubeconfig context (default: its current-context)."),
        "namespace": _text("Namespace (default: the context's)."),
        "address": {"$ref": "#/$defs/address"},
    }
    port = {
        "oneOf": [
            {"type": "string", "pattern": PORT_PATTERN},
            {"type": "integer", "minimum": 1, "maximum": 65535},
        ],
        "description": 'As kubectl writes it: "8080:80", "80", ":80" (a free local port), '
        '"8443:https" (a named remote port).',
    }
    forward_properties: dict[str, Any] = {
        "name": {"$ref": "#/$defs/name"},
        "target": {
            "type": "string",
            "pattern": TARGET_PATTERN,
            "description": "svc/NAME, pod/NAME, deploy/NAME, sts/NAME, rs/NAME or a pod "
            "name, as kubectl takes it.",
        },
        "ports": {"oneOf": [port, {"type": "array", "items": port, "minItems": 1}]},
        "reconnect": {
            "type": "boolean",
            "description": "Follow the target through restarts (default true).",
        },
        "spread": {
            "type": "boolean",
            "description": "New connections spread over every Ready pod behind the target, "
            "as a Service spreads them (default false: one pod, as kubectl).",
        },
        "probe": {
            "type": "string",
            "pattern": "^(tcp|http(:/[^\\s]*)?)$",
            "description": "Check through the tunnel that the pod's port answers: tcp, or "
            "http:/PATH (a GET answered 2xx/3xx); while it fails the forward is degraded. "
            "Off when left out.",
        },
        "probe_interval": {
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": 3600},
                {"type": "string", "pattern": "^([0-9.]+(ms|s|m|h))+$"},
            ],
            "description": "How often the probe runs: seconds, or a duration such as 10s or "
            "1m (default 10s).",
        },
        "lazy": {
            "type": "boolean",
            "description": "Bind the port now, open the tunnel on the first connection and "
            "close it when idle (default false).",
        },
        "idle_after": _duration(
            "A lazy forward closes its tunnel after this long without traffic (default 10m); "
            "implies lazy."
        ),
        "idle_stop": _duration("Stop the forward after this long without traffic (e.g. 30m)."),
        "http_log": {
            "type": "boolean",
            "description": "Log each HTTP/1.x request through the forward: method, path, "
            "status, size, duration (default false).",
        },
        **common,
    }
    assert set(forward_properties) == set(FORWARD_KEYS)
    assert set(common) == set(DEFAULTS_KEYS)
    forward = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "target", "ports"],
        "properties": forward_properties,
    }
    namespace_properties: dict[str, Any] = {
        "namespace": _text("The namespace whose Services are all forwarded."),
        "context": common["context"],
        "kubeconfig": common["kubeconfig"],
        "selector": _text("Only Services with these labels (as kubectl -l takes them)."),
        "exclude": {
            "description": "Services left out: a name or a list of names.",
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}},
            ],
        },
    }
    assert set(namespace_properties) == set(NAMESPACE_KEYS)
    namespace = {
        "type": "object",
        "additionalProperties": False,
        "required": ["namespace"],
        "properties": namespace_properties,
        "description": "Every Service of a namespace on its own loopback address and native "
        "ports, as `portfwd ns` forwards them.",
    }
    profile = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "description": {"type": "string"},
            "defaults": {
                "type": "object",
                "additionalProperties": False,
                "properties": common,
                "description": "What the forwards use unless they say otherwise.",
            },
            "forwards": {"type": "array", "items": {"$ref": "#/$defs/forward"}},
            "namespaces": {"type": "array", "items": {"$ref": "#/$defs/namespace"}},
            "groups": {
                "type": "object",
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/name"},
                    "description": "Names of forwards of this profile.",
                },
            },
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "portfwd profiles",
        "description": "portfwd's saved sets of forwards (profiles.yaml).",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"const": SCHEMA_VERSION},
            "profiles": {
                "type": "object",
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/profile"},
            },
        },
        "$defs": {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "address": address,
            "forward": forward,
            "namespace": namespace,
            "profile": profile,
        },
    }
