"""Plotly figures in the user's language and direction."""
from __future__ import annotations

import plotly.graph_objects as go

from crm import i18n

PERSIAN_FONT = "Vazirmatn, Tahoma, sans-serif"


def localize(fig: go.Figure) -> go.Figure:
    """Persian: axes and legend mirrored (categories read right to left, the value axis on the
    right) in the Persian font; numbers on hover in the user's separators."""
    separators = {"fa": "٫٬", "lt": ", "}.get(i18n.language(), ".,")
    fig.update_layout(separators=separators)
    if i18n.is_rtl():
        fig.update_layout(font_family=PERSIAN_FONT,
                          legend=dict(x=1, xanchor="right"),
                          title=dict(x=0.98, xanchor="right"))
        fig.update_xaxes(autorange="reversed")
        fig.update_yaxes(side="right")
    return fig
