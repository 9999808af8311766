"""Get a worker's signals onto the GUI thread with whatever context the caller needs.

PySide runs a lambda or ``functools.partial`` connected to a worker's signal in the *worker's*
thread (they have no receiver object to queue to), so a view touched from one crashes or
misbehaves. A bound method of a QObject living in the GUI thread is queued there, so each job
gets a small ``Relay`` whose slots call the given callables on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Slot

from studio.qt.workers.task import Task, TaskRunner, TaskState


class Relay(QObject):
    def __init__(self, parent: QObject, *, on_result: Callable[[Any], None] | None = None,
                 on_error: Callable[[str, str], None] | None = None,
                 on_progress: Callable[[float, str], None] | None = None,
                 on_partial: Callable[[Any], None] | None = None,
                 on_finished: Callable[[], None] | None = None) -> None:
        super().__init__(parent)
        self._on_result, self._on_error = on_result, on_error
        self._on_progress, self._on_partial, self._on_finished = on_progress, on_partial, on_finished

    @Slot(object)
    def result(self, value: Any) -> None:
        if self._on_result:
            self._on_result(value)

    @Slot(str, str)
    def error(self, message: str, detail: str) -> None:
        if self._on_error:
            self._on_error(message, detail)

    @Slot(float, str)
    def progress(self, frac: float, message: str) -> None:
        if self._on_progress:
            self._on_progress(frac, message)

    @Slot(object)
    def partial(self, value: Any) -> None:
        if self._on_partial:
            self._on_partial(value)

    @Slot()
    def finished(self) -> None:
        try:
            if self._on_finished:
                self._on_finished()
        finally:
            self.deleteLater()


def run_job(runner: TaskRunner, owner: QObject, fn: Callable[[TaskState], Any], *,
            on_result: Callable[[Any], None] | None = None, on_error: Callable[[str, str], None] | None = None,
            on_progress: Callable[[float, str], None] | None = None, on_partial: Callable[[Any], None] | None = None,
            on_finished: Callable[[], None] | None = None) -> Task:
    """``runner.run(fn)`` with every callback delivered on the GUI thread (``owner``'s)."""
    relay = Relay(owner, on_result=on_result, on_error=on_error, on_progress=on_progress, on_partial=on_partial,
                  on_finished=on_finished)
    task = runner.run(fn, on_result=relay.result, on_error=relay.error,
                      on_progress=relay.progress if on_progress else None,
                      on_partial=relay.partial if on_partial else None)
    task.finished.connect(relay.finished)
    return task
