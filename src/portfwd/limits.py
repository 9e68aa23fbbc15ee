"""Process limits portfwd raises for itself at start.

Every forwarded connection holds a descriptor (and with v4, a second one to the API server),
so the usual soft limit of 1024 open files is reached by a busy browser tab. Go programs such
as kubectl raise their soft limit to the hard limit at start; portfwd does the same.
"""

from __future__ import annotations

try:
    import resource
except ImportError:  # Windows: no such limits
    resource = None  # type: ignore[assignment]

NOFILE_CEILING = 1 << 20  # an "unlimited" hard limit is raised to this (the kernel's nr_open)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one; returns (soft, hard) afterwards."""
    if resource is None:
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NOFILE_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        for value in (target, NOFILE_CEILING, 65536):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(value, target), hard))
                break
            except (OSError, ValueError):
                continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)
