"""portfwd: one terminal window that runs and watches every Kubernetes port-forward."""

from __future__ import annotations

import os
import sys

_UNKNOWN = "0+unknown"  # a source tree on sys.path without an install


_found: str | None = None


def version() -> str:
    """The version pyproject.toml gave the installed package (its metadata: one source).

    Read when asked, not at import: `portfwd ls` and the daemon's clients should not pay for
    importlib.metadata (and the email parser it imports) at every start. The installed
    `portfwd-VERSION.dist-info` directory names it; importlib.metadata is the fallback.
    (Neither functools nor typing is imported here: `portfwd --version` pays for each.)"""
    global _found
    if _found is None:
        _found = _read_version()
    return _found


def _read_version() -> str:
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("portfwd-") and name.endswith(".dist-info"):
                found = _metadata_version(os.path.join(entry, name, "METADATA"))
                if found:
                    return found
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as metadata_version

    try:
        return metadata_version("portfwd")
    except PackageNotFoundError:
        return _UNKNOWN


def _metadata_version(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("Version:"):
                    return line.partition(":")[2].strip()
                if not line.strip():
                    return None  # the headers end at the first blank line
    except OSError:
        return None
    return None


def __getattr__(name: str) -> str:
    """`portfwd.__version__`, computed on first use (PEP 562)."""
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'portfwd' has no attribute {name!r}")
