"""A forward's traffic as text: the rate column's sparkline, the detail pane's plot of the
last minutes, and the header's totals.

Everything is drawn from the engine's per-second history (`ForwardStats.history_in/out`,
engine/traffic.py) and the view's clock: the engine samples only while bytes move, so the
seconds after `sampled_at` count as 0 here, and a row whose traffic stopped drains to empty
on the dashboard's own 1 s tick without a word from the engine. Pure text (block characters
in `rich.text.Text`), so the table keeps drawing only the cells whose text changed, and a
snapshot test injects the history and the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from portfwd.engine.model import ForwardStats
from portfwd.engine.traffic import AVERAGE_SECONDS, HISTORY_SECONDS
from portfwd.tui.format import human_rate, short_bytes

BLOCKS = " ▁▂▃▄▅▆▇█"
SPARK_SECONDS = 8  # the rate column's sparkline: one cell a second
RATE_WIDTH = 13  # `↓1023K ↑1023K`
RATE_CELL_WIDTH = SPARK_SECONDS + 1 + RATE_WIDTH
PLOT_ROWS = 2  # rows of the detail pane's plot per direction
IN_STYLE = "cyan"
OUT_STYLE = "magenta"


def recent(history: Sequence[int], sampled_at: float | None, now: float, count: int) -> list[int]:
    """The last `count` seconds as of `now`, oldest first: the seconds since `sampled_at`
    and before the history are 0."""
    gap = 0 if sampled_at is None else min(count, max(0, math.floor(now - sampled_at)))
    take = count - gap
    values = list(history[-take:]) if take > 0 else []
    return [0] * (count - gap - len(values)) + values + [0] * gap


def spark(values: Sequence[int], top: int | None = None) -> str:
    """One cell per value, its height against `top` (default: the largest); 0 is blank and
    anything else at least the lowest block, so a trickle shows."""
    top = max(values, default=0) if top is None else top
    if top <= 0:
        return " " * len(values)
    steps = len(BLOCKS) - 1
    return "".join(
        BLOCKS[0] if v <= 0 else BLOCKS[max(1, math.ceil(v * steps / top))] for v in values
    )


def _quiet(stats: ForwardStats, now: float, seconds: int) -> bool:
    """Nothing moved in the `seconds` before `now` (the common case, answered cheaply: an
    idle dashboard asks it of every row every second)."""
    at = stats.sampled_at
    return at is None or now - at >= seconds


def rates_now(stats: ForwardStats, now: float) -> tuple[int, int]:
    """Bytes per second (in, out) in the last whole second as of `now`."""
    if _quiet(stats, now, 1):
        return 0, 0
    ins = recent(stats.history_in, stats.sampled_at, now, 1)
    outs = recent(stats.history_out, stats.sampled_at, now, 1)
    return ins[0], outs[0]


def averages(stats: ForwardStats, now: float) -> tuple[float, float]:
    """Bytes per second (in, out) over the last minute as of `now` (the engine's rule)."""
    ins = recent(stats.history_in, stats.sampled_at, now, AVERAGE_SECONDS)
    outs = recent(stats.history_out, stats.sampled_at, now, AVERAGE_SECONDS)
    return sum(ins) / AVERAGE_SECONDS, sum(outs) / AVERAGE_SECONDS


def rate_cell(stats: ForwardStats, now: float) -> Text:
    """The rate column: a sparkline of the last seconds (both ways together) and the rate
    each way; "" once nothing moved for SPARK_SECONDS (an idle row draws nothing)."""
    if _quiet(stats, now, SPARK_SECONDS):
        return Text("")
    ins = recent(stats.history_in, stats.sampled_at, now, SPARK_SECONDS)
    outs = recent(stats.history_out, stats.sampled_at, now, SPARK_SECONDS)
    both = [a + b for a, b in zip(ins, outs, strict=True)]
    if not any(both):
        return Text("")
    text = Text(spark(both), style="green")
    rate = f"↓{short_bytes(ins[-1]):>5} ↑{short_bytes(outs[-1]):>5}"
    text.append(f" {rate:<{RATE_WIDTH}}")
    return text


def totals_text(stats: Iterable[ForwardStats], now: float) -> str:
    """The header's totals: rate each way over every forward and the connections open."""
    rate_in = rate_out = conns = 0
    for s in stats:
        a, b = rates_now(s, now)
        rate_in, rate_out, conns = rate_in + a, rate_out + b, conns + s.connections_open
    return f"↓{short_bytes(rate_in)}/s ↑{short_bytes(rate_out)}/s · {conns} open"


def _bars(values: Sequence[int], top: int, rows: int) -> list[str]:
    """`values` as columns `rows` high (top row first), eight steps per row."""
    steps = len(BLOCKS) - 1
    lines = []
    for row in range(rows - 1, -1, -1):
        cells = []
        for v in values:
            height = 0 if v <= 0 or top <= 0 else max(1, math.ceil(v * steps * rows / top))
            cells.append(BLOCKS[min(steps, max(0, height - row * steps))])
        lines.append("".join(cells))
    return lines


def _buckets(values: Sequence[int], width: int) -> tuple[list[int], int]:
    """`values` in at most `width` columns, each the busiest second of its span ->
    (columns, seconds per column)."""
    per = max(1, math.ceil(len(values) / max(1, width)))
    start = len(values) % per  # the newest column is whole
    columns = [max(values[max(0, i - per) : i]) for i in range(len(values), start, -per)]
    if start:
        columns.append(max(values[:start]))
    return columns[::-1], per


class TrafficPlot:
    """The detail pane's plot: the last HISTORY_SECONDS each way, as wide as the pane."""

    LABEL = 11  # `↓ 1.5 MiB/s` and the scale under it

    def __init__(self, stats: ForwardStats, now: float) -> None:
        self.stats = stats
        self.now = now

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(8, options.max_width - self.LABEL - 2)
        s, now = self.stats, self.now
        ins = recent(s.history_in, s.sampled_at, now, HISTORY_SECONDS)
        outs = recent(s.history_out, s.sampled_at, now, HISTORY_SECONDS)
        if not any(ins) and not any(outs):
            yield Text("  nothing moved in the last 5 minutes", style="dim")
            return
        columns: list[int] = []
        per = 1
        for arrow, values, style in (("↓", ins, IN_STYLE), ("↑", outs, OUT_STYLE)):
            columns, per = _buckets(values, width)
            top = max(columns)
            for n, line in enumerate(_bars(columns, top, PLOT_ROWS)):
                label = f"{arrow} {human_rate(top)}" if n == 0 else ""  # the peak, on top
                row = Text(f"{label:>{self.LABEL}} ", style="dim")
                row.append(line.rjust(width), style=style)
                yield row
        span = len(columns) * per
        yield Text(
            f"{'':>{self.LABEL}} {_ago(span):<{max(0, width - 3)}}now",
            style="dim",
        )


def _ago(seconds: int) -> str:
    return f"-{seconds // 60}m" if seconds >= 60 and not seconds % 60 else f"-{seconds}s"


def plot_section(stats: ForwardStats, now: float) -> list[Text | TrafficPlot]:
    """The detail pane's traffic block: the heading's figures and the plot."""
    rate_in, rate_out = rates_now(stats, now)
    avg_in, avg_out = averages(stats, now)
    head = Text("Traffic, last 5 minutes", style="bold underline")
    line = Text("  now ", style="dim")
    line.append(f"↓ {human_rate(rate_in)}  ↑ {human_rate(rate_out)}")
    line.append("   1-minute average ", style="dim")
    line.append(f"↓ {human_rate(avg_in)}  ↑ {human_rate(avg_out)}")
    facts = Text("  failed ", style="dim")
    failed = ", ".join(f"{k} {n}" for k, n in stats.failures)
    facts.append(f"{stats.errors}" + (f" ({failed})" if failed else ""))
    facts.append("   stream open p50/p99 ", style="dim")
    facts.append(_pair(stats.open_p50, stats.open_p99))
    facts.append("   first byte p50/p99 ", style="dim")
    facts.append(_pair(stats.first_byte_p50, stats.first_byte_p99))
    return [head, line, facts, TrafficPlot(stats, now)]


def millis(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _pair(p50: float | None, p99: float | None) -> str:
    return "-" if p50 is None else f"{millis(p50)} / {millis(p99)}"
