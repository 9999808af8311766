"""Playground: one prompt, several columns (the base and adapters), the same settings for all.

The base model is loaded once, in a worker, and kept by a ``PlaygroundHolder``; choosing other
adapters for the columns hot-swaps them on that base. Each column's text arrives as a Qt signal
per chunk (the worker's ``partial``), so the window stays live while a 135M model on two CPU cores
writes a few dozen tokens a second. A saved prompt set runs through every column at once and is
scored per column: eval loss of the expected answers and exact match. Choosing the base and the
adapters on offer is mixed in from ``bases.py``; the prompt set's table is ``results_table.py``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError, describe_exception
from studio.core.library.playground import GenerationSettings, PlaygroundHolder, adapter_ref
from studio.core.library.prompt_set import (
    CompareReport,
    PromptItem,
    StreamEvent,
    load_prompt_set,
    run_columns,
)
from studio.core.library.registry import LibraryEntry
from studio.qt.errors import show_error
from studio.qt.panes.playground.bases import BaseChoice
from studio.qt.panes.playground.column import ColumnView
from studio.qt.panes.playground.results_table import PromptSetTable
from studio.qt.state import AppState
from studio.qt.workers.task import Task, TaskRunner, TaskState

MIN_COLUMNS, MAX_COLUMNS = 2, 6


def score_text(col) -> str:
    """'eval loss 1.234 · exact match 3/10 (30%)' for a ColumnResult, or why there is no score."""
    if col.scored == 0:
        return "No expected answers to score against."
    loss = "—" if col.eval_loss is None else f"{col.eval_loss:.4f}"
    return f"Prompt set: eval loss {loss} · exact match {col.matches}/{col.scored} ({col.exact_match * 100:.0f}%)"


class PlaygroundPane(BaseChoice, QWidget):
    def __init__(self, state: AppState, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = tasks
        self.holder = PlaygroundHolder()
        self.entries: list[LibraryEntry] = []
        self.columns: list[ColumnView] = []
        self.task: Task | None = None
        self.prompt_items: list[PromptItem] | None = None
        self.prompt_path: Path | None = None
        self.last_report: CompareReport | None = None
        self._running: list[ColumnView] = []
        self._scoring = False
        self._hashes: dict[str, str] = {}

        self.base_box = QComboBox()
        self.base_box.setMinimumContentsLength(24)
        self.base_box.setToolTip("The base model every column shares; adapters trained on it are offered per column")
        self.base_box.currentIndexChanged.connect(self._on_base_changed)
        self.base_status = QLabel("")
        self.base_status.setObjectName("muted")
        self.base_status.setWordWrap(True)

        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.temperature.setToolTip("0 picks the most likely token every time (repeatable); higher values sample")
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setValue(0.95)
        self.top_p.setToolTip("Sample only from the most likely tokens that together hold this much probability")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 2048)
        self.max_tokens.setValue(128)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Every column samples with this seed, so differences come from the adapters")

        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Type a prompt; every column answers it. Ctrl+Enter runs.")
        self.prompt.setFixedHeight(64)
        self.prompt.setStyleSheet("QPlainTextEdit { font-family: sans-serif; }")
        QShortcut(QKeySequence("Ctrl+Return"), self.prompt, activated=self.run_prompt)
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("primary")
        self.run_button.setToolTip("Answer the prompt in every column (Ctrl+Enter)")
        self.run_button.clicked.connect(lambda: self.run_prompt())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)

        self.columns_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.columns_splitter.setChildrenCollapsible(False)
        self.add_column_button = QPushButton("+ Column")
        self.add_column_button.setToolTip(f"Compare up to {MAX_COLUMNS} models side by side")
        self.add_column_button.clicked.connect(lambda: self.add_column())

        self.open_set_button = QPushButton("Open prompt set…")
        self.open_set_button.setToolTip('A JSONL file of {"prompt": …, "expected": …}; chat datasets work too')
        self.open_set_button.clicked.connect(lambda: self.open_prompt_set())
        self.set_label = QLabel("No prompt set loaded.")
        self.set_label.setObjectName("muted")
        self.set_label.setWordWrap(True)
        self.run_set_button = QPushButton("Run prompt set")
        self.run_set_button.setEnabled(False)
        self.run_set_button.clicked.connect(self.run_prompt_set)
        self.results = PromptSetTable()

        self._layout()
        for _ in range(3):
            self.add_column()
        state.config_changed.connect(lambda _cfg: self._update_bases())
        state.model_ready.connect(lambda _p: self._update_bases())

    def _layout(self) -> None:
        base_row = QHBoxLayout()
        base_row.addWidget(QLabel("Base model"))
        base_row.addWidget(self.base_box, 1)
        base_row.addWidget(self.base_status, 2)
        base_row.addWidget(self.add_column_button)
        knobs = QGridLayout()
        knobs.setHorizontalSpacing(6)
        for i, (label, widget) in enumerate((("Temperature", self.temperature), ("Top-p", self.top_p),
                                             ("Max new tokens", self.max_tokens), ("Seed", self.seed))):
            knobs.addWidget(QLabel(label), i // 2, 2 * (i % 2))
            knobs.addWidget(widget, i // 2, 2 * (i % 2) + 1)
        buttons = QVBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(self.prompt, 1)
        prompt_row.addLayout(knobs)
        prompt_row.addLayout(buttons)
        set_row = QHBoxLayout()
        set_row.addWidget(self.open_set_button)
        set_row.addWidget(self.set_label, 1)
        set_row.addWidget(self.run_set_button)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 4, 0, 0)
        bottom_layout.addLayout(set_row)
        bottom_layout.addWidget(self.results, 1)
        self.results.hide()
        self.vertical = QSplitter(Qt.Orientation.Vertical)
        self.vertical.setChildrenCollapsible(False)
        self.vertical.addWidget(self.columns_splitter)
        self.vertical.addWidget(bottom)
        self.vertical.setStretchFactor(0, 3)
        self.vertical.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(base_row)
        layout.addLayout(prompt_row)
        layout.addWidget(self.vertical, 1)

    # -- columns --------------------------------------------------------------------------------
    def add_column(self, entry_id: str | None = None) -> ColumnView | None:
        if len(self.columns) >= MAX_COLUMNS:
            return None
        col = ColumnView()
        fitting = self.fitting_entries()
        used = {c.entry_id() for c in self.columns}
        default = entry_id
        if default is None and self.columns:  # the first column is the base; later ones an unused adapter
            default = next((e.id for e in fitting if e.id not in used), None)
        col.set_entries(fitting, select=default)
        col.remove_requested.connect(self.remove_column)
        self.columns.append(col)
        self.columns_splitter.addWidget(col)
        self._update_buttons()
        return col

    def remove_column(self, col: ColumnView) -> None:
        if len(self.columns) <= MIN_COLUMNS or self.is_running():
            return
        self.columns.remove(col)
        col.setParent(None)
        col.deleteLater()
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.is_running()
        has_base = self.base_box.currentData() is not None
        self.run_button.setEnabled(has_base and not running)
        self.run_set_button.setEnabled(has_base and not running and bool(self.prompt_items))
        self.stop_button.setEnabled(running)
        self.base_box.setEnabled(not running)
        self.add_column_button.setEnabled(not running and len(self.columns) < MAX_COLUMNS)
        for col in self.columns:
            col.remove_button.setEnabled(not running and len(self.columns) > MIN_COLUMNS)
            col.choice.setEnabled(not running)

    # -- running --------------------------------------------------------------------------------
    def settings(self) -> GenerationSettings:
        return GenerationSettings(temperature=round(self.temperature.value(), 3), top_p=round(self.top_p.value(), 3),
                                  max_new_tokens=self.max_tokens.value(), seed=self.seed.value())

    def is_running(self) -> bool:
        return self.task is not None

    def run_prompt(self, text: str | None = None) -> None:
        text = (self.prompt.toPlainText() if text is None else text).strip()
        if text != self.prompt.toPlainText().strip():
            self.prompt.setPlainText(text)
        if not text:
            self.prompt.setFocus()
            self.base_status.setText("Type a prompt first.")
            return
        self._start([PromptItem((("user", text),), None, "prompt box", 1)], scoring=False)

    def open_prompt_set(self, path: str | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open a prompt set", "",
                                                  "Prompt sets (*.jsonl *.json *.csv *.parquet)")
            if not path:
                return False
        try:
            items = load_prompt_set(Path(path))
        except StudioError as err:
            show_error(self, err.user_text(), err.detail, title="Prompt set not usable")
            return False
        self.prompt_items, self.prompt_path = items, Path(path)
        scored = sum(1 for it in items if it.expected is not None)
        self.set_label.setText(f"{Path(path).name}: {len(items)} prompt(s), {scored} with an expected answer")
        self.set_label.setToolTip(str(path))
        self._update_buttons()
        return True

    def run_prompt_set(self) -> None:
        if self.prompt_items:
            self._start(self.prompt_items, scoring=True)

    def _start(self, items: list[PromptItem], *, scoring: bool) -> None:
        base = self.base_box.currentData()
        if base is None or self.is_running():
            return
        try:
            settings = self.settings().checked()
        except StudioError as err:
            show_error(self, err.user_text(), title="Check the settings")
            return
        self._running = list(self.columns)
        self._scoring = scoring
        entries = [c.entry() for c in self._running]
        for col in self._running:
            col.begin()
            col.show_score("")
        if scoring:
            self.results.prepare(items, [c.label() for c in self._running])
        holder = self.holder

        def work(s: TaskState) -> CompareReport:
            playground = holder.get(base, progress=s.progress)
            s.partial(("loaded", None))
            refs = [None if e is None else adapter_ref(e) for e in entries]
            return run_columns(playground, items, refs, settings, on_event=s.partial, should_stop=s.should_stop,
                               score=scoring)

        if self.holder.current is None or str(self.holder.current.base_path) != base:
            self.base_status.setText(f"Loading {Path(base).name}… (once; switching adapters later is instant)")
        self.task = self.tasks.run(work, on_partial=self._on_event, on_result=self._on_done,
                                   on_error=self._on_failed, on_progress=self._on_progress, owner=self)
        self._update_buttons()

    def stop(self) -> None:
        if self.task is not None:
            self.task.request_stop()

    def _on_progress(self, _frac: float, message: str) -> None:
        if message:
            self.base_status.setText(message)

    def _on_event(self, ev: object) -> None:
        if isinstance(ev, tuple) and ev and ev[0] == "loaded":
            self.base_status.setText(self._describe_loaded())
            return
        if not isinstance(ev, StreamEvent) or ev.column >= len(self._running):
            return
        col = self._running[ev.column]
        if ev.kind == "start":
            n = self.results.rowCount()
            col.start_item(f"Prompt {ev.item + 1} of {n}…" if self._scoring else "Writing…")
        elif ev.kind == "chunk":
            col.append(ev.text)
        elif ev.kind == "done" and ev.generation is not None:
            col.finish(ev.generation)
            if self._scoring:
                self.results.set_result(ev.item, ev.column, ev.generation.text, ev.exact)

    def _on_done(self, report: CompareReport) -> None:
        self.task = None
        self.last_report = report
        for col, res in zip(self._running, report.columns, strict=False):
            if self._scoring:
                col.show_score(score_text(res))
            if col.running:
                col.fail("stopped")
        if self._scoring:
            self.results.show_scores(report)
        self.base_status.setText(self._describe_loaded() + (" · stopped" if report.stopped else ""))
        self._update_buttons()

    def _on_failed(self, exc: BaseException) -> None:
        message, detail = describe_exception(exc)
        self.task = None
        for col in self._running:
            if col.running:
                col.fail("not run")
        self.base_status.setText("⚠ " + message.splitlines()[0])
        self._update_buttons()
        show_error(self, message, detail, title="Playground")

    def result_text(self, row: int, column: int) -> str:
        """The answer column ``column`` gave to prompt-set row ``row`` ('' before it has one)."""
        return self.results.result_text(row, column)


__all__ = ["PlaygroundPane", "score_text"]
