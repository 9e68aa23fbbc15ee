"""The single-file binary's entry point (PyInstaller runs this as __main__)."""

import sys

from portfwd.cli.kubectl_plugin import complete as kubectl_complete
from portfwd.cli.kubectl_plugin import main as kubectl_main
from portfwd.cli.root import main

# One binary, three names (as busybox): linked or copied as `kubectl-portfwd` it is the
# kubectl plugin, as `kubectl_complete-portfwd` kubectl's completion hook for it.
name = sys.argv[0].rsplit("/", 1)[-1]
if name.startswith("kubectl_complete-"):
    kubectl_complete()
elif name.startswith("kubectl-"):
    kubectl_main()
else:
    main()
