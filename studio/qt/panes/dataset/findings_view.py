"""The validation report as a list a person can act on: one entry per problem kind and file,
opening to every place it occurs. Choosing an entry asks the pane to show that row."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.datasets.findings import Finding
from studio.core.datasets.validate import Report
from studio.qt.panes.dataset.badges import SEVERITY_COLORS, dot_icon
from studio.qt.style import TONE

MAX_PLACES = 500          # children listed per finding; the rest are summed up in one line
ROW_ROLE = Qt.ItemDataRole.UserRole
FINDING_ROLE = Qt.ItemDataRole.UserRole + 1


def place_word(kind: str) -> str:
    return {"json": "element", "parquet": "row"}.get(kind, "line")


class FindingsView(QWidget):
    """``row_chosen(row)`` when an entry that points at a training row is clicked."""

    row_chosen = Signal(int)
    note = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Open a dataset to check it.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Problem", "Where", "What to do"])
        self.tree.setRootIsDecorated(True)
        # One line per entry, cut at the end with "…": the tooltip and the pane below hold the whole
        # text (a tree's rows do not grow to wrapped text, so wrapping only cut words in half).
        self.tree.setWordWrap(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(60)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 200)
        header.resizeSection(1, 165)
        self.tree.itemClicked.connect(self._on_item)
        self.tree.currentItemChanged.connect(self._on_current)
        self.detail = QTextBrowser()
        self.detail.setPlaceholderText("Choose a finding to read it in full; choosing one also shows its row.")
        self.detail.setStyleSheet("font-family: sans-serif;")
        self.detail.setMinimumHeight(90)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tree)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)
        self._report: Report | None = None
        self._eval_files: set[str] = set()
        self._kinds: dict[str, str] = {}

    # -- content ---------------------------------------------------------------------------------
    def set_report(self, report: Report | None, tokens_note: str = "") -> None:
        self._report = report
        self.tree.clear()
        self.detail.clear()
        if report is None:
            self.summary.setText("Open a dataset to check it.")
            return
        self._eval_files = {f.path for f in report.eval_files}
        self._kinds = {f.path: f.kind for f in [*report.files, *report.eval_files]}
        many = len(self._kinds) > 1
        for f in report.findings:
            self.tree.addTopLevelItem(self._item(f, many))
        self._fit_columns()
        n_err, n_warn = len(report.errors), len(report.warnings)
        parts = []
        if n_err:
            parts.append(f"<b style='color:{TONE.error_mark}'>{n_err} error{'s' * (n_err != 1)}</b>")
        if n_warn:
            parts.append(f"<b style='color:{TONE.warning_mark}'>{n_warn} warning{'s' * (n_warn != 1)}</b>")
        if not parts:
            parts.append(f"<b style='color:{TONE.ok_mark}'>No problems found</b>")
        if report.token_checked:
            parts.append(f"token checks done (max length {report.stats.get('max_len')})")
        elif tokens_note:
            parts.append(tokens_note)
        self.summary.setText(" · ".join(parts))

    def _where(self, f: Finding, many: bool) -> str:
        name = Path(f.file).name
        word = place_word(self._kinds.get(f.file, ""))
        if not f.lines:
            return name
        first = f"{word} {f.lines[0]}"
        more = f" (+{len(f.lines) - 1} more)" if len(f.lines) > 1 else ""
        return f"{name}, {first}{more}" if many or self._eval_files else f"{first}{more}"

    def _item(self, f: Finding, many: bool) -> QTreeWidgetItem:
        item = QTreeWidgetItem([f.code, self._where(f, many), f.message])
        item.setIcon(0, dot_icon(f.severity))
        item.setToolTip(0, f"{f.severity}: {f.code}")
        item.setToolTip(1, f"{self._where(f, many)}\n{f.file}")
        item.setToolTip(2, f.message)
        item.setData(0, FINDING_ROLE, f)
        in_eval = f.file in self._eval_files
        item.setData(0, ROW_ROLE, None if in_eval or not f.rows else f.rows[0])
        if len(f.lines) > 1:
            word = place_word(self._kinds.get(f.file, ""))
            rows = f.rows if len(f.rows) == len(f.lines) else [None] * len(f.lines)
            notes = self._notes_by_place(f, word)
            for line, row in zip(f.lines[:MAX_PLACES], rows[:MAX_PLACES], strict=True):
                child = QTreeWidgetItem(["", f"{word} {line}", notes.get(line, "")])
                child.setToolTip(2, notes.get(line, ""))
                child.setData(0, ROW_ROLE, None if in_eval else row)
                child.setData(0, FINDING_ROLE, f)
                item.addChild(child)
            if len(f.lines) > MAX_PLACES:
                item.addChild(QTreeWidgetItem(["", f"… {len(f.lines) - MAX_PLACES:,} more", ""]))
        return item

    def _fit_columns(self) -> None:
        """Size "Problem" and "Where" to what they hold, within bounds that leave "What to do" most
        of the width; longer text elides in the middle and is whole in the tooltip and detail pane."""
        header = self.tree.header()
        for column, low, high in ((0, 150, 240), (1, 110, 260)):
            self.tree.resizeColumnToContents(column)
            header.resizeSection(column, max(low, min(high, header.sectionSize(column))))

    @staticmethod
    def _notes_by_place(f: Finding, word: str) -> dict[int, str]:
        """The detail notes the checks left, by the place each names first (``line 12: …``)."""
        pattern = re.compile(rf"\b{word} (\d+)")
        out: dict[int, str] = {}
        for n in f.notes:
            m = pattern.search(n)
            if m:
                out.setdefault(int(m.group(1)), n)
        return out

    # -- choosing --------------------------------------------------------------------------------
    def _on_current(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        self._show_detail(item)
        self._on_item(item)

    def _show_detail(self, item: QTreeWidgetItem | None) -> None:
        finding = item.data(0, FINDING_ROLE) if item is not None else None
        if finding is None:
            self.detail.clear()
            return
        color = SEVERITY_COLORS[finding.severity]
        html = (f"<b style='color:{color}'>{finding.severity.upper()}</b> <code>{escape(finding.code)}</code> "
                f"in {escape(Path(finding.file).name)}<br>{escape(finding.message)}")
        if item.parent() is not None and item.text(2):
            html += f"<br><br><b>{escape(item.text(1))}</b>: {escape(item.text(2))}"
        elif len(finding.notes) > 1:
            html += "<br><br>" + "<br>".join(escape(n) for n in finding.notes[:8])
        self.detail.setHtml(html)

    def _on_item(self, item: QTreeWidgetItem | None) -> None:
        if item is None:
            return
        row = item.data(0, ROW_ROLE)
        finding = item.data(0, FINDING_ROLE)
        if row is not None:
            self.row_chosen.emit(int(row))
        elif finding is not None and finding.file in self._eval_files:
            self.note.emit(f"This is in the eval file {Path(finding.file).name}; the table shows the training rows.")

    def items(self) -> list[QTreeWidgetItem]:
        return [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]

    def item_for(self, code: str) -> QTreeWidgetItem | None:
        return next((it for it in self.items() if it.text(0) == code), None)
