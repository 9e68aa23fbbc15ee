"""The single-file binary's entry point (PyInstaller runs this as __main__).

One binary, three names (as busybox): linked or copied as `kubectl-portfwd` it is the kubectl
plugin, as `kubectl_complete-portfwd` kubectl's completion hook for it, else `portfwd`. Each
branch imports only what it runs: as `portfwd` it goes through `portfwd.cli.quick` (as the
console script does), so `--version` and `ls` answer without importing click or the engine.
"""

import sys


def run(argv0: str) -> None:
    name = argv0.rsplit("/", 1)[-1]
    if name.startswith("kubectl_complete-"):
        from portfwd.cli.kubectl_plugin import complete

        complete()
    elif name.startswith("kubectl-"):
        from portfwd.cli.kubectl_plugin import main as plugin

        plugin()
    else:
        from portfwd.cli.quick import main

        main()


if __name__ == "__main__":
    run(sys.argv[0])
