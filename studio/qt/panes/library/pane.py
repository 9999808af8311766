"""Library: the adapters you trained or imported, where each came from, export, and a playground.

Two tabs. *Adapters*: a searchable, sortable table; the selected adapter's lineage (base model
and whether it is unchanged, dataset fingerprint, run, full config, final metrics); rename,
delete to trash (with undo and a trash to restore from), import of a PEFT folder, and export with
its equivalence proof shown, failed or not. *Playground*: the base and adapters side by side.

Every change goes through ``studio.core.library.registry`` and is announced with
``state.adapters_changed``; the pane refreshes from that signal like any other listener.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import describe_exception
from studio.core.library import registry
from studio.core.library.registry import LibraryEntry
from studio.qt.errors import show_error
from studio.qt.panes.library.details import LineageView
from studio.qt.panes.library.export import ExportChoice, ExportDialog
from studio.qt.panes.library.export_result import ExportResultView
from studio.qt.panes.library.table import AdapterTable
from studio.qt.panes.library.trash import TrashDialog
from studio.qt.panes.playground.pane import PlaygroundPane
from studio.qt.state import AppState
from studio.qt.workers.task import TaskRunner


class LibraryPane(QWidget):
    def __init__(self, state: AppState, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = tasks
        self.entries: list[LibraryEntry] = []
        self.busy = False  # an export is running
        self.last_export = None
        self.export_dialog: ExportDialog | None = None
        self.trash_dialog: TrashDialog | None = None
        self._last_trashed: str | None = None

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by name, base model, method, dataset or run…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._on_search)
        self.count_label = QLabel("")
        self.count_label.setObjectName("muted")
        self.import_button = QPushButton("Import adapter…")
        self.import_button.setToolTip("Add a PEFT adapter folder made elsewhere; it is checked against its base model")
        self.import_button.clicked.connect(lambda: self.import_folder())
        self.trash_button = QPushButton("Trash…")
        self.trash_button.setToolTip("Restore deleted adapters, or empty the trash")
        self.trash_button.clicked.connect(self.open_trash)

        self.table = AdapterTable()
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.doubleClicked.connect(lambda _i: self.try_in_playground())
        self.empty_label = QLabel("No adapters yet. Train one in the Train room (it appears here when it finishes), "
                                  "or import a PEFT adapter folder.")
        self.empty_label.setObjectName("muted")
        self.empty_label.setWordWrap(True)

        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(lambda: self.rename_selected())
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Move to the trash (restorable until the trash is emptied)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.playground_button = QPushButton("Try in playground")
        self.playground_button.setToolTip("Compare this adapter with its base model on your own prompts")
        self.playground_button.clicked.connect(self.try_in_playground)
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("primary")
        self.export_button.setToolTip("Merged model (fp32/bf16/fp16), adapter only (folder or zip), or GGUF with an "
                                      "Ollama Modelfile — each proven equivalent to base + adapter")
        self.export_button.clicked.connect(lambda: self._export())
        self.status = QLabel("")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo_delete)
        self.undo_button.hide()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.hide()
        self.details = LineageView()
        self.export_result = ExportResultView()
        self.playground = PlaygroundPane(state, tasks)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._adapters_tab(), "Adapters")
        self.tabs.addTab(self.playground, "Playground")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        state.adapters_changed.connect(self.refresh)
        self.refresh()

    def _adapters_tab(self) -> QWidget:
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.count_label)
        top.addWidget(self.import_button)
        top.addWidget(self.trash_button)
        actions = QHBoxLayout()
        for b in (self.rename_button, self.delete_button, self.playground_button):
            actions.addWidget(b)
        actions.addStretch(1)
        actions.addWidget(self.export_button)
        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.empty_label)
        table_layout.addWidget(self.table, 1)
        table_layout.addLayout(actions)
        table_layout.addWidget(self.progress)
        left = QSplitter(Qt.Orientation.Vertical)  # the export proof sits under the table, full width
        left.setChildrenCollapsible(False)
        left.addWidget(table_box)
        left.addWidget(self.export_result)
        left.setStretchFactor(0, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(left)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([600, 400])
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.undo_button)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addLayout(status_row)
        return tab

    # -- listing --------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.entries = registry.list_entries()
        self.details.forget_hashes()
        self.table.set_entries(self.entries)
        self.empty_label.setVisible(not self.entries)
        self.playground.set_entries(self.entries)
        self._on_search(self.search.text())
        self._on_selection()

    def _on_search(self, text: str) -> None:
        shown = self.table.apply_filter(text)
        total = len(self.entries)
        self.count_label.setText(f"{shown} of {total}" if text.strip() else f"{total} adapter{'s' if total != 1 else ''}")

    def selected(self) -> LibraryEntry | None:
        return self.table.selected_entry()

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def _on_selection(self) -> None:
        entry = self.selected()
        for b in (self.rename_button, self.delete_button, self.playground_button):
            b.setEnabled(entry is not None)
        self.export_button.setEnabled(entry is not None and not self.busy)
        self.details.show_entry(entry)

    def _announce(self, select_id: str | None = None) -> None:
        """Tell every listener (this pane included) that the library changed."""
        self.state.adapters_changed.emit()
        if select_id:
            self.table.select_id(select_id)

    def _fail(self, err: Exception, title: str) -> None:
        message, detail = describe_exception(err)
        self.status.setText(f"⚠ {message}")
        show_error(self, message, detail, title=title)

    # -- rename, delete, trash ------------------------------------------------------------------
    def rename_selected(self, new_name: str | None = None) -> LibraryEntry | None:
        entry = self.selected()
        if entry is None:
            return None
        if new_name is None:
            new_name, ok = QInputDialog.getText(self, "Rename adapter", "New name:", text=entry.name)
            if not ok:
                return None
        try:
            renamed = registry.rename(entry.id, new_name)
        except Exception as err:
            self._fail(err, "Could not rename")
            return None
        self.status.setText(f"Renamed '{entry.name}' to '{renamed.name}'.")
        self.undo_button.hide()
        self._announce(renamed.id)
        return renamed

    def delete_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        try:
            trashed = registry.delete(entry.id)
        except Exception as err:
            self._fail(err, "Could not delete")
            return
        self._last_trashed = trashed.id
        self.status.setText(f"Moved '{entry.name}' to the trash.")
        self.undo_button.show()
        self._announce()

    def undo_delete(self) -> None:
        if self._last_trashed is None:
            return
        try:
            restored = registry.restore(self._last_trashed)
        except Exception as err:
            self._fail(err, "Could not restore")
            return
        self._last_trashed = None
        self.undo_button.hide()
        self.status.setText(f"Restored '{restored.name}'.")
        self._announce(restored.id)

    def open_trash(self) -> TrashDialog:
        self.trash_dialog = TrashDialog(on_changed=self._announce, parent=self)
        self.trash_dialog.open()
        return self.trash_dialog

    # -- import ---------------------------------------------------------------------------------
    def import_folder(self, folder: str | None = None) -> None:
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Import a PEFT adapter folder (with adapter_config.json)")
            if not folder:
                return
        self.import_button.setEnabled(False)
        self.status.setText(f"Checking {Path(folder).name} against its base model…")
        self.tasks.run(lambda _s: registry.import_adapter(Path(folder)), on_result=self._on_imported,
                       on_error=self._on_import_failed, owner=self)

    def _on_imported(self, entry: LibraryEntry) -> None:
        self.import_button.setEnabled(True)
        self.status.setText(f"Imported '{entry.name}' — its tensors fit {Path(entry.base_model).name}.")
        self.undo_button.hide()
        self._announce(entry.id)

    def _on_import_failed(self, exc: BaseException) -> None:
        message, detail = describe_exception(exc)
        self.import_button.setEnabled(True)
        self.status.setText(f"⚠ Not imported: {message}")
        show_error(self, message, detail, title="Import failed")

    # -- playground -----------------------------------------------------------------------------
    def try_in_playground(self) -> None:
        entry = self.selected()
        if entry is not None:
            self.playground.show_adapter(entry)
            self.tabs.setCurrentWidget(self.playground)

    # -- export ---------------------------------------------------------------------------------
    def open_export_dialog(self) -> ExportDialog | None:
        entry = self.selected()
        if entry is None:
            return None
        dialog = ExportDialog(entry, self)
        dialog.accepted.connect(lambda: self._start_export(entry, dialog.choice()))
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def _export(self, out_dir: str | None = None, choice: ExportChoice | None = None) -> None:
        """Export the selected adapter: with no destination, through the dialog; else a merged bf16 model."""
        entry = self.selected()
        if entry is None:
            return
        if choice is None and not out_dir:
            self.open_export_dialog()
            return
        self._start_export(entry, choice or ExportChoice(kind="merged", out=Path(out_dir)))

    def _start_export(self, entry: LibraryEntry, choice: ExportChoice) -> None:
        from studio.core.library.merge import export_model

        self.busy = True
        self.progress.setValue(0)
        self.progress.setFormat("Starting export… %p%")
        self.progress.show()
        self.export_button.setEnabled(False)
        self.status.setText(f"Exporting '{entry.name}' to {choice.out}…")
        adapter_dir = entry.files_dir  # a full model's folder exports without a merge (merge.export_model)
        self.tasks.run(
            lambda s: export_model(adapter_dir, choice.out, progress=s.progress, **choice.export_kwargs()),
            on_progress=lambda f, m: (self.progress.setValue(int(f * 100)), self.progress.setFormat(f"{m} %p%")),
            on_result=self._on_exported,
            on_error=self._on_export_failed,
            owner=self,
        )

    def _on_exported(self, report) -> None:
        self.busy = False
        self.progress.hide()
        self.last_export = report
        self.export_result.show_report(report)
        self.status.setText(report.summary().splitlines()[0])
        self._on_selection()

    def _on_export_failed(self, exc: BaseException) -> None:
        message, detail = describe_exception(exc)
        self.busy = False
        self.progress.hide()
        self.status.setText(f"⚠ Export failed: {message}")
        self._on_selection()
        show_error(self, message, detail, title="Export failed")
