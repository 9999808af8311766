"""Tell the user about a run's end while they are in another window.

Training takes minutes to hours, so people switch away; a run that finishes, fails or warns should
reach them without polling the window. Only when the window is *not* active: a message about what
is already on screen is noise. Delivered as a tray message where the desktop has a system tray, and
always as a taskbar attention request (``QApplication.alert``), which every desktop either honours
or ignores harmlessly, so a desktop without a tray loses nothing but the message bubble.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

# How long a tray message stays up; desktops may cap it.
MESSAGE_MS = 10_000


class DesktopNotifier(QObject):
    """Decides whether to notify (window inactive) and delivers the message.

    ``is_active`` and ``tray_available`` are seams: tests pass plain callables instead of driving a
    real window manager and tray. ``notified`` fires for every message delivered.
    """

    notified = Signal(str, str)  # title, message

    def __init__(self, window: QWidget, *, is_active: Callable[[], bool] | None = None,
                 tray_available: Callable[[], bool] | None = None) -> None:
        super().__init__(window)
        self._window = window
        self._is_active = is_active or (lambda: window.isActiveWindow() and not window.isMinimized())
        self._tray_available = tray_available or QSystemTrayIcon.isSystemTrayAvailable
        self._tray: QSystemTrayIcon | None = None
        self._warned_this_run = False

    # -- the decision -----------------------------------------------------------------------------
    def should_notify(self) -> bool:
        return not self._is_active()

    def notify(self, title: str, message: str, *, critical: bool = False) -> bool:
        """Deliver ``title``/``message`` if the window is not active; returns whether it did."""
        if not self.should_notify():
            return False
        tray = self._ensure_tray()
        if tray is not None:
            icon = QSystemTrayIcon.MessageIcon.Critical if critical else QSystemTrayIcon.MessageIcon.Information
            tray.showMessage(title, message, icon, MESSAGE_MS)
        QApplication.alert(self._window)
        self.notified.emit(title, message)
        return True

    def _ensure_tray(self) -> QSystemTrayIcon | None:
        if self._tray is None and self._tray_available():
            self._tray = QSystemTrayIcon(QApplication.windowIcon(), self)
            self._tray.setToolTip(QApplication.applicationName())
            self._tray.messageClicked.connect(self._bring_window_back)
            self._tray.activated.connect(lambda _reason: self._bring_window_back())
            self._tray.show()
        return self._tray

    def _bring_window_back(self) -> None:
        self._window.showNormal() if self._window.isMinimized() else self._window.show()
        self._window.raise_()
        self._window.activateWindow()

    # -- what a run says --------------------------------------------------------------------------
    def watch(self, train_pane) -> None:
        """Connect to the Train pane's ``run_finished``, ``run_failed``, ``attention_needed`` and
        ``running_changed`` signals."""
        train_pane.run_finished.connect(self.on_run_finished)
        train_pane.run_failed.connect(self.on_run_failed)
        train_pane.attention_needed.connect(self.on_attention)
        train_pane.running_changed.connect(self._on_running_changed)

    def on_run_finished(self, ev) -> None:
        """Completed or failed runs; a stopped one was stopped by the user, who already knows."""
        if ev.status == "completed":
            loss = "" if ev.eval_loss is None else f" · eval loss {ev.eval_loss:.4f}"
            saved = " The adapter is in the Library." if ev.adapter_path else ""
            self.notify("Training finished", f"Completed at step {ev.step}{loss}.{saved}")
        elif ev.status == "failed":
            self.notify("Training failed", f"At step {ev.step}: {ev.reason}", critical=True)

    def on_run_failed(self, message: str) -> None:
        self.notify("Training failed", message, critical=True)

    def on_attention(self, message: str) -> None:
        """A warning during a run; one message per run, so a chatty run cannot flood the desktop."""
        if self._warned_this_run:
            return
        if self.notify("Training needs attention", message):
            self._warned_this_run = True

    def _on_running_changed(self, running: bool) -> None:
        if running:
            self._warned_this_run = False
