"""Reaching cluster services by name: whole namespaces (`portfwd ns`) and the proxy."""
