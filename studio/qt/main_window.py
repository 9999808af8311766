"""The studio's window: a sidebar of four rooms, a menu, a status bar with the compute device."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.datasets.readers import SUPPORTED_SUFFIXES
from studio.core.errors import describe_exception
from studio.core.formatting import format_bytes_in
from studio.qt.notify import DesktopNotifier
from studio.qt.panes.configure.pane import ConfigurePane
from studio.qt.panes.dataset.pane import DatasetPane
from studio.qt.panes.library.pane import LibraryPane
from studio.qt.panes.train.pane import TrainPane
from studio.qt.settings import settings
from studio.qt.state import AppState, default_config
from studio.qt.widgets.interrupted_banner import InterruptedBanner, newest_interrupted
from studio.qt.workers.task import TaskRunner

PANES = ("Dataset", "Configure", "Train", "Library")


def describe_device() -> str:
    """Off the UI thread: importing torch costs ~2 s."""
    from studio.core.models.device import probe_device

    device = probe_device()
    if device.kind == "cuda":
        return f"GPU: {device.name} · {format_bytes_in(device.memory_bytes, digits=1)}"
    return f"CPU: {device.threads} threads · {format_bytes_in(device.ram_bytes, digits=1)} RAM (no CUDA GPU)"


class MainWindow(QMainWindow):
    def __init__(self, state: AppState | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Fine-Tuning Studio")
        self.setAcceptDrops(True)
        self.state = state or AppState()
        self.tasks = TaskRunner(self)

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(150)
        self.sidebar.setIconSize(QSize(18, 18))
        self.stack = QStackedWidget()
        self.dataset_pane = DatasetPane(self.state, self.tasks)
        self.configure_pane = ConfigurePane(self.state, self.tasks)
        self.train_pane = TrainPane(self.state, self.tasks)
        self.library_pane = LibraryPane(self.state, self.tasks)
        for name, pane in zip(PANES, (self.dataset_pane, self.configure_pane, self.train_pane, self.library_pane),
                              strict=True):
            QListWidgetItem(name, self.sidebar)
            self.stack.addWidget(pane)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.train_pane.run_finished.connect(self._on_run_finished)
        self.notifier = DesktopNotifier(self)
        self.notifier.watch(self.train_pane)
        self.sidebar.setAccessibleName("Sections")

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.sidebar)
        self.interrupted_banner = InterruptedBanner()
        self.interrupted_banner.resume_requested.connect(self._resume_interrupted)
        self.interrupted_banner.show_requested.connect(self._show_interrupted)
        column = QVBoxLayout()
        column.setSpacing(0)
        column.addWidget(self.interrupted_banner)
        column.addWidget(self.stack, 1)
        row.addLayout(column, 1)
        self.setCentralWidget(central)

        self.device_label = QLabel("Detecting compute device…")
        self.model_label = QLabel("")
        self.model_progress = QProgressBar()
        self.model_progress.setMaximumWidth(220)
        self.model_progress.setRange(0, 100)
        self.model_progress.hide()
        self.statusBar().addWidget(self.device_label)
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.model_progress)
        self._build_menu()
        self._restore()

    # -- menu -------------------------------------------------------------------------------------
    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open dataset…", self, shortcut=QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._open_dataset)
        import_action = QAction("&Import GGUF model…", self)
        import_action.triggered.connect(self._import_gguf)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(open_action)
        file_menu.addMenu(self.dataset_pane.recent_menu)
        self.dataset_pane.recent_menu.chosen.connect(lambda _files: self.show_pane("Dataset"))
        file_menu.addAction(import_action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        self.import_action = import_action
        self._build_help_menu()

    def _build_help_menu(self) -> None:
        from studio.qt.dialogs import help_dialogs

        help_menu = self.menuBar().addMenu("&Help")
        entries = (
            ("&About Fine-Tuning Studio", lambda: help_dialogs.about_dialog(self).open(), None),
            ("&Where my data lives…", lambda: help_dialogs.data_dialog(self).open(), None),
            ("&Keyboard shortcuts", lambda: help_dialogs.shortcuts_dialog(self).open(), None),
            ("Open the &README", self._open_readme, QKeySequence.StandardKey.HelpContents),
        )
        self.help_actions: dict[str, QAction] = {}
        for text, slot, keys in entries:
            action = QAction(text, self, shortcut=keys) if keys else QAction(text, self)
            action.triggered.connect(slot)
            help_menu.addAction(action)
            self.help_actions[text.replace("&", "")] = action
        help_menu.addSeparator()
        reset = QAction("&Reset Configure to defaults…", self)
        reset.triggered.connect(self.reset_configure)
        help_menu.addAction(reset)
        self.help_actions["Reset Configure to defaults…"] = reset

    def _open_readme(self) -> None:
        from studio.qt.dialogs.help_dialogs import readme_path
        from studio.qt.errors import show_error

        path = readme_path()
        if path is None:
            show_error(self, "The README is not part of this installation. It is the project's README.md, "
                       "beside the studio's source.", title="README not found")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def reset_configure(self) -> None:
        """Back to the embedded defaults (method, rank, learning rate, schedule, model), after asking;
        the dataset stays, it is the Dataset pane's choice."""
        from studio.qt.errors import show_error

        if self.train_pane.is_running():
            show_error(self, "Training is running with this configuration. Stop it first.", title="Training is running")
            return
        answer = QMessageBox.question(
            self, "Reset Configure to defaults",
            "Put every Configure setting back to its default (model, method, rank, learning rate, schedule…)? "
            "The dataset stays. Save the current config first (Configure → Save) if you want it back later.",
            QMessageBox.StandardButton.Reset | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Reset:
            return
        current = self.state.config
        fresh = default_config()
        self.state.set_config(fresh.model_copy(update={"dataset": current.dataset}))
        self.statusBar().showMessage("Configure reset to the defaults.", 5000)

    def _open_dataset(self) -> None:
        self.show_pane("Dataset")
        self.dataset_pane.open_dialog()

    def _import_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", "", "GGUF models (*.gguf)")
        if not path:
            return
        from studio.core.models.store import import_gguf_to_store

        self._show_model_progress(0.0, f"Importing {Path(path).name}…")
        self.tasks.run(
            lambda s: import_gguf_to_store(Path(path), progress=s.progress),
            on_progress=self._show_model_progress,
            on_result=self._on_imported,
            on_error=self._on_model_error,
            owner=self,
        )

    def _on_imported(self, dest) -> None:
        self.model_progress.hide()
        self.model_label.setText(f"Imported {Path(dest).name}")
        answer = QMessageBox.question(self, "Model imported", f"Use {Path(dest).name} as the base model?")
        if answer == QMessageBox.StandardButton.Yes:
            self.state.update(**{"model.path": str(dest)})

    # -- start-up work ----------------------------------------------------------------------------
    def start_background_work(self) -> None:
        """What must not delay the window: device detection and the one-time model conversion."""
        self.tasks.run(lambda _s: describe_device(), on_result=self.device_label.setText,
                       on_error=lambda e: self.device_label.setText(f"Device unknown: {describe_exception(e)[0]}"),
                       owner=self)
        from studio.core.models.store import default_model_path, model_folder_problem
        from studio.core.models.tokenizer_repair import needs_repair

        model_path = Path(self.state.config.model.path)
        self.tasks.run(lambda _s: newest_interrupted(), on_result=self.interrupted_banner.show_run,
                       on_error=lambda _e: None, owner=self)
        problem = model_folder_problem(model_path)
        if problem is None and needs_repair(model_path):
            self._update_tokenizer(model_path)
        elif problem is None:
            self._on_model_ready(model_path)
        elif model_path == default_model_path():
            self._prepare_default_model()
        else:
            self.model_label.setText(f"⚠ {problem}")

    def _prepare_default_model(self) -> None:
        from studio.core.models.store import default_model_path, ensure_default_model

        self.state.model_preparing = str(default_model_path())
        self._show_model_progress(0.0, "Preparing the bundled model (once)…")
        self.tasks.run(lambda s: ensure_default_model(s.progress), on_progress=self._show_model_progress,
                       on_result=self._on_model_ready, on_error=self._on_model_error, owner=self)

    def _update_tokenizer(self, path: Path) -> None:
        """An earlier GGUF import whose tokenizer splits text unlike the file: rewrite its tokenizer.json
        (a second) before any pane loads it, and say so."""
        from studio.core.models.tokenizer_repair import repair_pre_tokenizer

        def done(note: str | None) -> None:
            if note:
                self.statusBar().showMessage(note, 15000)
            self._on_model_ready(path)

        self.state.model_preparing = str(path)
        self._show_model_progress(0.0, "Updating the model's tokenizer to the GGUF's split rules…")
        self.tasks.run(lambda _s: repair_pre_tokenizer(path), on_result=done, on_error=self._on_model_error, owner=self)

    def _show_model_progress(self, frac: float, message: str) -> None:
        self.model_progress.show()
        self.model_progress.setValue(int(frac * 100))
        # The words go in the label beside the bar, once; the bar shows only the percentage (it
        # used to repeat the message, cut off at the bar's width).
        self.model_progress.setFormat("%p%")
        self.model_label.setText(message)

    def _on_model_ready(self, path) -> None:
        self.state.model_preparing = ""
        self.model_progress.hide()
        self.model_label.setText(f"Model: {Path(path).name}")
        self.train_pane.set_model_ready(True)
        self.state.model_ready.emit(str(path))

    def _on_model_error(self, exc: BaseException) -> None:
        from studio.qt.errors import show_error

        message, detail = describe_exception(exc)
        self.state.model_preparing = ""
        self.model_progress.hide()
        self.model_label.setText("⚠ Model not ready")
        show_error(self, message, detail, title="Model could not be prepared")

    # -- navigation, drops ------------------------------------------------------------------------
    def show_pane(self, name: str) -> None:
        self.sidebar.setCurrentRow(PANES.index(name))

    def current_pane(self) -> str:
        return PANES[self.stack.currentIndex()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and all(u.isLocalFile() for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        datasets = [f for f in files if Path(f).suffix.lower() in SUPPORTED_SUFFIXES]
        if not datasets:
            from studio.qt.errors import show_error

            show_error(self, "Drop .json, .jsonl, .csv or .parquet dataset files.", title="Not a dataset")
            return
        self.show_pane("Dataset")
        self.dataset_pane.set_files(datasets)
        event.acceptProposedAction()

    def _resume_interrupted(self, summary) -> None:
        self.show_pane("Train")
        self.train_pane.resume_run(summary)

    def _show_interrupted(self, summary) -> None:
        self.show_pane("Train")
        self.train_pane.tabs.setCurrentWidget(self.train_pane.runs_view)
        self.train_pane.runs_view.refresh()
        view = self.train_pane.runs_view
        view.select_rows([i for i, s in enumerate(view.summaries) if s.run_dir == summary.run_dir])

    def _on_run_finished(self, ev) -> None:
        self.state.adapters_changed.emit()

    # -- persistence ------------------------------------------------------------------------------
    def _restore(self) -> None:
        s = settings()
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1180, 760)
        pane = s.value("window/pane", "Dataset")
        self.show_pane(pane if pane in PANES else "Dataset")

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.train_pane.is_running():
            answer = QMessageBox.question(
                self, "Training is running",
                "Stop training and quit? The current step finishes and a checkpoint is written; you can resume later.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.train_pane.stop_training()
            self.statusBar().showMessage("Stopping training and writing a checkpoint…")
            self.train_pane.wait_for_worker()
        self.tasks.stop_all()
        self.tasks.wait_all()
        s = settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/pane", self.current_pane())
        s.sync()
        event.accept()

    def sizeHint(self) -> QSize:
        return QSize(1180, 760)

