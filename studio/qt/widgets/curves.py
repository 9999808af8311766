"""Live curves that stay smooth at 100k points.

Points are appended to growing numpy buffers (doubling, as in pyqtgraph's scrollingPlots example)
and the plot is redrawn on a timer only when something changed, never per event; pyqtgraph's peak
downsampling and clip-to-view keep the redraw cheap however long the run.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer

from studio.qt.style import TONE


class CurveBuffer:
    def __init__(self, capacity: int = 1024) -> None:
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            self.x = np.resize(self.x, 2 * self.n)
            self.y = np.resize(self.y, 2 * self.n)
        self.x[self.n], self.y[self.n] = x, y
        self.n += 1

    def clear(self) -> None:
        self.n = 0

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.n], self.y[: self.n]


class LivePlot(pg.PlotWidget):
    """A plot of named curves fed with ``add(name, x, y)``; redraws at most every ``interval_ms``."""

    def __init__(self, title: str, y_label: str, x_label: str = "step", interval_ms: int = 150, parent=None,
                 legend: bool = True) -> None:
        super().__init__(parent=parent)  # colours from pyqtgraph's defaults, which follow the scheme (qt/style.py)
        self.setTitle(title, size="11pt")
        self.setAccessibleName(f"{title} plot")
        self.setAccessibleDescription(f"Chart of {y_label} against {x_label}, updated live.")
        self.setLabel("left", y_label)
        self.setLabel("bottom", x_label)
        # Values as they are: a DPO loss of 0.7 reads "0.7", not "700" under "loss (x0.001)".
        self.getAxis("left").enableAutoSIPrefix(False)
        self.showGrid(x=True, y=True, alpha=0.2)
        if legend:  # a single-curve plot is named by its title; a legend would only cover the line
            self.addLegend(offset=(-10, 10))
        pi = self.getPlotItem()
        pi.setDownsampling(auto=True, mode="peak")
        pi.setClipToView(True)
        self._buffers: dict[str, CurveBuffer] = {}
        self._items: dict[str, pg.PlotDataItem] = {}
        self._references: dict[str, tuple[float, pg.PlotDataItem]] = {}
        self._dirty = False
        self.redraws = 0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()

    def add_curve(self, name: str, color: str, *, symbol: str | None = None, width: float = 2.0,
                  dashed: bool = False) -> None:
        self._buffers[name] = CurveBuffer()
        pen = pg.mkPen(color, width=width, style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine)
        self._items[name] = self.plot([], [], name=name, pen=pen, symbol=symbol,
                                      symbolBrush=color, symbolPen=None, symbolSize=7)

    def set_reference(self, name: str, value: float | None, color: str = TONE.quiet) -> None:
        """A horizontal line at ``value`` (e.g. the memory estimate) that spans the plotted steps.

        Drawn as a two-point curve rather than an infinite line so it sits in the legend and the
        auto-range keeps it in view even when it is far above the measured curve.
        """
        old = self._references.pop(name, None)
        if old is not None:
            self.removeItem(old[1])
        if value is None:
            return
        item = self.plot([], [], name=name, pen=pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine))
        self._references[name] = (float(value), item)
        self._dirty = True

    def reference(self, name: str) -> float | None:
        ref = self._references.get(name)
        return None if ref is None else ref[0]

    def remove_curves(self) -> None:
        for item in self._items.values():
            self.removeItem(item)
        self._buffers.clear()
        self._items.clear()
        self._dirty = True

    def curve_names(self) -> list[str]:
        return list(self._items)

    def item(self, name: str) -> pg.PlotDataItem:
        return self._items[name]

    def add(self, name: str, x: float, y: float) -> None:
        self._buffers[name].append(x, y)
        self._dirty = True

    def count(self, name: str) -> int:
        return self._buffers[name].n

    def clear_data(self) -> None:
        for b in self._buffers.values():
            b.clear()
        self._dirty = True

    def redraw_now(self) -> None:
        """Draw pending points without waiting for the timer (screenshots, tests)."""
        self._redraw()

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraws += 1
        lo, hi = 0.0, 1.0
        for name, buf in self._buffers.items():
            x, y = buf.data()
            self._items[name].setData(x, y)
            if buf.n:
                lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        for value, item in self._references.values():
            item.setData([lo, hi], [value, value])
        self._frame_lone_points()

    def _frame_lone_points(self) -> None:
        """Auto-range frames a single point as value ± 0.5, so step 1 sits on an axis running from
        -0.5 and 200 tokens/s on one from 199.5. Until some curve has two points, show the points
        from 0 (step 0 and, for values that cannot be negative, 0 as well) instead."""
        shown = [buf.data() for buf in self._buffers.values() if buf.n]
        pi = self.getPlotItem()
        if not shown or any(len(x) > 1 for x, _y in shown):
            if not pi.getViewBox().autoRangeEnabled()[0]:
                pi.enableAutoRange()
            return
        xs = [float(x[0]) for x, _y in shown]
        ys = [float(y[0]) for _x, y in shown] + [v for v, _i in self._references.values()]
        pi.setXRange(0.0, max(1.0, max(xs)) * 1.1, padding=0.0)
        low, high = min(ys), max(ys)
        if low >= 0:
            pi.setYRange(0.0, high * 1.2 if high > 0 else 1.0, padding=0.0)
        else:
            span = max(abs(high - low), abs(high) * 0.2, 1e-6)
            pi.setYRange(low - span / 2, high + span / 2, padding=0.0)
