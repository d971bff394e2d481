"""Plots drawn on the server as SVG: bars and a weekly line, no JavaScript.

Every label is escaped (markupsafe); colours and sizes are SVG presentation
attributes, not CSS, so the strict Content-Security-Policy (no inline style)
holds for the plots too.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, BAR_HEIGHT, LABEL_WIDTH, GAP = 640, 22, 170, 6
LINE_HEIGHT, MARGIN = 220, 40
PLOT_HEIGHT = LINE_HEIGHT - 2 * MARGIN
INK, BAR, LINE = "#1b1b1b", "#23395d", "#c2410c"


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    head = (
        f'<svg class="plot" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 (every part escaped above)


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def bars(title: str, rows: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """A horizontal bar per (label, value), longest first as given."""
    top = max((v for _, v in rows), default=0) or 1
    span = WIDTH - LABEL_WIDTH - 60
    body = []
    for i, (label, value) in enumerate(rows):
        y = i * (BAR_HEIGHT + GAP)
        length = max(1, round(span * value / top)) if value else 0
        body += [
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 16}" text-anchor="end" fill="{INK}" '
            f'font-size="13">{escape(label)}</text>',
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length}" height="{BAR_HEIGHT}" '
            f'fill="{BAR}"></rect>',
            f'<text x="{LABEL_WIDTH + length + 6}" y="{y + 16}" fill="{INK}" font-size="13">'
            f"{escape(_number(value) + unit)}</text>",
        ]
    height = max(1, len(rows)) * (BAR_HEIGHT + GAP)
    return _svg(WIDTH, height, title, body)


def line(title: str, points: Sequence[tuple[str, float | None]], unit: str = "") -> Markup:
    """A line through (label, value) points in order; None leaves a gap (no data)."""
    top = max((v for _, v in points if v is not None), default=0) or 1
    step = (WIDTH - 2 * MARGIN) / max(1, len(points) - 1)
    body = _axis(top, unit)
    segment: list[str] = []
    for i, (label, value) in enumerate(points):
        x = MARGIN + i * step
        body.append(
            f'<text x="{x:.1f}" y="{LINE_HEIGHT - 12}" text-anchor="middle" fill="{INK}" '
            f'font-size="11">{escape(label)}</text>'
        )
        if value is None:
            body.append(_polyline(segment))
            segment = []
            continue
        y = MARGIN + PLOT_HEIGHT - PLOT_HEIGHT * value / top
        segment.append(f"{x:.1f},{y:.1f}")
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE}"></circle>')
    body.append(_polyline(segment))
    return _svg(WIDTH, LINE_HEIGHT, title, body)


def _axis(top: float, unit: str) -> list[str]:
    base = MARGIN + PLOT_HEIGHT
    return [
        f'<line x1="{MARGIN}" y1="{base}" x2="{WIDTH - MARGIN}" y2="{base}" stroke="{INK}"></line>',
        f'<text x="{MARGIN}" y="{MARGIN - 12}" fill="{INK}" font-size="12">'
        f"{escape('max ' + _number(top) + unit)}</text>",
    ]


def _polyline(points: list[str]) -> str:
    if len(points) < 2:
        return ""
    joined = " ".join(points)
    return f'<polyline points="{joined}" fill="none" stroke="{LINE}" stroke-width="2"></polyline>'
