"""Every callback of a background task runs on the GUI thread, whatever kind of callable it is."""

from __future__ import annotations

import threading

from studio.qt.workers.task import TaskRunner


def test_lambdas_and_functions_run_on_the_gui_thread_in_order(qtbot):
    runner = TaskRunner()
    seen: list[tuple[str, str]] = []

    def job(state):
        state.progress(0.5, "half")
        state.partial("chunk")
        return 42

    def on_result(value):
        seen.append(("result", threading.current_thread().name))

    runner.run(job,
               on_progress=lambda f, m: seen.append(("progress", threading.current_thread().name)),
               on_partial=lambda v: seen.append(("partial", threading.current_thread().name)),
               on_result=on_result,
               on_finished=lambda: seen.append(("finished", threading.current_thread().name)))
    qtbot.waitUntil(lambda: any(kind == "finished" for kind, _ in seen), timeout=10000)
    assert [kind for kind, _ in seen] == ["progress", "partial", "result", "finished"]
    assert {name for _, name in seen} == {threading.main_thread().name}
    assert runner.running() == []


def test_error_reaches_on_error_on_the_gui_thread(qtbot):
    runner = TaskRunner()
    seen: list[tuple[str, str]] = []

    def job(_state):
        raise ValueError("bad value in row 3")

    runner.run(job, on_error=lambda m, d: seen.append((m, threading.current_thread().name)),
               on_finished=lambda: seen.append(("done", threading.current_thread().name)))
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=10000)
    assert "bad value in row 3" in seen[0][0]
    assert seen[1][0] == "done"
    assert {name for _, name in seen} == {threading.main_thread().name}


def test_nothing_is_delivered_to_an_owner_that_was_deleted(qtbot):
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QWidget

    runner = TaskRunner()
    owner = QWidget()
    release = threading.Event()
    seen: list[str] = []

    def job(_state):
        release.wait(10)
        return "late"

    task = runner.run(job, on_result=lambda v: seen.append(v), on_finished=lambda: seen.append("finished"),
                      owner=owner)
    owner.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    release.set()
    qtbot.waitUntil(lambda: not task.is_running() and runner.running() == [], timeout=10000)
    qtbot.wait(100)   # let the queued result arrive, and be dropped
    assert seen == []
