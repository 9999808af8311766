"""Dataset workbench: open files, see every row, find what is wrong, see what the model sees, fix
it without touching the original.

Layout: a top bar (open, files, format, fingerprint, progress), then a splitter with the rows
table on the left and tabs on the right (Findings / What the model sees / Stats / Split & clean).
All reading, checking, tokenizing and writing runs in workers (the dataset check is
``core/datasets/pipeline.py``, the preview and clean-up ``dataset/jobs.py``); the pane only edits
the run config in ``AppState`` and paints results. A newer request always wins: reads and checks
share one task slot, so starting one cancels the last and its late results are dropped. The top
bar (``top_bar.py``) and the selected row's preview (``row_preview.py``) are mixed in from their
own modules.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHeaderView,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core import paths as studio_paths
from studio.core.config import RunConfig
from studio.core.datasets import pipeline
from studio.core.datasets.readers import SUPPORTED_SUFFIXES
from studio.core.errors import StudioError, describe_exception
from studio.qt.dialogs.column_mapping import ColumnMappingDialog
from studio.qt.panes.dataset import jobs
from studio.qt.panes.dataset.findings_view import FindingsView
from studio.qt.panes.dataset.preview_view import PreviewView
from studio.qt.panes.dataset.recent import remember
from studio.qt.panes.dataset.row_preview import RowPreview
from studio.qt.panes.dataset.rows_model import RowsModel
from studio.qt.panes.dataset.split_clean_view import SplitCleanView
from studio.qt.panes.dataset.stats_view import StatsView
from studio.qt.panes.dataset.top_bar import TopBar
from studio.qt.state import AppState
from studio.qt.workers.task import Task, TaskRunner, TaskSlot

FILE_FILTER = "Datasets (" + " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES) + ");;All files (*)"


def _scrolling(widget: QWidget) -> QScrollArea:
    """A tab whose content scrolls when the window is small, instead of forcing the window wider."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(widget)
    return area


class DatasetPane(TopBar, RowPreview, QWidget):
    def __init__(self, state: AppState, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = tasks
        self.tokenizers = pipeline.TokenizerCache()
        self.loaded: pipeline.Loaded | None = None
        self._spec: pipeline.LoadSpec | None = None
        self._jobs = TaskSlot(tasks, self)   # the read or check under way
        self._reading = False
        self._preview_task: Task | None = None
        self._preview_wanted: int | None = None
        self._clean_task: Task | None = None
        self._dialog: ColumnMappingDialog | None = None
        self._recheck_when_done = False

        self._build_top_bar()
        self._build_body()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(6)
        layout.addLayout(self._top)
        layout.addLayout(self._second)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)

        state.config_changed.connect(self._on_config)
        state.model_ready.connect(self._on_model_ready)
        self._on_config(state.config)

    # -- building --------------------------------------------------------------------------------
    def _build_body(self) -> None:
        # Parented, so Qt deletes it with the pane on the GUI thread (a Python-owned model could be
        # freed by a garbage collection that happens to run in a worker thread).
        self.model = RowsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(RowsModel.PROMPT, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(RowsModel.ANSWER, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(RowsModel.LINE, 70)
        header.resizeSection(RowsModel.FORMAT, 112)
        self.table.setMinimumWidth(220)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)

        self.findings = FindingsView()
        self.findings.row_chosen.connect(self.show_row)
        self.findings.note.connect(self.status.setText)
        self.preview = PreviewView()
        self.stats = StatsView()
        self.split_clean = SplitCleanView()
        self.split_clean.split_changed.connect(self._apply_overrides)
        self.split_clean.choose_eval_files.connect(self.choose_eval_files)
        self.split_clean.clean_requested.connect(self.write_cleaned_copy)
        self.split_clean.use_cleaned.connect(self.use_cleaned_copy)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.findings, "Findings")
        self.tabs.addTab(self.preview, "What the model sees")
        self.tabs.addTab(self.stats, "Stats")
        self.tabs.addTab(_scrolling(self.split_clean), "Split && clean")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([560, 520])

    # -- choosing files --------------------------------------------------------------------------
    def open_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open dataset", self._start_dir(), FILE_FILTER)
        if files:
            self.set_files(files)

    def add_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add dataset files", self._start_dir(), FILE_FILTER)
        if files:
            self.add_files(files)

    def choose_eval_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Choose eval files", self._start_dir(), FILE_FILTER)
        if files:
            self._apply_overrides({"dataset.eval": [str(Path(f)) for f in files]})
        else:
            self.split_clean.set_config(self.state.config)   # back to what the config says

    def _start_dir(self) -> str:
        train = self.state.config.dataset.train
        return str(Path(train[0]).parent) if train else ""

    def set_files(self, files: list[str]) -> None:
        """Train on these files (in this order, as one dataset). Opening the same files again re-reads them."""
        paths = [str(Path(f)) for f in files]
        remember(paths)
        if paths == list(self.state.config.dataset.train):
            self._read()
            return
        self._apply_overrides({"dataset.train": paths, **self._eval_for(paths)})

    def _eval_for(self, train: list[str]) -> dict:
        """The demo's held-out file belongs to the demo: another training file must not be judged (or
        trained) against it, and reopening the demo brings it back."""
        demo_train, demo_eval = str(studio_paths.demo_dataset()), str(studio_paths.demo_eval_dataset())
        current = [str(Path(p)) for p in self.state.config.dataset.eval]
        if train == [demo_train]:
            return {} if current else {"dataset.eval": [demo_eval]}
        return {"dataset.eval": []} if current == [demo_eval] else {}

    def add_files(self, files: list[str]) -> None:
        """Append files to the current training data."""
        current = list(self.state.config.dataset.train)
        self.set_files(current + [str(Path(f)) for f in files if str(Path(f)) not in current])

    def use_cleaned_copy(self, path: str) -> None:
        if path:
            self.set_files([path])

    def _apply_overrides(self, overrides: dict) -> None:
        try:
            self.state.update(**overrides)
        except StudioError as err:
            self._show_banner(f"⚠ {err.message}")

    # -- reacting to the config ------------------------------------------------------------------
    def _on_config(self, cfg: RunConfig) -> None:
        spec = pipeline.LoadSpec.from_config(cfg)
        previous, self._spec = self._spec, spec
        self.split_clean.set_config(cfg)
        self._show_files()
        if previous is None or spec.read_key != previous.read_key:
            if spec.train:
                remember(list(spec.train))  # whatever is open, the demo at first launch included
            self._read()
        elif spec.check_key != previous.check_key:
            self._check()

    def _on_model_ready(self, _path: str) -> None:
        """The model (and so its tokenizer) exists now: run the token checks that had to be skipped."""
        if self.busy:
            self._recheck_when_done = True
        elif self.loaded is not None and not self.loaded.report.token_checked:
            self._check()

    @property
    def busy(self) -> bool:
        """A read or check is under way."""
        return self._jobs.busy

    def _read(self) -> None:
        spec = self._spec
        assert spec is not None
        self._jobs.cancel()
        self.loaded = None
        self.model.clear(spec.columns, many_files=len(spec.train) > 1)
        self.table.horizontalHeader().resizeSection(RowsModel.LINE, 150 if len(spec.train) > 1 else 70)
        self._show_loaded_nothing()
        if not spec.train:
            self.status.setText("")
            return
        self._reading = True
        self._set_progress(-1.0, "Reading…")
        tokenizers = self.tokenizers
        self._jobs.start(
            lambda s: pipeline.read(s, spec, tokenizers),
            on_partial=self._on_partial,
            on_progress=self._set_progress,
            on_result=self._on_done,
            on_error=self._on_failed,
        )

    def _check(self) -> None:
        """Run the checks again on rows already read (max length, model, split changed)."""
        spec = self._spec
        if self._reading or self.loaded is None or spec is None:
            if spec is not None and spec.train:
                self._read()
            return
        loaded, tokenizers = self.loaded, self.tokenizers
        self._set_progress(-1.0, "Checking…")
        self._jobs.start(
            lambda s: pipeline.check(s, loaded, spec, tokenizers),
            on_progress=self._set_progress,
            on_result=self._on_done,
            on_error=self._on_failed,
        )
        self._refresh_preview()

    # -- results ---------------------------------------------------------------------------------
    def _on_partial(self, value) -> None:
        if isinstance(value, pipeline.RowsRead):
            self.model.append_rows(value.rows)
            if self.table.currentIndex().row() < 0 and self.model.rowCount():
                self.table.selectRow(0)
        elif isinstance(value, pipeline.Loaded):
            self._reading = False
            self._show_loaded(value)

    def _on_done(self, value) -> None:
        self._reading = False
        self.progress.hide()
        self.status.setText("")
        if isinstance(value, pipeline.Loaded):
            self._show_loaded(value)
            if self._recheck_when_done and not value.report.token_checked:
                self._recheck_when_done = False
                self._check()
        self._recheck_when_done = False

    def _on_failed(self, exc: BaseException) -> None:
        message = describe_exception(exc)[0]
        self._reading = False
        self.progress.hide()
        self.status.setText("")
        self._show_banner(f"⚠ {message}")

    def _show_loaded_nothing(self) -> None:
        self.findings.set_report(None)
        self.stats.set_stats(None)
        self.split_clean.set_rows(0, None)
        self.split_clean.set_report(None)
        self.preview.show_message("Select a row to see it as the model will.")
        self.format_label.setText("")
        self.rows_label.setText("")
        self.fingerprint_label.setText("")
        self.banner.hide()
        self.map_button.setVisible(bool(self._spec and self._spec.column_map))

    def _show_loaded(self, loaded: pipeline.Loaded) -> None:
        self.loaded = loaded
        result, report = loaded.result, loaded.report
        if self.model.result is not result:
            self.model.set_result(result)
        self.model.set_report(report)
        note = "" if report.token_checked else loaded.tokens_note
        if note and loaded.spec.model_path and loaded.spec.model_path == self.state.model_preparing:
            note = "Token checks wait for the model (converting…)"  # they run once model_ready comes
        self.findings.set_report(report, note)
        self.stats.set_stats(report.stats, note)
        self.split_clean.set_rows(len(result), len(loaded.eval_result) if loaded.eval_result is not None else None)
        self.split_clean.set_report(report)
        self._show_summary(loaded)
        if self.model.rowCount() and self.table.currentIndex().row() < 0:
            self.table.selectRow(0)
        else:
            self._refresh_preview()

    # -- column mapping --------------------------------------------------------------------------
    def open_column_mapping(self) -> ColumnMappingDialog | None:
        """Open the mapping dialog (non-blocking); accepting it saves the mapping in the run config."""
        if self.loaded is None or not len(self.loaded.result):
            return None
        result = self.loaded.result
        sample = None
        fmt = result.features.fmt
        first = next((i for i in range(min(len(result), 10000)) if fmt[i] < 0), 0)
        try:
            sample = json.loads(result.store.raw(first))
        except ValueError:
            sample = None
        columns = list(result.columns) or (sorted(map(str, sample)) if isinstance(sample, dict) else [])
        dialog = ColumnMappingDialog(columns, sample, result.column_map, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)   # Qt frees it, on this thread
        dialog.accepted.connect(lambda d=dialog: self._apply_overrides({"dataset.column_map": d.mapping()}))
        dialog.open()
        self._dialog = dialog
        return dialog

    # -- cleaning --------------------------------------------------------------------------------
    def write_cleaned_copy(self, actions: list[str]) -> None:
        loaded = self.loaded
        if loaded is None or self._clean_task is not None:
            return
        self.split_clean.set_busy(True)
        self._clean_task = self.tasks.run(
            lambda s: jobs.clean(s, loaded.result, loaded.report, actions),
            on_result=self._on_cleaned,
            on_error=lambda e: self.split_clean.show_clean_error(describe_exception(e)[0]),
            on_finished=self._on_clean_finished,
            owner=self,
        )

    def _on_cleaned(self, cleaned: jobs.Cleaned) -> None:
        in_use = cleaned.path in self.state.config.dataset.train
        self.split_clean.show_cleaned(cleaned.path, cleaned.kept, cleaned.dropped, cleaned.stripped,
                                      cleaned.original_fingerprint, in_use)

    def _on_clean_finished(self) -> None:
        self._clean_task = None
        self.split_clean.set_busy(False)
