"""The daemon tests' private config and runtime dirs, for the daemon's --metrics."""

from tests.daemon.conftest import dirs as dirs
