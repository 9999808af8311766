"""Dataset statistics as pictures: token lengths against the max-length cut-off, formats, turns,
answer lengths. Numbers come from the validator's report; this module only draws them."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from studio.qt.style import TONE

BLUE, GREEN, RED, GREY = TONE.bar_blue, TONE.bar_green, TONE.bar_red, TONE.bar_grey


def _plot(title: str, x_label: str, y_label: str = "rows") -> pg.PlotWidget:
    plot = pg.PlotWidget()  # colours from pyqtgraph's defaults, which follow the scheme (qt/style.py)
    plot.setTitle(title, size="10pt")
    plot.setAccessibleName(f"{title} chart")
    plot.setAccessibleDescription(f"Chart of {y_label} by {x_label}; the numbers are also in the summary text.")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=False, y=True, alpha=0.2)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMinimumHeight(160)
    for side in ("bottom", "left"):
        plot.getAxis(side).enableAutoSIPrefix(False)
    return plot


TICK_NAMES = {"prompt_completion": "prompt/ans."}


def _bars(brush: str) -> pg.BarGraphItem:
    bars = pg.BarGraphItem(x0=[0.0], x1=[1.0], height=[0.0], brush=brush, pen=pg.mkPen("w", width=0.5))
    bars.setVisible(False)
    return bars


class _Chart(QWidget):
    """A titled plot filling the widget, with small bottom-axis labels (category names are longer
    than numbers); the two chart kinds below differ only in the bars they draw."""

    def __init__(self, title: str, x_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.plot = _plot(title, x_label)
        font = QFont()
        font.setPointSizeF(8.5)
        self.plot.getAxis("bottom").setStyle(tickFont=font)   # category names are longer than numbers
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)


class HistogramPlot(_Chart):
    """Bars over bin edges; with a cut-off, bins past it are red and a dashed line marks it.

    The plot items are made once and updated in place: an item removed from a scene belongs to
    Python, and if it ended up in a reference cycle a worker thread's garbage collection could
    destroy it off the GUI thread.
    """

    def __init__(self, title: str, x_label: str, color: str = BLUE, parent: QWidget | None = None) -> None:
        super().__init__(title, x_label, parent)
        self.inside_bars = _bars(color)
        self.over_bars = _bars(RED)
        self.cutoff_line = pg.InfiniteLine(
            pos=0, angle=90, pen=pg.mkPen(RED, width=2, style=Qt.PenStyle.DashLine), label="",
            labelOpts={"position": 0.96, "color": RED, "anchors": [(1, 0), (1, 0)], "fill": (255, 255, 255, 200)},
        )
        self.cutoff_line.setVisible(False)
        for item in (self.inside_bars, self.over_bars, self.cutoff_line):
            self.plot.addItem(item)
        self.edges: list[int] = []
        self.counts: list[int] = []
        self.cutoff: int | None = None

    def clear(self, message: str = "") -> None:
        for item in (self.inside_bars, self.over_bars, self.cutoff_line):
            item.setVisible(False)
        self.edges, self.counts, self.cutoff = [], [], None
        self.plot.setTitle(f"{self.title} — {message}" if message else self.title, size="10pt")

    def set_histogram(self, hist: dict | None, message_if_empty: str = "no data") -> None:
        if not hist or not hist.get("counts"):
            self.clear(message_if_empty)
            return
        self.clear()
        edges, counts, cutoff = list(hist["edges"]), list(hist["counts"]), hist.get("cutoff")
        self.edges, self.counts, self.cutoff = edges, counts, cutoff
        x0 = np.array(edges[:-1], dtype=float)
        x1 = np.array(edges[1:], dtype=float)
        heights = np.array(counts, dtype=float)
        over = np.zeros(len(counts), dtype=bool)
        if cutoff:
            over = x0 >= cutoff
            # Everything beyond the cut-off is one bin; draw it two bins wide so one very long row
            # does not squeeze the rest of the chart into a sliver.
            width = max(1.0, float(x1[0] - x0[0]))
            x1 = np.where(over, x0 + 2 * width, x1)
        for bars, mask in ((self.inside_bars, ~over), (self.over_bars, over)):
            if mask.any():
                bars.setOpts(x0=x0[mask], x1=x1[mask], height=heights[mask])
                bars.setVisible(True)
        if cutoff:
            n_over = int(heights[over].sum())
            self.cutoff_line.setVisible(True)   # first: a hidden line's label ignores new text
            self.cutoff_line.setValue(cutoff)
            self.cutoff_line.label.setFormat(
                f"max length {cutoff}" + (f" · {n_over:,} row{'s' * (n_over != 1)} cut" if n_over else ""))
        # Start at the first filled bin (the core's bins always start at 0), keep the cut-off in view.
        filled = np.nonzero(heights)[0]
        lo = float(x0[filled[0]]) if len(filled) else 0.0
        hi = float(x1[filled[-1]]) if len(filled) else float(x1.max())
        if cutoff:
            hi = max(hi, float(cutoff))
        span = max(1.0, hi - lo)
        self.plot.setXRange(max(0.0, lo - 0.08 * span), hi + 0.08 * span, padding=0)
        self.plot.setYRange(0, float(heights.max()) * 1.25 or 1.0, padding=0)


class CategoryPlot(_Chart):
    """One bar per named category (one bar item, updated in place)."""

    def __init__(self, title: str, x_label: str, color: str = BLUE, parent: QWidget | None = None) -> None:
        super().__init__(title, x_label, parent)
        self.color = color
        self.bars = pg.BarGraphItem(x=[0.0], height=[0.0], width=0.6, brush=color, pen=pg.mkPen("w", width=0.5))
        self.bars.setVisible(False)
        self.plot.addItem(self.bars)
        self.categories: dict[str, int] = {}

    def set_counts(self, counts: dict[str, int] | None) -> None:
        self.categories = dict(counts or {})
        if not self.categories:
            self.bars.setVisible(False)
            self.plot.getAxis("bottom").setTicks([[]])
            self.plot.setTitle(f"{self.title} — no data", size="10pt")
            return
        self.plot.setTitle(self.title, size="10pt")
        names = list(self.categories)
        heights = [self.categories[n] for n in names]
        brushes = [pg.mkBrush(GREY if n == "unknown" else self.color) for n in names]
        self.bars.setOpts(x=np.arange(len(names), dtype=float), height=heights, brushes=brushes)
        self.bars.setVisible(True)
        # Short tick labels: three long format names side by side ran into each other.
        self.plot.getAxis("bottom").setTicks([[(i, TICK_NAMES.get(n, n)) for i, n in enumerate(names)]])
        pad = max(0.0, (4 - len(names)) / 2)   # a lone category is a bar, not a wall
        self.plot.setXRange(-0.6 - pad, len(names) - 0.4 + pad, padding=0)
        self.plot.setYRange(0, max(heights) * 1.15 or 1.0, padding=0)


class StatsView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Open a dataset to see its statistics.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.tokens = HistogramPlot("Tokens per row", "tokens (after the chat template)")
        self.formats = CategoryPlot("Rows by format", "format", color=TONE.bar_violet)
        self.turns = CategoryPlot("Rows by turn count", "turns per row", color=TONE.bar_sky)
        self.answers = HistogramPlot("Answer length", "answer characters", color=GREEN)
        grid = QGridLayout()
        grid.setSpacing(6)
        grid.addWidget(self.tokens, 0, 0)
        grid.addWidget(self.answers, 0, 1)
        grid.addWidget(self.formats, 1, 0)
        grid.addWidget(self.turns, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addLayout(grid, 1)

    def set_stats(self, stats: dict | None, tokens_note: str = "") -> None:
        if not stats:
            self.summary.setText("Open a dataset to see its statistics.")
            for h in (self.tokens, self.answers):
                h.clear()
            for c in (self.formats, self.turns):
                c.set_counts({})
            return
        tokens = stats.get("tokens")
        waiting = tokens_note or "waiting for the token checks"
        self.tokens.set_histogram(tokens, message_if_empty=waiting)
        trained = stats.get("trained_tokens")
        # The unit goes on the axis, not in the title: a half-width chart cut the longer title off.
        if trained:
            self.answers.plot.setLabel("bottom", "trained answer tokens")
            self.answers.set_histogram(trained)
        else:
            self.answers.plot.setLabel("bottom", "answer characters")
            self.answers.set_histogram(stats.get("answer_chars"))
        self.formats.set_counts(stats.get("formats"))
        self.turns.set_counts(stats.get("turns"))
        rows, trainable = stats.get("rows", 0), stats.get("trainable_rows", 0)
        parts = [f"<b>{rows:,}</b> rows, <b>{trainable:,}</b> can train"]
        if tokens:
            over = sum(c for e, c in zip(tokens["edges"], tokens["counts"], strict=False) if tokens["cutoff"] and e >= tokens["cutoff"])
            parts.append(f"tokens per row: median {tokens['p50']}, p90 {tokens['p90']}, max {tokens['max']:,}")
            parts.append(f"<span style='color:{RED if over else TONE.ok}'>{over:,} over the max length {tokens['cutoff']}</span>")
        elif tokens_note:
            parts.append(tokens_note)
        self.summary.setText(" · ".join(parts))
