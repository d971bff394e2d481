"""The figures of a run: the printed table and the flat JSON object.

Every figure has a key (the JSON key), a value, a unit and, where the issue
sets one, a target. ``ratio`` is oriented so that >= 1 always means the
target is met: value / target for "at least" targets, target / value for
"at most" targets (latencies, slowdown).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured (or derived) number."""

    key: str
    value: float
    unit: str
    #: The issue's target, if any.
    target: float | None = None
    #: True for "at most" targets (latency, slowdown); False for "at least".
    at_most: bool = False
    label: str = ""

    @property
    def ratio(self) -> float | None:
        """How far the value is from the target; >= 1 means the target is met."""
        if self.target is None:
            return None
        if self.at_most:
            return math.inf if self.value <= 0 else self.target / self.value
        return self.value / self.target if self.target else None

    @property
    def verdict(self) -> str:
        """ "ok" when the target is met, "below" when not, "" without a target."""
        ratio = self.ratio
        if ratio is None:
            return ""
        return "ok" if ratio >= 1 else "below"


@dataclass
class Results:
    """Figures in the order they were measured; a later value replaces an earlier one."""

    figures: dict[str, Figure] = field(default_factory=dict)

    def add(
        self,
        key: str,
        value: float,
        unit: str,
        target: float | None = None,
        *,
        at_most: bool = False,
        label: str = "",
    ) -> None:
        """Record a figure (NaN and infinities are refused: JSON carries numbers only)."""
        if not math.isfinite(value):
            raise ValueError(f"figure {key} is not a finite number: {value}")
        self.figures[key] = Figure(key, float(value), unit, target, at_most, label)

    def get(self, key: str) -> float | None:
        """A figure's value, or None when it was not measured."""
        figure = self.figures.get(key)
        return None if figure is None else figure.value

    def as_json(self) -> dict[str, float]:
        """The flat JSON object: one key per figure, numbers only."""
        return {key: _number(f.value) for key, f in self.figures.items()}


def _number(value: float) -> float:
    """Integral values as ints (sizes, counts) so that the JSON reads naturally."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def write_json(results: Results, path: Path) -> None:
    """Write the figures as one flat JSON object (numbers only)."""
    data = results.as_json()
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in data.values()):
        raise TypeError("the JSON figures must all be numbers")
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def _fmt(value: float) -> str:
    if value.is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _target(figure: Figure) -> str:
    if figure.target is None:
        return "-"
    return ("<= " if figure.at_most else ">= ") + _fmt(figure.target)


def table(figures: Iterable[Figure]) -> str:
    """The results table: figure | value | unit | target | ratio-to-target."""
    header = ("figure", "value", "unit", "target", "ratio")
    rows = [
        (
            f.key,
            _fmt(f.value),
            f.unit,
            _target(f),
            "-" if f.ratio is None else f"{min(f.ratio, 999.0):.2f} {f.verdict}",
        )
        for f in figures
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        " | ".join(
            cell.ljust(w) if i in (0, 2, 3) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *rows)
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
