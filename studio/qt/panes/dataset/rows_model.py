"""A virtual table over a dataset of any size.

While a file is read, the first rows arrive in chunks and are shown as they come. Once the scan
is done the model switches to the scan's compact row store (each row's JSON text in Arrow
chunks) and parses a row only when the view paints it, with a small cache for repaints; a
million-row file costs the table nothing per row it does not show.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt
from PySide6.QtGui import QColor

from studio.core.datasets.formats import FORMATS, detect_row_format, to_example
from studio.core.datasets.load import Row
from studio.core.datasets.pairs import to_pair
from studio.core.datasets.scan import ScanResult
from studio.core.datasets.validate import Report
from studio.qt.panes.dataset.badges import SEVERITY_COLORS, SEVERITY_RANK, dot_icon

CELL_CHARS = 240
TIP_CHARS = 1500
CACHE_ROWS = 4096


def _one_line(text: str, limit: int = CELL_CHARS) -> str:
    flat = text.replace("\r", "").replace("\n", " ⏎ ").replace("\t", " ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _tip(text: str) -> str:
    return text if len(text) <= TIP_CHARS else text[:TIP_CHARS] + f"… ({len(text):,} characters)"


class RowsModel(QAbstractTableModel):
    """Columns: where the row is in its file, its format, and its prompt and answer as text."""

    HEADERS = ("Line", "Format", "Prompt", "Answer")
    LINE, FORMAT, PROMPT, ANSWER = range(4)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._streamed: list[Row] = []
        self._result: ScanResult | None = None
        self._column_map: dict[str, str] = {}
        self._many_files = False
        self._severity: dict[int, str] = {}
        self._codes: dict[int, list[str]] = {}
        self._cache: OrderedDict[int, tuple[str, str, str, str, str]] = OrderedDict()

    # -- feeding ---------------------------------------------------------------------------------
    def clear(self, column_map: dict[str, str] | None = None, many_files: bool = False) -> None:
        self.beginResetModel()
        self._streamed = []
        self._result = None
        self._column_map = dict(column_map or {})
        self._many_files = many_files
        self._severity = {}
        self._codes = {}
        self._cache.clear()
        self.endResetModel()

    def append_rows(self, rows: list[Row]) -> None:
        """First rows, while the file is still being read."""
        if self._result is not None or not rows:
            return
        start = len(self._streamed)
        self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
        self._streamed.extend(rows)
        self.endInsertRows()

    def set_result(self, result: ScanResult) -> None:
        """Switch to the finished scan. Its rows start with the ones already shown, so the view keeps
        its place and only the rest is inserted."""
        self._column_map = dict(result.column_map)
        self._many_files = len(result.files) > 1
        shown = len(self._streamed)
        if shown > len(result) or any(self._streamed[k].line != result.store.lines[k] for k in (0, shown - 1) if shown):
            self.beginResetModel()
            self._streamed, self._result = [], result
            self._cache.clear()
            self.endResetModel()
            return
        self._result = result
        self._streamed = []
        self._cache.clear()
        if len(result) > shown:
            self.beginInsertRows(QModelIndex(), shown, len(result) - 1)
            self.endInsertRows()
        if shown:
            self.dataChanged.emit(self.index(0, 0), self.index(shown - 1, len(self.HEADERS) - 1))

    def set_report(self, report: Report | None) -> None:
        """Mark rows that findings point at (a dot in the severity's colour, codes in the tooltip)."""
        self._severity, self._codes = {}, {}
        if report is not None:
            eval_files = {f.path for f in report.eval_files}
            for f in report.findings:
                if f.file in eval_files:
                    continue
                for r in f.rows:
                    if SEVERITY_RANK[f.severity] > SEVERITY_RANK.get(self._severity.get(r, ""), 0):
                        self._severity[r] = f.severity
                    self._codes.setdefault(r, []).append(f.code)
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, 0))

    @property
    def result(self) -> ScanResult | None:
        return self._result

    # -- reading ---------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return len(self._result) if self._result is not None else len(self._streamed)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def severity(self, row: int) -> str | None:
        return self._severity.get(row)

    def row_text(self, row: int) -> tuple[str, str, str, str, str]:
        """(line label, format, prompt, answer, raw JSON) for one row, parsed on demand."""
        got = self._cache.get(row)
        if got is not None:
            self._cache.move_to_end(row)
            return got
        got = self._describe(row)
        self._cache[row] = got
        if len(self._cache) > CACHE_ROWS:
            self._cache.popitem(last=False)
        return got

    def _describe(self, row: int) -> tuple[str, str, str, str, str]:
        if self._result is not None:
            store = self._result.store
            source, line, raw = store.source(row), store.lines[row], store.raw(row)
            code = self._result.features.fmt[row]
            fmt = FORMATS[code] if code >= 0 else "?"
            data: Any = json.loads(raw)
        else:
            r = self._streamed[row]
            source, line, data = r.source, r.line, r.data
            raw = json.dumps(data, ensure_ascii=False, default=str)
            fmt = detect_row_format(data, self._column_map or None) or "?"
        label = f"{Path(source).name}:{line}" if self._many_files else str(line)
        try:
            if fmt == "preference":
                pair = to_pair(data)
                prompt, answer = pair.prompt_text, f"chosen: {pair.answer('chosen')}\nrejected: {pair.answer('rejected')}"
            else:
                ex = to_example(data, column_map=self._column_map or None)
                prompt, answer = ex.prompt_text, ("" if ex.text is not None else ex.answer_text)
        except Exception:
            prompt, answer = raw, ""
        return label, fmt, prompt, answer, raw

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _one_line(self.row_text(row)[col])
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.LINE:
                codes = self._codes.get(row)
                return ("Findings: " + ", ".join(dict.fromkeys(codes))) if codes else None
            return _tip(self.row_text(row)[col])
        if role == Qt.ItemDataRole.DecorationRole and col == self.LINE:
            sev = self._severity.get(row)
            return dot_icon(sev) if sev else None
        if role == Qt.ItemDataRole.ForegroundRole and col == self.FORMAT and self.row_text(row)[1] == "?":
            return QColor(SEVERITY_COLORS["error"])
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Vertical:
            return str(section + 1)
        return None
