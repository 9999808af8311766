"""Every run ever journaled: status, results, overlaid curves, a recommendation, and Resume.

Reads only the run folders on disk, so runs from the CLI, from a crashed app, or from another
machine's synced folder all appear the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.training import runs
from studio.core.training.compare import recommend
from studio.qt.widgets.curves import LivePlot

COLUMNS = ("Run", "Status", "Model", "Dataset", "Method", "Step", "Train loss", "Best eval", "Duration",
           "Tokens/s", "Peak memory")
PALETTE = ("#2b6cb0", "#dd6b20", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#319795", "#d53f8c")
STATUS_COLORS = {"completed": "#2f855a", "running": "#2b6cb0", "stopped": "#b7791f", "failed": "#c53030",
                 "interrupted": "#c53030"}


def _fmt(v, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)


def _dur(s: float) -> str:
    m, sec = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class RunsView(QWidget):
    resume_requested = Signal(object)  # RunSummary

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summaries: list[runs.RunSummary] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setSortingEnabled(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.recommendation = QLabel("")
        self.recommendation.setWordWrap(True)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected interrupted or stopped run from its last checkpoint")
        self.resume_button.setEnabled(False)
        self.resume_button.clicked.connect(self._on_resume)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.overlay = LivePlot("Selected runs", "loss", interval_ms=100)
        buttons = QHBoxLayout()
        buttons.addWidget(self.resume_button)
        buttons.addWidget(refresh)
        buttons.addWidget(self.recommendation, 1)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.table)
        tl.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.overlay)
        split.setSizes([260, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self.refresh()

    def refresh(self) -> None:
        self.summaries = runs.list_runs()
        self.table.setRowCount(len(self.summaries))
        for i, s in enumerate(self.summaries):
            values = (
                s.name, s.status, Path(s.model).name, ", ".join(Path(d).name for d in s.dataset), s.method,
                f"{s.step}/{s.total_steps}", _fmt(s.train_loss), _fmt(s.best_eval_loss), _dur(s.duration_s),
                f"{s.tokens_per_s:,.0f}", f"{s.peak_memory_bytes / 2**30:.2f} GiB" if s.peak_memory_bytes else "—",
            )
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                if j == 1:
                    item.setForeground(Qt.GlobalColor.white)
                    from PySide6.QtGui import QColor

                    item.setBackground(QColor(STATUS_COLORS.get(s.status, "#718096")))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    if s.reason:
                        item.setToolTip(s.reason)
                if j == 0:
                    item.setToolTip(f"{s.run_dir}\nstarted {time.strftime('%Y-%m-%d %H:%M', time.localtime(s.started))}")
                self.table.setItem(i, j, item)
        rec = recommend(self.summaries)
        self.recommendation.setText(f"Recommended: {rec.why}" if rec else "")
        self._on_selection()

    def selected(self) -> list[runs.RunSummary]:
        return [self.summaries[i.row()] for i in self.table.selectionModel().selectedRows()]

    def select_rows(self, rows: list[int]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for r in rows:
            self.table.selectRow(r)
        self.table.setSelectionMode(mode)

    def _on_selection(self) -> None:
        sel = self.selected()
        self.resume_button.setEnabled(len(sel) == 1 and sel[0].resumable)
        self.overlay.remove_curves()
        for k, s in enumerate(sel):
            color = PALETTE[k % len(PALETTE)]
            name = s.name[-28:]
            self.overlay.add_curve(name, color)
            for ev in runs.effective_events(runs.read_events(s.run_dir)):
                if ev.kind == "step":
                    self.overlay.add(name, ev.step, ev.loss)

    def _on_resume(self) -> None:
        sel = self.selected()
        if len(sel) == 1 and sel[0].resumable:
            self.resume_requested.emit(sel[0])
