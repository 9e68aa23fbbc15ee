"""portfwd: one terminal window that runs and watches every Kubernetes port-forward."""

__version__ = "0.1.0"
