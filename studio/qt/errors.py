"""One error path for the whole app.

``sys.excepthook`` and ``threading.excepthook`` both hand the exception to a QObject whose signal
is delivered on the GUI thread, which shows a dialog with a plain message and expandable details.
The app keeps running; nothing reaches the user as a bare traceback.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from studio.core.errors import describe_exception


class ErrorReporter(QObject):
    error = Signal(str, str)  # message, details

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__()
        self._parent = parent
        self.shown: list[tuple[str, str]] = []
        self.error.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def set_parent_widget(self, widget: QWidget) -> None:
        self._parent = widget

    def report(self, exc: BaseException) -> None:
        message, detail = describe_exception(exc)
        self.error.emit(message, detail)

    @Slot(str, str)
    def _show(self, message: str, detail: str) -> None:
        self.shown.append((message, detail))
        show_error(self._parent, message, detail)


def show_error(parent: QWidget | None, message: str, detail: str = "", title: str = "Something went wrong") -> None:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(message)
    if detail:
        box.setDetailedText(detail)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.setModal(True)
    box.open()  # non-blocking: a worker's error must never freeze the event loop


_reporter: ErrorReporter | None = None


def install(reporter: ErrorReporter) -> None:
    global _reporter
    _reporter = reporter

    def excepthook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            sys.__excepthook__(etype, value, tb)
            return
        value.__traceback__ = tb
        reporter.report(value)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            reporter.report(args.exc_value)

    sys.excepthook = excepthook
    threading.excepthook = thread_hook


def reporter() -> ErrorReporter | None:
    return _reporter
