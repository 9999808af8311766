"""Run Python's cyclic garbage collector on the GUI thread only.

Automatic collection fires in whichever thread happens to allocate; in a worker thread that can
destroy an unreachable Qt object (a plot item, a model, a dialog) away from the GUI thread, which
crashes the process. pyqtgraph's ``util/garbage_collector.py`` solves it this way: switch
automatic collection off and collect from a timer on the GUI thread, with the same generation
thresholds Python would use. Reference counting still frees most objects at once; only cycles
wait for the next tick.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadCollector(QObject):
    def __init__(self, interval_ms: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        gc.disable()
        self.timer.start(interval_ms)

    def check(self) -> None:
        gen0, gen1, gen2 = gc.get_count()
        if gen0 > self.threshold[0]:
            gc.collect(0)
            if gen1 > self.threshold[1]:
                gc.collect(1)
                if gen2 > self.threshold[2]:
                    gc.collect(2)

    def stop(self) -> None:
        """Give collection back to Python (used when the app or a test session ends)."""
        self.timer.stop()
        gc.enable()


_collector: GuiThreadCollector | None = None


def install(parent: QObject | None = None) -> GuiThreadCollector:
    """Install once per process, from the GUI thread, after the QApplication exists."""
    global _collector
    if _collector is None:
        _collector = GuiThreadCollector(parent=parent)
    return _collector
