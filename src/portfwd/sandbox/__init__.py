"""A local Kubernetes API server + kubelet subset, for demos and tests.

Imports nothing from the client side except `portfwd.constants`: it is an independent
implementation the client is checked against (and kubectl / the official client check it).
"""
