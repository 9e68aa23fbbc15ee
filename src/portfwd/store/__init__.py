"""What survives a restart: session state, written atomically."""
