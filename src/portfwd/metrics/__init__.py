"""The metrics endpoint: the engine's counters in the Prometheus/OpenMetrics text format."""
