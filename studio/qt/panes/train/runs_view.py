"""Every run ever journaled: status, results, overlaid curves, a ranking with a recommendation, and Resume.

Reads only the run folders on disk, so runs from the CLI, from a crashed app, or from another
machine's synced folder all appear the same way.
"""

from __future__ import annotations

import re
import time
from functools import cache
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.formatting import format_bytes_in, format_duration, run_method_label
from studio.core.training import runs
from studio.core.training.compare import groups, recommend, score_text
from studio.qt.errors import show_error
from studio.qt.style import SERIES, TONE
from studio.qt.widgets.curves import LivePlot

COLUMNS = ("Run", "Status", "Model", "Dataset", "Method", "Steps", "Train loss", "Eval loss", "Duration",
           "Tokens/s", "Peak memory")
RANK_COLUMNS = ("#", "Run", "Best eval", "Trainable params", "Method")
PALETTE = SERIES
STATUS_COLORS = {"completed": TONE.green, "running": TONE.blue, "stopped": TONE.amber, "failed": TONE.red,
                 "interrupted": TONE.red}
# What the overlay plot can show: label -> (event kind, attribute, y-axis label, scale). A "rewards."
# attribute is a key of the event's reward statistics, which only preference (DPO/ORPO) runs journal.
METRICS = {
    "Train loss": ("step", "loss", "loss", 1.0),
    "Eval loss": ("eval", "eval_loss", "eval loss", 1.0),
    "Learning rate": ("step", "lr", "lr", 1.0),
    "Tokens/s": ("step", "tokens_per_s", "tokens/s", 1.0),
    "Memory": ("step", "memory_bytes", "GiB", 1 / 2**30),
    "Reward margin": ("step", "rewards.margin", "reward margin", 1.0),
    "Preference accuracy": ("step", "rewards.accuracy", "chosen ranked first", 1.0),
    "Eval preference accuracy": ("eval", "rewards.accuracy", "chosen ranked first", 1.0),
}
PREFERENCE_METRICS = tuple(label for label, (_k, attr, _y, _s) in METRICS.items() if attr.startswith("rewards."))


def _metric(ev, attr: str) -> float | None:
    """The value ``attr`` names on ``ev``; None when the event lacks it (a reward an SFT step has not)."""
    if attr.startswith("rewards."):
        return ev.rewards.get(attr.removeprefix("rewards."))
    return getattr(ev, attr)


def _fmt(v, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)




def _params(n: int) -> str:
    if not n:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def short_name(name: str) -> str:
    """The run name without the folder's timestamp prefix, for legends and narrow columns."""
    return re.sub(r"^\d{8}-\d{6}-", "", name) or name


@cache
def _dot(color: str) -> QIcon:
    """A status dot: unlike a cell background it stays visible on selected rows."""
    pm = QPixmap(12, 12)
    pm.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pm)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(color))
    painter.setPen(QColor(color))
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pm)


def _method(s: runs.RunSummary) -> str:
    return run_method_label(s.method, s.objective)


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
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Select several runs (Ctrl/Shift-click) to overlay their curves")
        self.table.itemSelectionChanged.connect(self._on_selection)

        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected interrupted or stopped run from its last checkpoint")
        self.resume_button.setEnabled(False)
        self.resume_button.clicked.connect(self._on_resume)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Remove the selected runs' folders (a run still training cannot be deleted; "
                                      "adapters already in the Library stay)")
        self.delete_button.setEnabled(False)
        self.delete_button.clicked.connect(self._on_delete)
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Read the run folders again (runs from the command line appear too)")
        refresh.clicked.connect(self.refresh)
        self.hint = QLabel("")
        self.hint.setObjectName("muted")
        self.hint.setWordWrap(True)

        self.metric_box = QComboBox()
        self.metric_box.addItems([m for m in METRICS if m not in PREFERENCE_METRICS])
        self.metric_box.currentTextChanged.connect(lambda _t: self._on_selection())
        self.overlay = LivePlot("Selected runs", "loss", interval_ms=100)

        self.ranking = QTableWidget(0, len(RANK_COLUMNS))
        self.ranking.setHorizontalHeaderLabels(RANK_COLUMNS)
        self.ranking.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.ranking.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.ranking.verticalHeader().setVisible(False)
        rh = self.ranking.horizontalHeader()
        rh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        rh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.recommendation = QLabel("")
        self.recommendation.setWordWrap(True)
        self.recommendation.setTextFormat(Qt.TextFormat.RichText)

        buttons = QHBoxLayout()
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(refresh)
        buttons.addWidget(self.hint, 1)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.table)
        tl.addLayout(buttons)

        plot_host = QWidget()
        pl = QVBoxLayout(plot_host)
        pl.setContentsMargins(0, 0, 0, 0)
        metric_row = QHBoxLayout()
        metric_row.addWidget(QLabel("Overlay:"))
        metric_row.addWidget(self.metric_box)
        metric_row.addStretch(1)
        pl.addLayout(metric_row)
        pl.addWidget(self.overlay, 1)
        rank_host = QWidget()
        rl = QVBoxLayout(rank_host)
        rl.setContentsMargins(0, 0, 0, 0)
        self.rank_title = QLabel("Ranked by best eval loss")
        self.rank_title.setStyleSheet("font-weight: 600;")
        self.rank_title.setWordWrap(True)
        rl.addWidget(self.rank_title)
        rl.addWidget(self.ranking, 1)
        rl.addWidget(self.recommendation)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(plot_host)
        bottom.addWidget(rank_host)
        bottom.setSizes([560, 480])

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setSizes([240, 320])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self.refresh()

    # -- data -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        chosen = {s.run_dir for s in self.selected()} if self.summaries else set()
        self.summaries = runs.list_runs()
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.summaries))
        for i, s in enumerate(self.summaries):
            peak = format_bytes_in(s.peak_memory_bytes) if s.peak_memory_bytes else "—"
            values = (
                s.name, s.status, Path(s.model).name, ", ".join(Path(d).name for d in s.dataset), _method(s),
                f"{s.step}/{s.total_steps}", _fmt(s.train_loss), _fmt(s.eval_loss), format_duration(s.duration_s),
                f"{s.tokens_per_s:,.0f}" if s.tokens_per_s else "—", peak,
            )
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                if COLUMNS[j] == "Status":
                    color = STATUS_COLORS.get(s.status, TONE.quiet)
                    item.setIcon(_dot(color))
                    item.setForeground(QColor(color))
                    tip = s.reason or ("Still training" if s.status == "running" else "")
                    if s.status == "interrupted":
                        tip = ("The process ended without finishing (crash, kill or power loss). "
                               + ("Resume continues from the last checkpoint." if s.resumable
                                  else "No checkpoint was written, so it cannot be resumed."))
                    item.setToolTip(tip)
                elif COLUMNS[j] == "Run":
                    item.setToolTip(f"{s.run_dir}\nstarted {time.strftime('%Y-%m-%d %H:%M', time.localtime(s.started))}")
                elif COLUMNS[j] == "Eval loss" and s.best_eval_loss is not None:
                    item.setToolTip(f"best {s.best_eval_loss:.4f}")
                elif COLUMNS[j] == "Peak memory" and s.estimated_peak_bytes:
                    item.setToolTip(f"estimated {format_bytes_in(s.estimated_peak_bytes)}")
                if j >= 5:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.blockSignals(False)
        self._fill_ranking()
        rows = [i for i, s in enumerate(self.summaries) if s.run_dir in chosen]
        if rows:
            self.select_rows(rows)
        else:
            self._on_selection()
        interrupted = sum(s.status == "interrupted" for s in self.summaries)
        self.hint.setText(
            f"{len(self.summaries)} run(s)" + (f", {interrupted} interrupted" if interrupted else "")
            + ". Select several to overlay their curves." if self.summaries
            else "No runs yet. Finished, stopped and interrupted runs appear here."
        )

    def _fill_ranking(self) -> None:
        """One ranking per objective: SFT runs by eval loss, DPO/ORPO runs by eval preference accuracy
        then reward margin (their losses mean something else). Several objectives get a heading row each."""
        ranking = groups(self.summaries)
        rec = recommend(self.summaries)
        picks = {r.run_dir for r in rec.picks} if rec is not None else set()
        headed = len(ranking) > 1
        self.ranking.clearSpans()
        self.ranking.setRowCount(sum(len(g.runs) for g in ranking) + (len(ranking) if headed else 0))
        bold = QFont()
        bold.setBold(True)
        row = 0
        for g in ranking:
            if headed:
                head = QTableWidgetItem(f"{g.label} runs, by {g.measure}")
                head.setFont(bold)
                head.setForeground(QColor(TONE.quiet))
                self.ranking.setItem(row, 0, head)
                self.ranking.setSpan(row, 0, 1, len(RANK_COLUMNS))
                row += 1
            for i, s in enumerate(g.runs):
                picked = s.run_dir in picks
                values = (str(i + 1), ("★ " if picked else "") + short_name(s.name), score_text(s),
                          _params(s.trainable_params), _method(s))
                for j, v in enumerate(values):
                    item = QTableWidgetItem(v)
                    if picked:
                        item.setFont(bold)
                        item.setBackground(QColor(TONE.best_tint))
                        item.setForeground(QColor(TONE.tint_ink))  # dark ink on the light tint, in the dark scheme too
                    if j == 1:
                        item.setToolTip(str(s.run_dir))
                    if j == 2:
                        item.setToolTip(f"ranked by {g.measure}" + (
                            f"; best eval loss {s.best_eval_loss:.4f}, not compared with other objectives'"
                            if g.objective != "sft" and s.best_eval_loss is not None else ""))
                    if j in (0, 2, 3):
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.ranking.setItem(row, j, item)
                row += 1
        if headed:
            self.rank_title.setText("Ranked within each objective (their losses are not comparable)")
        else:
            self.rank_title.setText(f"Ranked by {ranking[0].measure if ranking else 'best eval loss'}")
        if rec is None:
            self.recommendation.setText("Runs with an eval set are ranked here once they have an eval loss "
                                        "(preference runs: an eval after their first step).")
        else:
            why = rec.why
            for r in rec.picks:
                why = why.replace(r.name, short_name(r.name))
            self.recommendation.setText(f"<b>Recommended:</b> {why}")

    # -- selection ---------------------------------------------------------------------------------
    def selected(self) -> list[runs.RunSummary]:
        rows = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        return [self.summaries[r] for r in rows if r < len(self.summaries)]

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
        self.delete_button.setEnabled(bool(sel) and all(s.status != "running" for s in sel))
        journals = [runs.effective_events(runs.read_events(s.run_dir)) for s in sel]
        self._offer_metrics(any(getattr(ev, "rewards", None) for events in journals for ev in events))
        kind, attr, y_label, scale = METRICS[self.metric_box.currentText()]
        self.overlay.setLabel("left", y_label)
        self.overlay.setTitle(f"{self.metric_box.currentText()} of the selected runs" if sel
                              else "Select runs above to compare their curves", size="11pt")
        self.overlay.remove_curves()
        for k, s in enumerate(sel):
            name = short_name(s.name)
            name = name if len(name) <= 32 else name[:31] + "…"
            if name in self.overlay.curve_names():  # same config run twice: keep both curves apart
                name = f"{name} ({time.strftime('%H:%M', time.localtime(s.started))}, #{k + 1})"
            self.overlay.add_curve(name, PALETTE[k % len(PALETTE)], symbol="o" if kind == "eval" else None)
            for ev in journals[k]:
                value = _metric(ev, attr) if ev.kind == kind else None
                if value is not None:
                    self.overlay.add(name, ev.step, value * scale)
        self.overlay.redraw_now()

    def _offer_metrics(self, preference: bool) -> None:
        """The reward curves are offered while a selected run has them; the choice stays when it can."""
        offered = [m for m in METRICS if preference or m not in PREFERENCE_METRICS]
        if offered == [self.metric_box.itemText(i) for i in range(self.metric_box.count())]:
            return
        current = self.metric_box.currentText()
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        self.metric_box.addItems(offered)
        self.metric_box.setCurrentText(current if current in offered else offered[0])
        self.metric_box.blockSignals(False)

    def _on_delete(self) -> None:
        sel = [s for s in self.selected() if s.status != "running"]
        if not sel:
            return
        names = "\n".join(f"• {s.name} ({s.status})" for s in sel[:8]) + (f"\n… {len(sel) - 8} more" if len(sel) > 8 else "")
        answer = QMessageBox.question(
            self, "Delete runs", f"Delete {len(sel)} run folder(s) with their curves and checkpoints?\n\n{names}\n\n"
            "Adapters already in the Library are kept.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_runs(sel)

    def delete_runs(self, chosen: list[runs.RunSummary]) -> None:
        """Delete these runs' folders; a refusal (still training, not writable) is shown, the rest go."""
        problems = []
        for s in chosen:
            try:
                runs.delete_run(s.run_dir)
            except StudioError as err:
                problems.append(err.user_text())
        self.table.clearSelection()
        self.refresh()
        if problems:
            show_error(self, "\n".join(problems), title="Some runs were not deleted")

    def _on_resume(self) -> None:
        sel = self.selected()
        if len(sel) == 1 and sel[0].resumable:
            self.resume_requested.emit(sel[0])
