"""The wire and the local side: port-forward protocols, local listeners, byte pumps."""
