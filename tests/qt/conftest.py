"""Qt fixtures: a real MainWindow per test, and a guard that no QThread outlives its test."""

from __future__ import annotations

import pytest

from studio.core.config import apply_overrides


@pytest.fixture(scope="session", autouse=True)
def gui_thread_gc(qapp):
    """As in the app: cycles are collected on the GUI thread, never inside a worker."""
    from studio.qt import gc_guard

    collector = gc_guard.install(qapp)
    yield collector
    collector.stop()


@pytest.fixture(autouse=True)
def collect_after_test(gui_thread_gc):
    """Free each test's cycles here, on the GUI thread, rather than waiting for a timer tick."""
    yield
    gui_thread_gc.collect_now()


@pytest.fixture()
def window(qtbot, tiny_model_dir, demo_train, demo_eval):
    from studio.qt import errors
    from studio.qt.main_window import MainWindow
    from studio.qt.state import AppState, default_config

    reporter = errors.ErrorReporter()
    errors.install(reporter)
    state = AppState()
    state.set_config(apply_overrides(default_config(), {
        "model.path": str(tiny_model_dir),
        "dataset.train": [str(demo_train)],
        "dataset.eval": [str(demo_eval)],
        "training.max_steps": 4,
        "training.batch_size": 2,
        "training.max_seq_len": 128,
        "training.eval_steps": 2,
        "training.save_steps": 2,
    }))
    win = MainWindow(state)
    reporter.set_parent_widget(win)
    win.reporter = reporter

    def stop_training(w) -> None:
        # pytest-qt closes the window before this fixture's teardown runs; a run still going would
        # make closeEvent ask "stop training and quit?" in a modal box that nobody answers.
        w.train_pane.stop_training()
        w.train_pane.wait_for_worker()

    qtbot.addWidget(win, before_close_func=stop_training)
    win.show()
    win.start_background_work()
    yield win
    win.train_pane.stop_training()
    win.train_pane.wait_for_worker()
    win.tasks.stop_all()
    assert win.tasks.wait_all(60000), "a worker thread was left running"
