"""Shared fixtures. Every server a test starts is stopped by its fixture, bounded in time."""
