"""The adapter table of the Library room: sortable by any column, filtered by a search text.

Rows carry the entry id, never a row index, so selection survives sorting and filtering. Numeric
columns (eval loss, created, size) sort by value rather than by their formatted text: "9.5 MiB"
must come before "10.0 KiB" only if it is larger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from studio.core.formatting import format_bytes, run_method_label
from studio.core.library.registry import LibraryEntry

COLUMNS = ("Name", "Base model", "Method", "Eval loss", "Created", "Size")
_HEADER_TIPS = {3: "Final eval loss of the training run (lower is better)", 4: "When the adapter entered the library"}
ID_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def final_eval_loss(entry: LibraryEntry) -> float | None:
    value = entry.metrics.get("eval_loss")
    return float(value) if isinstance(value, (int, float)) else None


def eval_tip(entry: LibraryEntry) -> str:
    """Which step the eval loss was measured at, or why there is none (a run stopped before its
    first evaluation, a run without an eval set)."""
    if final_eval_loss(entry) is None:
        return str(entry.metrics.get("eval_note") or "No eval loss was recorded for this entry.")
    step, steps = entry.metrics.get("eval_step"), entry.metrics.get("steps")
    if isinstance(step, int) and isinstance(steps, int) and step != steps:
        return f"Last eval loss, measured at step {step} of the {steps} this adapter was trained for."
    return "Final eval loss of the training run (lower is better)."


class _SortItem(QTableWidgetItem):
    """Sorts by the value stored under SORT_ROLE; missing values sort last in ascending order."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is None or theirs is None:
            return mine is not None and theirs is None
        return mine < theirs


def _row_values(e: LibraryEntry) -> list[tuple[str, Any]]:
    loss = final_eval_loss(e)
    return [
        (e.name, e.name.lower()),
        (Path(e.base_model).name or "—", (Path(e.base_model).name or "").lower()),
        (run_method_label(e.method, e.objective), run_method_label(e.method, e.objective)),
        ("—" if loss is None else f"{loss:.4f}", loss),
        (e.created[:16].replace("T", " "), e.created),
        (format_bytes(e.size_bytes, 1), e.size_bytes),
    ]


def _search_text(e: LibraryEntry) -> str:
    return " ".join((e.name, e.base_model, e.method, e.objective, e.kind, e.dataset_fingerprint, e.run_dir, e.id)).lower()


class AdapterTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        # "demo-json-answers-12" must stay tellable from "-11" when squeezed: cut the middle, keep the end.
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSortIndicatorShown(True)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(1, 150)
        header.setMinimumSectionSize(60)
        for col, tip in _HEADER_TIPS.items():
            self.horizontalHeaderItem(col).setToolTip(tip)
        self.entries: dict[str, LibraryEntry] = {}
        self._filter = ""
        self.setSortingEnabled(True)
        self.sortItems(4, Qt.SortOrder.DescendingOrder)  # newest first, like the library lists them

    def set_entries(self, entries: list[LibraryEntry]) -> None:
        """Replace the rows, keeping the selection and the user's sort column."""
        keep = self.selected_id()
        self.setSortingEnabled(False)  # inserting into a sorted table moves rows under our feet
        self.entries = {e.id: e for e in entries}
        self.setRowCount(len(entries))
        for i, e in enumerate(entries):
            for j, (text, key) in enumerate(_row_values(e)):
                item = _SortItem(text)
                item.setData(ID_ROLE, e.id)
                item.setData(SORT_ROLE, key)
                if j == 0:
                    item.setToolTip(f"{e.name}\n{e.path}")
                elif j == 1:
                    item.setToolTip(e.base_model)
                elif j == 3:
                    item.setToolTip(eval_tip(e))
                if j >= 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(i, j, item)
        self.setSortingEnabled(True)
        self.resizeColumnToContents(1)  # base names are long: fit them, but leave the name column room
        self.horizontalHeader().resizeSection(1, min(max(self.columnWidth(1), 110), 220))
        self.apply_filter(self._filter)
        if keep in self.entries:
            self.select_id(keep)

    def apply_filter(self, text: str) -> int:
        """Hide rows whose name, base, method, dataset or run do not contain every word; returns rows shown."""
        self._filter = text
        words = text.lower().split()
        shown = 0
        for row in range(self.rowCount()):
            entry = self.entry_at(row)
            hay = _search_text(entry) if entry else ""
            hide = bool(words) and not all(w in hay for w in words)
            self.setRowHidden(row, hide)
            shown += not hide
        return shown

    def visible_rows(self) -> list[int]:
        return [r for r in range(self.rowCount()) if not self.isRowHidden(r)]

    def entry_at(self, row: int) -> LibraryEntry | None:
        item = self.item(row, 0)
        return self.entries.get(item.data(ID_ROLE)) if item is not None else None

    def selected_id(self) -> str | None:
        rows = self.selectionModel().selectedRows() if self.selectionModel() else []
        if not rows:
            return None
        entry = self.entry_at(rows[0].row())
        return entry.id if entry else None

    def selected_entry(self) -> LibraryEntry | None:
        key = self.selected_id()
        return self.entries.get(key) if key else None

    def select_id(self, entry_id: str) -> None:
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None and item.data(ID_ROLE) == entry_id:
                self.selectRow(row)
                self.scrollToItem(item)
                return
