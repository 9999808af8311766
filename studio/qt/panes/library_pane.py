"""Library: the adapters you trained, and Merge & export into a model other tools open."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core import paths
from studio.qt.errors import show_error
from studio.qt.state import AppState
from studio.qt.workers.task import TaskRunner

COLUMNS = ("Name", "Base model", "Method", "Eval loss", "Created", "Size")


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class LibraryPane(QWidget):
    def __init__(self, state: AppState, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = tasks
        self.entries: list = []
        self.busy = False  # an export is running
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.export_button = QPushButton("Merge && export…")
        self.export_button.setObjectName("primary")
        self.export_button.setToolTip("Merge the adapter into its base model and write a folder any transformers app loads")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(lambda: self._export())
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.progress = QProgressBar()
        self.progress.hide()
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Select an adapter to see where it came from.")
        self.details.setMaximumHeight(180)
        self.empty_label = QLabel("No adapters yet. Train one in the Train pane; it appears here when it finishes.")
        self.empty_label.setObjectName("muted")
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(refresh)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.details)
        state.adapters_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        from studio.core.library.registry import list_entries

        self.entries = list_entries()
        self.table.setRowCount(len(self.entries))
        for i, e in enumerate(self.entries):
            eval_loss = e.metrics.get("eval_loss")
            values = (e.name, Path(e.base_model).name, e.method.upper(),
                      "—" if eval_loss is None else f"{eval_loss:.4f}", e.created[:16].replace("T", " "),
                      _human_bytes(e.size_bytes))
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setData(Qt.ItemDataRole.UserRole, e.id)
                self.table.setItem(i, j, item)
        self.empty_label.setVisible(not self.entries)
        self._on_selection()

    def selected(self):
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows else None

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def _on_selection(self) -> None:
        entry = self.selected()
        self.export_button.setEnabled(entry is not None and not self.busy)
        if entry is None:
            self.details.clear()
            return
        m = entry.metrics
        lines = [
            f"Adapter:   {entry.name}  ({entry.id})",
            f"Base:      {entry.base_model}",
            f"Dataset:   {entry.dataset_fingerprint or '—'}",
            f"Method:    {entry.method}",
            "Metrics:   " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()),
            f"Run:       {entry.run_dir or '—'}",
            f"Stored in: {entry.path}",
        ]
        self.details.setPlainText("\n".join(lines))

    def _export(self, out_dir: str | None = None) -> None:
        entry = self.selected()
        if entry is None:
            return
        if not out_dir:
            default = str(paths.exports_dir() / f"{entry.name}-merged")
            out_dir, _ = QFileDialog.getSaveFileName(self, "Export merged model to folder", default)
        if not out_dir:
            return
        from studio.core.library.merge import export_model

        adapter_dir = Path(entry.path) / "adapter"
        self.busy = True
        self.progress.show()
        self.progress.setRange(0, 100)
        self.export_button.setEnabled(False)
        self.tasks.run(
            lambda s: export_model(adapter_dir, Path(out_dir), merge=True, progress=s.progress),
            on_progress=lambda f, m: (self.progress.setValue(int(f * 100)), self.progress.setFormat(f"{m} %p%")),
            on_result=self._on_exported,
            on_error=self._on_export_failed,
        )

    def _on_exported(self, report) -> None:
        self.busy = False
        self.progress.hide()
        self._on_selection()
        self.last_export = report
        self.details.appendPlainText(f"\nExported to {report.out_dir}\n{report.summary()}")

    def _on_export_failed(self, message: str, detail: str) -> None:
        self.busy = False
        self.progress.hide()
        self._on_selection()
        show_error(self, message, detail, title="Export failed")
