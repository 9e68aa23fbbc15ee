"""The engine's per-forward and per-connection counters as Prometheus metric families.

Read at scrape time from the snapshots the engine already keeps, so a forward moving bytes
pays nothing for being measured. The text itself is written by the official client library
(`prometheus_client`): its exposition escapes label values and speaks both the classic text
format and OpenMetrics, which a hand-written formatter would have to get right twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample as MetricSample

from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, ForwardState, ForwardStats
from portfwd.engine.traffic import FAILURE_REASONS

FORWARD_LABELS = ("forward", "id", "context", "namespace", "target", "remote_port")
CONNECTION_LABELS = ("forward", "peer", "pod")


@dataclass(frozen=True)
class Sample:
    """What one scrape reads from the engine: taken on the engine's loop, encoded anywhere."""

    forwards: Sequence[ForwardSnapshot]
    connections: dict[str, list[ConnectionInfo]]


def sample(
    snapshot: Callable[[], list[ForwardSnapshot]],
    open_connections: Callable[[str], list[ConnectionInfo]],
) -> Sample:
    forwards = snapshot()
    return Sample(forwards, {s.id: open_connections(s.id) for s in forwards})


def _labels(snap: ForwardSnapshot) -> list[str]:
    return [
        snap.spec.name or snap.id,
        snap.id,
        snap.context or snap.spec.context or "",
        snap.namespace or snap.spec.namespace or "",
        snap.spec.target,
        str(snap.remote_port or snap.spec.remote_port),
    ]


def _summary(name: str, doc: str) -> Metric:
    return Metric(name, doc, "summary")


def _add_summary(
    metric: Metric,
    labels: dict[str, str],
    p50: float | None,
    p99: float | None,
    count: int,
    total: float,
) -> None:
    """A summary's samples: p50/p99 over the engine's window (none before the first
    observation), _count and _sum since the forward was added."""
    for quantile, value in (("0.5", p50), ("0.99", p99)):
        if value is not None:
            metric.samples.append(
                MetricSample(metric.name, {**labels, "quantile": quantile}, value)
            )
    metric.samples.append(MetricSample(f"{metric.name}_count", labels, float(count)))
    metric.samples.append(MetricSample(f"{metric.name}_sum", labels, total))


def _traffic_families(
    taken: Sample,
) -> list[Metric]:
    """Rates, failures by reason, stream-open and first-byte times (engine/traffic.py)."""
    labels = list(FORWARD_LABELS)
    received_rate = GaugeMetricFamily(
        "portfwd_forward_received_bytes_per_second",
        "Bytes per second from the pod to local clients: over the last second (window=1s) "
        "and the last minute (window=1m).",
        labels=[*labels, "window"],
    )
    sent_rate = GaugeMetricFamily(
        "portfwd_forward_sent_bytes_per_second",
        "Bytes per second from local clients to the pod: over the last second (window=1s) "
        "and the last minute (window=1m).",
        labels=[*labels, "window"],
    )
    failures = CounterMetricFamily(
        "portfwd_forward_connection_failures",
        "Failed connections by reason (no_pod, refused, tunnel, denied, lost, local, io, "
        "internal); they add up to portfwd_forward_connection_errors.",
        labels=[*labels, "reason"],
    )
    stream_open = _summary(
        "portfwd_forward_stream_open_seconds",
        "Time to open a stream to the pod (quantiles over the last 512 connections).",
    )
    first_byte = _summary(
        "portfwd_forward_first_byte_seconds",
        "Time from accepting a local connection to the pod's first byte (quantiles over the "
        "last 512 connections).",
    )
    conn_rate_in = GaugeMetricFamily(
        "portfwd_connection_received_bytes_per_second",
        "Bytes per second from the pod to this open local connection (window=1s, 1m).",
        labels=[*CONNECTION_LABELS, "window"],
    )
    conn_rate_out = GaugeMetricFamily(
        "portfwd_connection_sent_bytes_per_second",
        "Bytes per second from this open local connection to the pod (window=1s, 1m).",
        labels=[*CONNECTION_LABELS, "window"],
    )
    conn_open = GaugeMetricFamily(
        "portfwd_connection_stream_open_seconds",
        "Time this connection's stream to the pod took to open.",
        labels=list(CONNECTION_LABELS),
    )
    conn_first = GaugeMetricFamily(
        "portfwd_connection_first_byte_seconds",
        "Time from accepting this connection to the pod's first byte.",
        labels=list(CONNECTION_LABELS),
    )
    for snap in taken.forwards:
        values = _labels(snap)
        stats: ForwardStats = snap.stats
        received_rate.add_metric([*values, "1s"], stats.rate_in)
        received_rate.add_metric([*values, "1m"], stats.avg_in)
        sent_rate.add_metric([*values, "1s"], stats.rate_out)
        sent_rate.add_metric([*values, "1m"], stats.avg_out)
        counts = dict(stats.failures)
        for reason in FAILURE_REASONS:
            failures.add_metric([*values, reason], counts.get(reason, 0))
        named = dict(zip(labels, values, strict=True))
        _add_summary(
            stream_open, named, stats.open_p50, stats.open_p99, stats.open_count, stats.open_sum
        )
        _add_summary(
            first_byte,
            named,
            stats.first_byte_p50,
            stats.first_byte_p99,
            stats.first_byte_count,
            stats.first_byte_sum,
        )
        for conn in taken.connections.get(snap.id, []):
            where = [values[0], conn.peer, conn.pod]
            conn_rate_in.add_metric([*where, "1s"], conn.rate_in)
            conn_rate_in.add_metric([*where, "1m"], conn.avg_in)
            conn_rate_out.add_metric([*where, "1s"], conn.rate_out)
            conn_rate_out.add_metric([*where, "1m"], conn.avg_out)
            if conn.stream_open is not None:
                conn_open.add_metric(where, conn.stream_open)
            if conn.first_byte is not None:
                conn_first.add_metric(where, conn.first_byte)
    return [
        received_rate,
        sent_rate,
        failures,
        stream_open,
        first_byte,
        conn_rate_in,
        conn_rate_out,
        conn_open,
        conn_first,
    ]


class _SampleCollector(Collector):
    def __init__(self, taken: Sample) -> None:
        self.taken = taken

    def collect(self) -> Iterable[Metric]:
        labels = list(FORWARD_LABELS)
        up = GaugeMetricFamily(
            "portfwd_forward_up",
            "1 while the forward is active (listening, with a pod to send to), else 0.",
            labels=labels,
        )
        state = GaugeMetricFamily(
            "portfwd_forward_state",
            "1 for the forward's current state (starting, active, reconnecting, error, stopped,"
            " idle).",
            labels=[*labels, "state"],
        )
        received = CounterMetricFamily(
            "portfwd_forward_received_bytes",
            "Bytes from the pod to local clients, since the forward was added.",
            labels=labels,
        )
        sent = CounterMetricFamily(
            "portfwd_forward_sent_bytes",
            "Bytes from local clients to the pod, since the forward was added.",
            labels=labels,
        )
        accepted = CounterMetricFamily(
            "portfwd_forward_connections",
            "Local connections accepted.",
            labels=labels,
        )
        open_now = GaugeMetricFamily(
            "portfwd_forward_open_connections",
            "Local connections open now.",
            labels=labels,
        )
        failed = CounterMetricFamily(
            "portfwd_forward_connection_errors",
            "Connections that failed (no stream to the pod, or cut off by an error).",
            labels=labels,
        )
        reconnects = CounterMetricFamily(
            "portfwd_forward_reconnects",
            "Times the forward moved to another pod or came back after a failure.",
            labels=labels,
        )
        conn_received = GaugeMetricFamily(
            "portfwd_connection_received_bytes",
            "Bytes from the pod to this open local connection.",
            labels=list(CONNECTION_LABELS),
        )
        conn_sent = GaugeMetricFamily(
            "portfwd_connection_sent_bytes",
            "Bytes from this open local connection to the pod.",
            labels=list(CONNECTION_LABELS),
        )
        for snap in self.taken.forwards:
            values = _labels(snap)
            stats = snap.stats
            up.add_metric(values, 1.0 if snap.state is ForwardState.ACTIVE else 0.0)
            for each in ForwardState:
                state.add_metric([*values, each.value], 1.0 if snap.state is each else 0.0)
            received.add_metric(values, stats.bytes_in)
            sent.add_metric(values, stats.bytes_out)
            accepted.add_metric(values, stats.connections_total)
            open_now.add_metric(values, stats.connections_open)
            failed.add_metric(values, stats.errors)
            reconnects.add_metric(values, stats.reconnects)
            for conn in self.taken.connections.get(snap.id, []):
                where = [values[0], conn.peer, conn.pod]
                conn_received.add_metric(where, conn.bytes_in)
                conn_sent.add_metric(where, conn.bytes_out)
        return [
            up,
            state,
            received,
            sent,
            accepted,
            open_now,
            failed,
            reconnects,
            conn_received,
            conn_sent,
            *_traffic_families(self.taken),
        ]


def encode(taken: Sample, accept: str | None) -> tuple[bytes, str]:
    """(body, content type) in the format the scraper asked for (OpenMetrics when its Accept
    header names it, else the classic text format)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SampleCollector(taken))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
