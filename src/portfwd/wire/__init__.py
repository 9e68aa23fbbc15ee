"""Pure wire codecs shared by the client side and the sandbox (no I/O, no client logic)."""
