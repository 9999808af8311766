"""Garbage cycles are freed on the GUI thread, even when a worker thread calls gc.collect()."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtCore import QObject


class _Cycle:
    def __init__(self) -> None:
        self.me = self
        self.qt = QObject()   # what must never be destroyed off the GUI thread


def test_worker_collect_frees_nothing_and_the_gui_tick_does(qtbot, gui_thread_gc):
    gc.collect()
    cycle = _Cycle()
    freed_in: list[str] = []
    ref = weakref.ref(cycle)
    weakref.finalize(cycle, lambda: freed_in.append(threading.current_thread().name))
    del cycle
    worker = threading.Thread(target=gc.collect, name="worker")
    worker.start()
    worker.join()
    assert ref() is not None and freed_in == []
    qtbot.waitUntil(lambda: ref() is None, timeout=5000)
    assert freed_in == [threading.main_thread().name]
