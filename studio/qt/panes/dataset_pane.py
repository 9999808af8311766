"""Dataset: which files to train on, and a first look at their rows."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.core.datasets.load import SUPPORTED_SUFFIXES
from studio.qt.state import AppState
from studio.qt.workers.task import TaskRunner

FILE_FILTER = "Datasets (" + " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES) + ");;All files (*)"


class RowsModel(QAbstractTableModel):
    """Virtual table over preview rows: (line, format, prompt, answer)."""

    HEADERS = ("Line", "Format", "Prompt", "Answer")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str, str, str]] = []

    def set_rows(self, rows: list[tuple[str, str, str, str]]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole) and index.isValid():
            value = self.rows[index.row()][index.column()]
            return value if role == Qt.ItemDataRole.ToolTipRole else value.replace("\n", " ⏎ ")[:300]
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None


def _preview(files: list[str]) -> tuple[list[tuple[str, str, str, str]], dict[str, int]]:
    from collections import Counter

    from studio.core.datasets.formats import RowShapeError, to_example
    from studio.core.datasets.load import read_rows

    rows, formats = [], Counter()
    for f in files:
        for r in read_rows(Path(f)):
            try:
                ex = to_example(r.data)
                formats[ex.fmt] += 1
                rows.append((f"{Path(f).name}:{r.line}", ex.fmt, ex.prompt_text, ex.answer_text))
            except RowShapeError as err:
                formats["unreadable"] += 1
                rows.append((f"{Path(f).name}:{r.line}", "?", str(err), ""))
    return rows, dict(formats)


class DatasetPane(QWidget):
    def __init__(self, state: AppState, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = tasks
        self.files_label = QLabel()
        self.files_label.setWordWrap(True)
        self.files_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary = QLabel("")
        self.summary.setObjectName("muted")
        open_button = QPushButton("Open…")
        open_button.setToolTip("Choose dataset files (.json, .jsonl, .csv, .parquet); you can also drop them on the window")
        open_button.clicked.connect(self.open_dialog)
        self.model = RowsModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        top = QHBoxLayout()
        top.addWidget(self.files_label, 1)
        top.addWidget(open_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        state.config_changed.connect(self._on_config)
        self._shown: list[str] = []
        self._on_config(state.config)

    def open_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open dataset", "", FILE_FILTER)
        if files:
            self.set_files(files)

    def set_files(self, files: list[str]) -> None:
        self.state.update(**{"dataset.train": [str(Path(f)) for f in files]})

    def _on_config(self, cfg) -> None:
        files = list(cfg.dataset.train)
        names = ", ".join(f"<b>{Path(f).name}</b>" for f in files) or "<i>no dataset yet — drop a file here</i>"
        evals = ", ".join(Path(f).name for f in cfg.dataset.eval)
        self.files_label.setText(f"Training data: {names}" + (f"<br>Eval data: {evals}" if evals else ""))
        if files != self._shown:
            self._shown = files
            self._reload(files)

    def _reload(self, files: list[str]) -> None:
        if not files:
            self.model.set_rows([])
            return
        self.summary.setText("Reading…")
        self.tasks.run(lambda _s: _preview(files), on_result=self._on_preview, on_error=self._on_error)

    def _on_preview(self, result) -> None:
        rows, formats = result
        self.model.set_rows(rows)
        fmt = ", ".join(f"{n} {k}" for k, n in sorted(formats.items(), key=lambda kv: -kv[1]))
        self.summary.setText(f"{len(rows):,} rows · {fmt}")

    def _on_error(self, message: str, _detail: str) -> None:
        self.model.set_rows([])
        self.summary.setText(f"⚠ {message}")
