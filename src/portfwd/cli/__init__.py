"""portfwd's command line, in one package: the root group (root.py) names every command and
loads its module when it is used (lazy.py); options.py holds the shared options and the
global-option rule, run.py the one runner and the exit codes. Each command (or group of
commands) is one module that imports downward only: options, run, the engine, the daemon's
clients, the store.


The package imports nothing itself, so a command's module does not drag in the root group:
the console script is `portfwd.cli.quick:main` (`--version` and `ls` answered before click).
"""
