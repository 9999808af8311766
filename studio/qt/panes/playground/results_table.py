"""The Playground's prompt-set table: one row per prompt, its expected answer, then each column's
answer tinted by exact match, with each column's eval loss and exact match in its header."""

from __future__ import annotations

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from studio.core.library.prompt_set import CompareReport, PromptItem
from studio.qt.style import TONE

_MATCH, _MISS = QColor(TONE.ok_tint), QColor(TONE.bad_tint)


class PromptSetTable(QTableWidget):
    """Filled while a prompt set runs: ``prepare`` lays out the rows, ``set_result`` fills one cell
    as its column finishes a prompt, ``show_scores`` titles the columns once the run ends."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 2, parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(True)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    def prepare(self, items: list[PromptItem], column_labels: list[str]) -> None:
        self.clear()
        self.setColumnCount(2 + len(column_labels))
        self.setRowCount(len(items))
        self.setHorizontalHeaderLabels(["Prompt", "Expected", *column_labels])
        for row, it in enumerate(items):
            self.setItem(row, 0, QTableWidgetItem(it.prompt))
            self.setItem(row, 1, QTableWidgetItem("—" if it.expected is None else it.expected))
            self.item(row, 0).setToolTip(f"{it.source}, line {it.line}")
        self.show()

    def set_result(self, row: int, column: int, text: str, exact: bool | None) -> None:
        item = QTableWidgetItem(text)
        item.setToolTip(text)
        if exact is not None:
            item.setBackground(QBrush(_MATCH if exact else _MISS))
            item.setForeground(QBrush(QColor(TONE.tint_ink)))  # dark ink on the light tint, in the dark scheme too
        self.setItem(row, 2 + column, item)

    def show_scores(self, report: CompareReport) -> None:
        labels = ["Prompt", "Expected"] + [
            f"{res.label}\n{'—' if res.eval_loss is None else f'loss {res.eval_loss:.3f}'} · "
            f"EM {'—' if res.exact_match is None else f'{res.exact_match * 100:.0f}%'}"
            for res in report.columns]
        self.setHorizontalHeaderLabels(labels)

    def result_text(self, row: int, column: int) -> str:
        item = self.item(row, 2 + column)
        return item.text() if item is not None else ""
