"""Talking to a cluster: kubeconfig, credentials, REST/watch/WebSocket, target resolution."""
