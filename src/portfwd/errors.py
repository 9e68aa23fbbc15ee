"""The one exception type a user ever sees.

Every expected failure (bad input, missing resource, unreachable cluster, ...) is raised as a
:class:`PortfwdError` whose message is a single line telling the user what was wrong and what
to do about it. Front ends (CLI, TUI) print the message and never a traceback.
"""

from __future__ import annotations


class PortfwdError(Exception):
    """An expected failure with a message written for the user (one line, actionable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PortfwdError):
    """The kubeconfig (or a credential it names) is missing, unreadable or invalid."""


class InputError(PortfwdError):
    """A command-line or form value is malformed (port spec, address, target ...)."""


class ResolveError(PortfwdError):
    """A target could not be turned into a Ready pod and container port."""


class NoReadyPod(ResolveError):
    """No pod can take the forward right now (none Ready, or the pod is not Running yet).

    This may change by itself (a rollout, a restart, a pod being scheduled), so the engine
    retries; every other ResolveError needs the user to change something.
    """
