"""Run Python's cyclic garbage collector on the GUI thread only.

Collection fires in whichever thread happens to allocate or calls ``gc.collect()`` (accelerate
does, at the start of every training run); in a worker thread it can destroy an unreachable Qt
object (a plot item, a model, a dialog) away from the GUI thread, which crashes or deadlocks the
process. pyqtgraph's ``util/garbage_collector.py`` switches automatic collection off and collects
from a timer on the GUI thread, with the thresholds Python would use. Explicit collections in
other threads are defused too: a ``gc.callbacks`` hook freezes every tracked object as such a
collection starts (so it finds nothing to free), and the next GUI tick unfreezes them and runs
the full collection here. Reference counting still frees most objects at once; only cycles wait
for the next tick.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QTimer


class GuiThreadCollector(QObject):
    def __init__(self, interval_ms: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.gui_thread = threading.current_thread()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        gc.disable()
        gc.callbacks.append(self._on_collect)
        self.timer.start(interval_ms)

    def _on_collect(self, phase: str, _info: dict) -> None:
        if phase == "start" and threading.current_thread() is not self.gui_thread:
            gc.freeze()

    def collect_now(self) -> None:
        """A full collection here, including whatever a worker's collection left frozen."""
        gc.unfreeze()
        gc.collect()

    def check(self) -> None:
        if gc.get_freeze_count():
            self.collect_now()
            return
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
        if self._on_collect in gc.callbacks:
            gc.callbacks.remove(self._on_collect)
        gc.unfreeze()
        gc.enable()


_collector: GuiThreadCollector | None = None


def install(parent: QObject | None = None) -> GuiThreadCollector:
    """Install once per process, from the GUI thread, after the QApplication exists."""
    global _collector
    if _collector is None:
        _collector = GuiThreadCollector(parent=parent)
    return _collector
