"""Run a Qt-free function on a QThread and get its progress and result as signals.

The function receives a ``TaskState`` (Orange3's pattern): ``progress(frac, msg)`` for the UI,
``should_stop()`` to end early, and ``control``, the stop/pause token that work such as the
training engine reads itself. Stopping is a flag the function reads, because a queued slot on a
busy thread would never run. A failure arrives as the exception object (superqt's way), so the
place that shows it decides how (``describe_exception`` for a dialog, the message for a banner).
Threads quit when the work ends; ``TaskRunner.wait_all`` lets the window make sure none is left
running at close. A ``TaskSlot`` keeps one task per owner: starting the next cancels the last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from studio.core.control import Control


class TaskState:
    def __init__(self, worker: TaskWorker) -> None:
        self._worker = worker
        self.control = Control()

    def progress(self, frac: float, message: str = "") -> None:
        self._worker.progress.emit(float(frac), message)

    def partial(self, value: Any) -> None:
        self._worker.partial.emit(value)

    def request_stop(self) -> None:
        self.control.request_stop()

    def should_stop(self) -> bool:
        return self.control.stop_requested


class TaskWorker(QObject):
    progress = Signal(float, str)
    partial = Signal(object)
    result = Signal(object)
    failed = Signal(object)        # the exception itself
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
            self.failed.emit(exc)
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
    Nothing is delivered after ``cancel()`` either, so a replaced task cannot paint over the new
    one's results and its owner need not number its requests to tell stale ones apart.
    """

    progress = Signal(float, str)
    partial = Signal(object)
    result = Signal(object)
    failed = Signal(object)        # the exception itself
    finished = Signal()

    def __init__(self, fn: Callable[[TaskState], Any], parent: QObject | None = None,
                 owner: QObject | None = None) -> None:
        super().__init__(parent)
        self._owner = owner
        self._cancelled = False
        self.settled = False       # its result or failure has been delivered (or dropped)
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

    def delivers(self) -> bool:
        """Whether its callbacks still run: not cancelled, and its owner (if any) still exists."""
        return not self._cancelled and (self._owner is None or shiboken6.isValid(self._owner))

    @Slot(float, str)
    def _on_progress(self, frac: float, message: str) -> None:
        if self.delivers():
            self.progress.emit(frac, message)

    @Slot(object)
    def _on_partial(self, value: Any) -> None:
        if self.delivers():
            self.partial.emit(value)

    @Slot(object)
    def _on_result(self, value: Any) -> None:
        self.settled = True
        if self.delivers():
            self.result.emit(value)

    @Slot(object)
    def _on_failed(self, exc: BaseException) -> None:
        self.settled = True
        if self.delivers():
            self.failed.emit(exc)

    @Slot()
    def _on_finished(self) -> None:
        self.finished.emit()

    def start(self) -> Task:
        self.thread.start()
        return self

    @property
    def control(self) -> Control:
        """The stop/pause token the function reads (the training engine takes it as is)."""
        return self.worker.state.control

    def request_stop(self) -> None:
        self.control.request_stop()

    def cancel(self) -> None:
        """Stop it and drop whatever it still sends: its callbacks never run again."""
        self._cancelled = True
        self.request_stop()

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
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        owner: QObject | None = None,
    ) -> Task:
        """Start ``fn`` on its own thread. Every callback runs on the GUI thread, ``on_finished``
        last (after ``on_result`` or ``on_error``); none runs once ``owner`` is deleted or the task
        is cancelled. Without ``on_error`` a failure goes to the app's one error dialog."""
        task = Task(fn, self, owner)
        if on_result:
            task.result.connect(on_result)
        if on_error:
            task.failed.connect(on_error)
        else:
            from studio.qt.errors import reporter

            rep = reporter()
            if rep is not None:
                task.failed.connect(rep.report)
        if on_progress:
            task.progress.connect(on_progress)
        if on_partial:
            task.partial.connect(on_partial)
        if on_finished:
            task.finished.connect(lambda t=task: on_finished() if t.delivers() else None)
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


class TaskSlot:
    """One task at a time for one owner (Orange3's one-task-per-widget): starting a task cancels the
    previous one, whose late progress and result are then dropped, so the newest request wins
    without the owner numbering its requests."""

    def __init__(self, runner: TaskRunner, owner: QObject) -> None:
        self._runner = runner
        self._owner = owner
        self.task: Task | None = None

    def start(self, fn: Callable[[TaskState], Any], **callbacks: Any) -> Task:
        """``TaskRunner.run`` for this owner, after cancelling the slot's previous task."""
        self.cancel()
        self.task = self._runner.run(fn, owner=self._owner, **callbacks)
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    @property
    def busy(self) -> bool:
        """A task was started and its result or failure has not arrived yet."""
        return self.task is not None and not self.task.settled

    def is_running(self) -> bool:
        """Its thread is still alive (it may have delivered its result and be winding down)."""
        return self.task is not None and self.task.is_running()
