"""Desktop habits: the look follows the system's colour scheme (plots too), a run's end reaches a
user who is in another window, controls without words have accessible names, the window has the icon."""

from __future__ import annotations

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QAbstractButton, QLineEdit

from studio.core.training.events import RunFinished
from studio.qt import style
from studio.qt.notify import DesktopNotifier
from studio.qt.widgets.memory_bar import MemoryBar


@pytest.fixture
def follower(qapp, monkeypatch):
    monkeypatch.delenv(style.SCHEME_ENV, raising=False)
    style.apply_style(qapp, style.LIGHT)
    follower = style.SchemeFollower(qapp)
    yield follower
    qapp.styleHints().colorSchemeChanged.disconnect(follower._on_color_scheme_changed)
    follower.setParent(None)
    style.apply_style(qapp, style.LIGHT)


def _window_colour(qapp) -> str:
    return qapp.palette().color(QPalette.ColorRole.Window).name()


def _plots(window) -> list[pg.PlotWidget]:
    plots = window.findChildren(pg.PlotWidget)
    assert len(plots) >= 5, "the Train pane's four live plots and the Dataset pane's charts"
    return plots


def test_palette_and_plots_follow_the_system_scheme(qapp, qtbot, window, follower):
    assert _window_colour(qapp) == style.COLORS[style.LIGHT]["window"]
    with qtbot.waitSignal(follower.changed) as changed:
        qapp.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert changed.args == [style.DARK]
    assert _window_colour(qapp) == style.COLORS[style.DARK]["window"]
    assert qapp.palette().color(QPalette.ColorRole.Text).name() == style.COLORS[style.DARK]["text"]
    assert style.COLORS[style.DARK]["sidebar"] in qapp.styleSheet()
    background, foreground = style.plot_colors(style.DARK)
    for plot in _plots(window):
        assert plot.backgroundBrush().color().name() == background
        assert plot.getPlotItem().getAxis("left").textPen().color().name() == foreground
    # a plot made after the switch starts dark too
    assert pg.PlotWidget().backgroundBrush().color().name() == background

    qapp.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert _window_colour(qapp) == style.COLORS[style.LIGHT]["window"]
    assert all(p.backgroundBrush().color().name() == style.plot_colors(style.LIGHT)[0] for p in _plots(window))


def test_unknown_scheme_reads_as_light_and_override_pins_the_scheme(qapp, qtbot, follower, monkeypatch):
    assert style.scheme_from_hint(Qt.ColorScheme.Unknown) == style.LIGHT
    monkeypatch.setenv(style.SCHEME_ENV, "light")
    with qtbot.assertNotEmitted(follower.changed):
        qapp.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert _window_colour(qapp) == style.COLORS[style.LIGHT]["window"]
    monkeypatch.setenv(style.SCHEME_ENV, "dark")
    assert style.system_scheme(qapp) == style.DARK


def _finished(status: str, **kw) -> RunFinished:
    return RunFinished(status=status, reason=kw.pop("reason", "max steps reached"), step=4, **kw)


def _notifier(window, active: list[bool]) -> DesktopNotifier:
    notifier = DesktopNotifier(window, is_active=lambda: active[0], tray_available=lambda: False)
    notifier.watch(window.train_pane)
    return notifier


def test_notifies_only_while_the_window_is_not_active(window, qtbot):
    active = [True]
    notifier = _notifier(window, active)
    with qtbot.assertNotEmitted(notifier.notified):
        window.train_pane.run_finished.emit(_finished("completed", eval_loss=1.25, adapter_path="/x"))
    active[0] = False
    with qtbot.waitSignal(notifier.notified) as shown:
        window.train_pane.run_finished.emit(_finished("completed", eval_loss=1.25, adapter_path="/x"))
    title, message = shown.args
    assert title == "Training finished" and "step 4" in message and "1.2500" in message and "Library" in message


def test_failure_and_warning_notify_but_a_user_stop_does_not(window, qtbot):
    notifier = _notifier(window, [False])
    seen: list[tuple[str, str]] = []
    notifier.notified.connect(lambda t, m: seen.append((t, m)))
    window.train_pane.run_finished.emit(_finished("stopped", reason="stopped by the user"))
    assert seen == []
    window.train_pane.run_finished.emit(_finished("failed", reason="loss is not finite"))
    window.train_pane.run_failed.emit("Out of memory while loading the model.")
    assert [t for t, _ in seen] == ["Training failed", "Training failed"]
    assert "loss is not finite" in seen[0][1] and "Out of memory" in seen[1][1]
    # warnings: one per run, so a chatty run cannot flood the desktop; the next run may warn again
    window.train_pane.running_changed.emit(True)
    window.train_pane.attention_needed.emit("12 rows are longer than the max length and will be cut")
    window.train_pane.attention_needed.emit("another warning")
    window.train_pane.running_changed.emit(True)
    window.train_pane.attention_needed.emit("a warning in the next run")
    attention = [m for t, m in seen if t == "Training needs attention"]
    assert attention == ["12 rows are longer than the max length and will be cut", "a warning in the next run"]


def test_warning_logged_by_a_run_reaches_the_notifier(window, qtbot):
    from studio.core.training.events import Log

    notifier = _notifier(window, [False])
    with qtbot.waitSignal(notifier.notified) as shown:
        window.train_pane._on_event(Log(level="warning", message="damaged checkpoint set aside"))
    assert shown.args == ["Training needs attention", "damaged checkpoint set aside"]


def test_tray_message_when_a_tray_exists(window, qapp):
    from studio.qt.app import app_icon

    qapp.setWindowIcon(app_icon())
    notifier = DesktopNotifier(window, is_active=lambda: False, tray_available=lambda: True)
    assert notifier.notify("Training finished", "done")
    assert notifier._tray is not None and not notifier._tray.icon().isNull()
    notifier._tray.hide()


def test_window_wires_its_notifier_to_the_train_pane(window, qtbot, monkeypatch):
    monkeypatch.setattr(window.notifier, "_is_active", lambda: False)
    monkeypatch.setattr(window.notifier, "_tray_available", lambda: False)
    with qtbot.waitSignal(window.notifier.notified):
        window.train_pane.run_failed.emit("boom")


QT_OWN_BUTTONS = ("qt_", "ScrollLeftButton", "ScrollRightButton")  # Qt names these itself (corner, tab scroll)


def _needs_name(button: QAbstractButton) -> bool:
    """One of our buttons that a screen reader cannot name from its text: no text, or only symbols (✕, …)."""
    if button.objectName().startswith(QT_OWN_BUTTONS) or isinstance(button.parent(), QLineEdit):
        return False  # Qt's own parts (table corner, tab scrollers, a line edit's clear button)
    return not any(ch.isalnum() for ch in button.text())


def test_icon_only_controls_and_plots_have_accessible_names(window, qtbot, tmp_path):
    from studio.qt.dialogs.launch_dialog import LaunchDialog
    from studio.qt.panes.playground.column import ColumnView

    extra = [ColumnView(), LaunchDialog(window.state.config, tmp_path, parent=window)]
    for w in extra:
        qtbot.addWidget(w)
    roots = [window, *extra]
    unnamed = []
    for root in roots:
        for button in root.findChildren(QAbstractButton):
            if _needs_name(button) and not button.accessibleName():
                unnamed.append(f"{type(button).__name__} {button.text()!r} in {type(root).__name__}")
        for chart in [*root.findChildren(pg.PlotWidget), *root.findChildren(MemoryBar)]:
            if not chart.accessibleName() or not chart.accessibleDescription():
                unnamed.append(f"{type(chart).__name__} in {type(root).__name__}")
    assert unnamed == []
    assert window.sidebar.accessibleName()


def test_window_and_app_use_the_icon(qapp, window):
    from studio.qt.app import create_app

    create_app()
    style.apply_style(qapp, style.LIGHT)
    sizes = {s.width() for s in qapp.windowIcon().availableSizes()}
    assert {16, 32, 48, 256, 512} <= sizes
    assert not window.windowIcon().isNull()
    assert qapp.desktopFileName() == "io.github.finetuningstudio.Studio"
