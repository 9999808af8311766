"""Live curves that stay smooth at 100k points.

Points are appended to growing numpy buffers (doubling, as in pyqtgraph's scrollingPlots example)
and the plot is redrawn on a timer only when something changed, never per event; pyqtgraph's peak
downsampling and clip-to-view keep the redraw cheap however long the run.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer


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
        super().__init__(parent=parent, background="w")
        self.setTitle(title, color="#333", size="11pt")
        self.setLabel("left", y_label)
        self.setLabel("bottom", x_label)
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

    def set_reference(self, name: str, value: float | None, color: str = "#718096") -> None:
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
