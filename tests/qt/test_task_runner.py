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


def test_error_reaches_on_error_on_the_gui_thread_as_the_exception_itself(qtbot):
    runner = TaskRunner()
    seen: list[tuple[object, str]] = []

    def job(_state):
        raise ValueError("bad value in row 3")

    runner.run(job, on_error=lambda e: seen.append((e, threading.current_thread().name)),
               on_finished=lambda: seen.append(("done", threading.current_thread().name)))
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=10000)
    exc = seen[0][0]
    assert isinstance(exc, ValueError) and str(exc) == "bad value in row 3"
    assert exc.__traceback__ is not None  # the detail a dialog shows is still there
    assert seen[1][0] == "done"
    assert {name for _, name in seen} == {threading.main_thread().name}


def test_an_unhandled_failure_goes_to_the_one_error_dialog_in_words(qtbot, monkeypatch):
    from studio.core.errors import StudioError
    from studio.qt import errors

    shown: list[tuple[str, str]] = []
    reporter = errors.ErrorReporter()
    monkeypatch.setattr(errors, "_reporter", reporter)
    monkeypatch.setattr(errors, "show_error", lambda _parent, message, detail="", **_k: shown.append((message, detail)))

    err = StudioError("The file is empty.", path="data.jsonl", detail="0 bytes")

    def job(_state):
        raise err

    TaskRunner().run(job)
    qtbot.waitUntil(lambda: bool(shown), timeout=10000)
    assert shown == [(err.user_text(), "0 bytes")] and "data.jsonl" in shown[0][0]


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


def test_a_slot_cancels_the_previous_task_and_drops_what_it_still_sends(qtbot):
    from PySide6.QtWidgets import QWidget

    from studio.qt.workers.task import TaskSlot

    runner = TaskRunner()
    owner = QWidget()
    slot = TaskSlot(runner, owner)
    release = threading.Event()
    seen: list[str] = []

    def old_job(state):
        release.wait(10)
        state.partial("old partial")
        return "old result" if state.should_stop() else "old result, never stopped"

    first = slot.start(old_job, on_partial=seen.append, on_result=seen.append,
                       on_finished=lambda: seen.append("old finished"))
    assert slot.busy and slot.task is first
    second = slot.start(lambda _s: "new result", on_result=seen.append, on_finished=lambda: seen.append("new finished"))
    assert slot.task is second and first.control.stop_requested   # the first was told to stop...
    results: list[object] = []
    first.worker.result.connect(results.append)                   # (what the worker itself sent)
    release.set()
    qtbot.waitUntil(lambda: not first.is_running() and not second.is_running() and not runner.running(),
                    timeout=10000)
    qtbot.wait(100)   # let anything still queued from the first arrive, and be dropped
    assert results == ["old result"]                              # ...did stop...
    assert seen == ["new result", "new finished"]                 # ...and nothing of it reached the owner
    assert not slot.busy and slot.is_running() is False


def test_the_control_a_task_reads_is_the_one_its_handle_pauses_and_stops(qtbot):
    runner = TaskRunner()
    steps: list[int] = []

    def job(state):
        control = state.control
        for step in range(1, 10_000):
            control.wait_while_paused()
            if state.should_stop():
                return step
            steps.append(step)
            state.partial(step)
            threading.Event().wait(0.005)
        return -1

    seen: list[object] = []
    task = runner.run(job, on_partial=seen.append, on_result=lambda v: seen.append(("result", v)))
    qtbot.waitUntil(lambda: len(steps) >= 3, timeout=10000)
    task.control.pause()
    qtbot.wait(300)               # the step under way when the pause came may still finish
    held = len(steps)
    qtbot.wait(300)
    assert len(steps) == held and task.control.paused and task.is_running()
    task.request_stop()           # a paused task wakes up to stop
    qtbot.waitUntil(lambda: not task.is_running(), timeout=10000)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1] == ("result", held + 1), timeout=10000)
