"""Charts drawn on the server as SVG: geometry computed here, drawn by a template.

The page's CSP forbids inline styles, so a chart is geometry attributes (x, y, width,
height) and classes only; `templates/admin/charts.html` draws a `BarChart` as an SVG with
`role="img"`, a title and a description that reads every figure.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

CHART_WIDTH = 480  # about the width it is shown at: its text stays legible
LABEL_WIDTH = 130  # tag names, right-aligned against the bars
VALUE_WIDTH = 70  # each bar's figure, after its end
ROW_HEIGHT = 26
BAR_HEIGHT = 16
TOP = 8
AXIS_HEIGHT = 24  # the scale's figures under the bars
LABEL_CHARACTERS = 17
MAX_BARS = 15


@dataclass(frozen=True)
class Bar:
    """One row of a horizontal bar chart, placed."""

    label: str  # as drawn (shortened)
    full_label: str
    value: float | None
    shown: str  # the figure as read ("75%", "3.5 h", "n/a")
    x: float
    y: float
    width: float
    height: float
    label_x: float
    text_y: float
    value_x: float
    warn: bool


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart's geometry: what the SVG template draws, nothing to compute."""

    id: str
    title: str
    description: str
    width: int
    height: int
    plot_x: float
    plot_width: float
    plot_bottom: float
    note: str = ""
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)


def nice_step(maximum: float, steps: int = 4, *, whole: bool = False) -> float:
    """A round step (1, 2 or 5 times a power of ten) that covers `maximum` in ~`steps`;
    `whole` for counts (no step below 1: there is no half a person)."""
    if maximum <= 0:
        return 1.0
    raw = maximum / steps
    if whole and raw <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * power:
            return float(multiple * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def shorten(text: str, limit: int = LABEL_CHARACTERS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart(
    *,
    id: str,
    title: str,
    rows: list[tuple[str, float | None]],
    shown: Callable[[float | None], str],
    scale_max: float | None = None,
    warn: Callable[[float | None], bool] = lambda _value: False,
    tick_label: Callable[[float], str] = lambda value: f"{value:g}",
    note: str = "",
    whole: bool = False,
) -> BarChart:
    """Bars for `rows` (label, value; None draws no bar and reads "n/a"), scaled to
    `scale_max` (default: a round number at or above the largest value)."""
    rows = rows[:MAX_BARS]
    values = [value for _label, value in rows if value is not None]
    largest = max(values, default=0.0)
    if scale_max is None:
        step = nice_step(largest, whole=whole)
        scale_max = step * max(1, math.ceil(largest / step))
    else:
        step = nice_step(scale_max, whole=whole)
    plot_x = float(LABEL_WIDTH)
    plot_width = float(CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH)
    bars = []
    for index, (label, value) in enumerate(rows):
        top = TOP + index * ROW_HEIGHT
        length = 0.0 if value is None else plot_width * min(max(value, 0.0), scale_max) / scale_max
        bars.append(
            Bar(
                label=shorten(label),
                full_label=label,
                value=value,
                shown=shown(value),
                x=plot_x,
                y=float(top + (ROW_HEIGHT - BAR_HEIGHT) / 2),
                width=round(length, 1),
                height=float(BAR_HEIGHT),
                label_x=plot_x - 8,
                text_y=float(top + ROW_HEIGHT / 2 + 4),
                value_x=round(plot_x + length + 6, 1),
                warn=warn(value),
            )
        )
    plot_bottom = float(TOP + len(rows) * ROW_HEIGHT)
    ticks = []
    count = round(scale_max / step)
    for index in range(count + 1):
        value = index * step
        ticks.append(
            Tick(x=round(plot_x + plot_width * value / scale_max, 1), label=tick_label(value))
        )
    summary = "; ".join(f"{bar.full_label}: {bar.shown}" for bar in bars)
    return BarChart(
        id=id,
        title=title,
        description=summary or "No figures yet.",
        width=CHART_WIDTH,
        height=int(plot_bottom + AXIS_HEIGHT),
        plot_x=plot_x,
        plot_width=plot_width,
        plot_bottom=plot_bottom,
        note=note,
        bars=bars,
        ticks=ticks,
    )
