"""The start-up notice for a run that did not end by itself (a crash, a kill, a power cut).

A run's journal survives its process, so at the next launch the window can say what happened and
offer to continue from the last checkpoint, instead of leaving the user to find it in the Runs tab.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from studio.core.training.runs import RunSummary, list_runs


def newest_interrupted() -> RunSummary | None:
    """Off the UI thread: reads every run's journal."""
    return next((s for s in list_runs() if s.status == "interrupted"), None)


def describe(summary: RunSummary) -> str:
    total = f"/{summary.total_steps}" if summary.total_steps else ""
    head = f"Run {summary.name} was interrupted at step {summary.step}{total} (the studio closed or crashed)."
    if summary.resumable:
        return head + " Resume continues it from its last checkpoint."
    return head + " It had no checkpoint yet, so it cannot be resumed; start it again from Train."


class InterruptedBanner(QFrame):
    resume_requested = Signal(object)  # RunSummary
    show_requested = Signal(object)  # RunSummary

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("interruptedBanner")
        self.setStyleSheet("QFrame#interruptedBanner { background: palette(alternate-base); "
                           "border-bottom: 1px solid palette(mid); }")
        self.summary: RunSummary | None = None
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.resume_button = QPushButton("Resume")
        self.show_button = QPushButton("Show in Runs")
        self.dismiss_button = QPushButton("Dismiss")
        self.resume_button.clicked.connect(lambda: self._emit(self.resume_requested))
        self.show_button.clicked.connect(lambda: self._emit(self.show_requested))
        self.dismiss_button.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 6, 12, 6)
        row.addWidget(QLabel("⚠"))
        row.addWidget(self.text, 1)
        for b in (self.resume_button, self.show_button, self.dismiss_button):
            row.addWidget(b)
        self.hide()

    def show_run(self, summary: RunSummary | None) -> None:
        self.summary = summary
        if summary is None:
            self.hide()
            return
        self.text.setText(describe(summary))
        self.resume_button.setVisible(summary.resumable)
        self.show()

    def _emit(self, signal: Signal) -> None:
        if self.summary is not None:
            signal.emit(self.summary)
        self.hide()
