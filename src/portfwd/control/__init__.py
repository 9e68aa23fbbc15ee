"""The scriptable CLI (`portfwd ls/add/start/stop/restart/rm/logs`, `portfwd daemon ...`):
thin clients of the daemon, with output and exit codes a script can rely on."""
