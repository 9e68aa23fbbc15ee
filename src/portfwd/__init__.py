"""portfwd: one terminal window that runs and watches every Kubernetes port-forward."""

from importlib.metadata import PackageNotFoundError, version


def _installed_version() -> str:
    """The version pyproject.toml gave the installed package (its metadata: one source)."""
    try:
        return version("portfwd")
    except PackageNotFoundError:  # a source tree on sys.path without an install
        return "0+unknown"


__version__ = _installed_version()
