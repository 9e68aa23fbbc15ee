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

from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, ForwardState

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
        ]


def encode(taken: Sample, accept: str | None) -> tuple[bytes, str]:
    """(body, content type) in the format the scraper asked for (OpenMetrics when its Accept
    header names it, else the classic text format)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SampleCollector(taken))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
