"""Where portfwd keeps its files: one function, importable without the store's weight (the
CLI clients need the path, not YAML)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CONFIG_DIR_ENV = "PORTFWD_CONFIG_DIR"
STATE_FILE_NAME = "state.yaml"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$PORTFWD_CONFIG_DIR, else the platform's user config dir (~/.config/portfwd)."""
    env = os.environ if environ is None else environ
    override = env.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("portfwd"))


def default_state_file(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / STATE_FILE_NAME
