"""The Textual dashboard: views only, driven by the engine's events."""
