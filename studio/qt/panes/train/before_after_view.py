"""The run's before/after table beside the curves: the same measures on the eval split for the model the
run started from and the one it saved (training.before_after).

Filled from the run's events as they come: the step-0 eval and the "before" check fill the first column
while training runs, so the user sees what the starting model does before the curves say anything; the
report on RunFinished fills the rest. A resumed run replays the "before" side from its journal.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.training import before_after
from studio.core.training.events import Event
from studio.qt.style import TONE

COLUMNS = ("Measure", "Before", "After")


class BeforeAfterView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("<b>Before → after</b> (eval split)")
        self.note = QLabel("")
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setAccessibleName("Before and after training, on the eval split")
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setToolTip("The same measures on the eval split for the model the run started from (before the "
                        "first step) and the one it saved. Exact match counts answers whose reference is short; "
                        "green is better, red worse.")
        self.setMinimumWidth(330)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)
        self.reset()

    def reset(self, next_token_loss: bool = True) -> None:
        """A new run: nothing measured yet."""
        self._before: dict = {}
        self._eval_before: float | None = None
        self._next_token_loss = next_token_loss
        self.report: dict[str, dict[str, float]] = {}
        self._show({})
        self.note.setText("Filled in before the first step and after the last.")

    def take(self, ev: Event) -> None:
        """Follow one run event (others are ignored)."""
        if ev.kind == "eval" and ev.step == 0:
            self._eval_before = ev.eval_loss
        elif ev.kind == "model_check" and ev.phase == "before":
            self._before = dict(ev.values)
        elif ev.kind == "run_finished":
            self.report = dict(ev.before_after)
            self._show(self.report)
            self.note.setText("" if self.report else
                              "Nothing to compare: the run had no eval split (add one on the Dataset pane).")
            return
        else:
            return
        self._show(before_after.report(self._before, {}, eval_before=self._eval_before, eval_after=None,
                                       next_token_loss=self._next_token_loss))

    def _show(self, rep: dict[str, dict[str, float]]) -> None:
        rows = [(key, label) for key, label, _, _ in before_after.MEASURES if key in rep]
        self.table.setRowCount(len(rows))
        for i, (key, label) in enumerate(rows):
            row = rep[key]
            self.table.setItem(i, 0, QTableWidgetItem(label))
            for j, side in enumerate(("before", "after"), start=1):
                item = QTableWidgetItem(before_after.fmt(key, row.get(side)))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if side == "after" and "before" in row and "after" in row:
                    good = before_after.better(key, row["before"], row["after"])
                    if good is not None:
                        item.setForeground(QBrush(QColor(TONE.ok if good else TONE.error)))
                        item.setToolTip("better than before" if good else "worse than before")
                self.table.setItem(i, j, item)
