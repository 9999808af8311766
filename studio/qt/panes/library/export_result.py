"""What an export proved: one row per equivalence check, and a verdict that cannot be missed.

A failed check is shown in red with the words "do not ship", never folded away: the export is on
disk (so it can be inspected), and the only thing standing between it and a user is this panel.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.formatting import format_bytes
from studio.core.library.merge import ExportReport
from studio.qt.style import TONE

CHECK_COLUMNS = ("Check", "Greedy-token agreement", "Max |Δlogit|", "Relative", "Result")
_VERDICT = {
    "passed": ("✓ Export verified", TONE.ok_tint, TONE.ok_ink),
    "failed": ("✗ Equivalence check FAILED — do not ship this export", TONE.bad_tint, TONE.bad_ink),
    "unchecked": ("Export written; equivalence not checked", TONE.neutral_tint, TONE.label),
}


class ExportResultView(QGroupBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Last export", parent)
        self.report: ExportReport | None = None
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.verdict.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.where = QLabel()
        self.where.setObjectName("muted")
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.where.setWordWrap(True)
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self._open)
        self.checks = QTableWidget(0, len(CHECK_COLUMNS))
        self.checks.setHorizontalHeaderLabels(CHECK_COLUMNS)
        self.checks.verticalHeader().setVisible(False)
        self.checks.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.checks.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.checks.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.checks.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.checks.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(CHECK_COLUMNS)):
            self.checks.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.notes = QLabel()
        self.notes.setObjectName("muted")
        self.notes.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.where, 1)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.verdict)
        layout.addLayout(top)
        layout.addWidget(self.checks)
        layout.addWidget(self.notes)
        layout.addStretch(1)
        self.hide()

    def verdict_text(self) -> str:
        return self.verdict.text()

    def show_report(self, report: ExportReport) -> None:
        self.report = report
        text, bg, fg = _VERDICT.get(report.status, _VERDICT["unchecked"])
        self.verdict.setText(text)
        self.verdict.setStyleSheet(f"background: {bg}; color: {fg}; font-weight: 600; padding: 6px 8px; "
                                   "border-radius: 4px;")
        what = f"{report.kind} · {report.dtype}" if report.dtype else report.kind
        extra = f" · GGUF: {', '.join(report.gguf_files)}" if report.gguf_files else ""
        self.where.setText(f"{report.out_dir}  ({what}, {format_bytes(report.size_bytes, 1)}{extra})")
        self.checks.setRowCount(len(report.equivalence))
        for row, eq in enumerate(report.equivalence):
            cells = (eq.label, f"{eq.agreement * 100:.1f}% of {eq.prompts}×{eq.new_tokens}", f"{eq.max_abs_diff:.3g}",
                     f"{eq.max_rel_diff:.3g}", "PASSED" if eq.passed else "FAILED")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{eq.summary()}")
                if col == len(cells) - 1:
                    item.setForeground(QBrush(QColor(TONE.ok if eq.passed else TONE.error)))
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.checks.setItem(row, col, item)
        self.checks.setVisible(bool(report.equivalence))
        self.checks.resizeRowsToContents()
        header = self.checks.horizontalHeader().sizeHint().height()
        rows = sum(self.checks.rowHeight(r) for r in range(len(report.equivalence)))
        self.checks.setFixedHeight(header + rows + 2 * self.checks.frameWidth() + 2)
        rules = sorted({eq.rule for eq in report.equivalence})
        self.notes.setText("\n".join([*(f"Rule: {r}" for r in rules), *report.notes]))
        self.notes.setVisible(bool(self.notes.text()))
        self.show()

    def _open(self) -> None:
        if self.report is not None:
            target = self.report.out_dir if self.report.out_dir.is_dir() else self.report.out_dir.parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))
