"""Plotly figures in the user's language and direction."""
from __future__ import annotations

import math

import plotly.graph_objects as go

from crm import i18n

PERSIAN_FONT = "Vazirmatn, Tahoma, sans-serif"


def localize(fig: go.Figure) -> go.Figure:
    """Persian: axes and legend mirrored (categories read right to left, the value axis on the
    right) in the Persian font, with Persian digits on the value axis; numbers on hover in the
    user's separators."""
    separators = {"fa": "٫٬", "lt": ", "}.get(i18n.language(), ".,")
    fig.update_layout(separators=separators)
    if i18n.is_rtl():
        fig.update_layout(font_family=PERSIAN_FONT,
                          legend=dict(x=1, xanchor="right"),
                          title=dict(x=0.98, xanchor="right"))
        fig.update_xaxes(autorange="reversed")
        fig.update_yaxes(side="right")
        values = [v for trace in fig.data for v in (getattr(trace, "y", None) or ())
                  if isinstance(v, (int, float))]
        if values:  # Plotly draws tick labels in Latin digits: name them ourselves
            ticks = nice_ticks(min(0, min(values)), max(values))
            fig.update_yaxes(tickvals=ticks, ticktext=[i18n.number(t) for t in ticks])
    return fig


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About count round tick values covering low..high (1, 2 or 5 times a power of ten)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 2)
            if first + i * step <= high + step]
