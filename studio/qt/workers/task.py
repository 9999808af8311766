"""Run a Qt-free function on a QThread and get its progress and result as signals.

The function receives a ``TaskState`` (Orange3's pattern): ``progress(frac, msg)`` for the UI,
``should_stop()`` to end early. Stopping is a flag the function reads, because a queued slot on a
busy thread would never run. Threads quit and are deleted when the work ends; ``TaskRunner.wait_all``
lets the window make sure none is left running at close.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from studio.core.errors import describe_exception


class TaskState:
    def __init__(self, worker: TaskWorker) -> None:
        self._worker = worker
        self._stop = threading.Event()

    def progress(self, frac: float, message: str = "") -> None:
        self._worker.progress.emit(float(frac), message)

    def partial(self, value: Any) -> None:
        self._worker.partial.emit(value)

    def request_stop(self) -> None:
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()


class TaskWorker(QObject):
    progress = Signal(float, str)
    partial = Signal(object)
    result = Signal(object)
    failed = Signal(str, str)
    finished = Signal()

    def __init__(self, fn: Callable[[TaskState], Any]) -> None:
        super().__init__()
        self._fn = fn
        self.state = TaskState(self)

    @Slot()
    def work(self) -> None:
        try:
            value = self._fn(self.state)
        except BaseException as exc:
            message, detail = describe_exception(exc)
            self.failed.emit(message, detail)
        else:
            self.result.emit(value)
        finally:
            self.finished.emit()


class Task(QObject):
    """A handle on one running function: its thread, worker and signals.

    The worker's signals are re-emitted by this object, which lives on the GUI thread. PySide runs
    a plain callable (a lambda, a function) connected straight to a worker signal *in the emitting
    thread*; relayed through a GUI-thread QObject, every callback runs on the GUI thread. With an
    ``owner`` (the widget whose callbacks these are), nothing is delivered once it has been
    deleted: a result that arrives after its pane closed is dropped, not applied to dead widgets.
    """

    progress = Signal(float, str)
    partial = Signal(object)
    result = Signal(object)
    failed = Signal(str, str)
    finished = Signal()

    def __init__(self, fn: Callable[[TaskState], Any], parent: QObject | None = None,
                 owner: QObject | None = None) -> None:
        super().__init__(parent)
        self._owner = owner
        self.thread = QThread()
        self.worker = TaskWorker(fn)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.work)
        # Direct: QThread.quit is thread-safe, and a queued call would never run while the GUI
        # thread blocks in wait() at close — a deadlock.
        self.worker.finished.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        queued = Qt.ConnectionType.QueuedConnection
        self.worker.progress.connect(self._on_progress, queued)
        self.worker.partial.connect(self._on_partial, queued)
        self.worker.result.connect(self._on_result, queued)
        self.worker.failed.connect(self._on_failed, queued)
        self.thread.finished.connect(self._on_finished, queued)   # after result/failed: same queue

    def _owner_alive(self) -> bool:
        return self._owner is None or shiboken6.isValid(self._owner)

    @Slot(float, str)
    def _on_progress(self, frac: float, message: str) -> None:
        if self._owner_alive():
            self.progress.emit(frac, message)

    @Slot(object)
    def _on_partial(self, value: Any) -> None:
        if self._owner_alive():
            self.partial.emit(value)

    @Slot(object)
    def _on_result(self, value: Any) -> None:
        if self._owner_alive():
            self.result.emit(value)

    @Slot(str, str)
    def _on_failed(self, message: str, detail: str) -> None:
        if self._owner_alive():
            self.failed.emit(message, detail)

    @Slot()
    def _on_finished(self) -> None:
        self.finished.emit()

    def start(self) -> Task:
        self.thread.start()
        return self

    def request_stop(self) -> None:
        self.worker.state.request_stop()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        return self.thread.wait(ms)


class TaskRunner(QObject):
    """Owns running tasks so they are not garbage-collected mid-flight and can all be waited for."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[Task] = set()

    def run(
        self,
        fn: Callable[[TaskState], Any],
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        owner: QObject | None = None,
    ) -> Task:
        """Start ``fn`` on its own thread. Every callback runs on the GUI thread, ``on_finished``
        last (after ``on_result`` or ``on_error``); none runs once ``owner`` is deleted."""
        task = Task(fn, self, owner)
        if on_result:
            task.result.connect(on_result)
        if on_error:
            task.failed.connect(on_error)
        else:
            from studio.qt.errors import reporter

            rep = reporter()
            if rep is not None:
                task.failed.connect(rep.error.emit)
        if on_progress:
            task.progress.connect(on_progress)
        if on_partial:
            task.partial.connect(on_partial)
        if on_finished:
            task.finished.connect(lambda t=task: on_finished() if t._owner_alive() else None)
        self._tasks.add(task)
        task.finished.connect(lambda t=task: self._tasks.discard(t))
        return task.start()

    def running(self) -> list[Task]:
        return [t for t in self._tasks if t.is_running()]

    def stop_all(self) -> None:
        for t in list(self._tasks):
            t.request_stop()

    def wait_all(self, ms: int = 60000) -> bool:
        return all(t.wait(ms) for t in list(self._tasks))
