"""Configure: the base model, the method and every training knob, with a live memory estimate.

The pane is a binder: every edit goes to the app's ``ConfigureSession`` (``session.set(key, value)``),
which holds the config and its rules (alpha link, method recipes, touched fields, length mode,
budget, field errors), and every change (from this pane, a loaded file, a clicked suggestion or
another pane) comes back as the session's per-field events to refresh the widgets. The Train pane
trains exactly what is shown here: the session is the single source of truth.

Inspecting a model builds it on the meta device, which imports transformers and can take seconds,
so it runs in a worker, once per (folder, safety switches); ``inspect_model`` caches the result.
The estimate itself is arithmetic on that cached ModelInfo (well under a millisecond), so it is
recomputed on the UI thread a few milliseconds after the last change, coalescing bursts of edits
(a held-down spin arrow) into one recompute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.config import RunConfig, load_config
from studio.core.configure import Budget, model_limits
from studio.core.errors import StudioError, describe_exception
from studio.core.formatting import format_bytes
from studio.core.memory import (
    Calibration,
    DatasetLengths,
    Estimate,
    Suggestion,
    estimate,
    suggestions,
    verdict,
)
from studio.core.models.device import DeviceInfo
from studio.core.models.introspect import ModelInfo
from studio.qt.errors import show_error
from studio.qt.panes.configure.form import ConfigureForm
from studio.qt.panes.configure.model_source import ModelSource
from studio.qt.state import AppState
from studio.qt.widgets.base_model_box import BaseModelBox
from studio.qt.widgets.config_fields import guard_wheel
from studio.qt.widgets.estimate_panel import EstimatePanel
from studio.qt.workers.estimate_inputs import calibration_job, lengths_job, lengths_key
from studio.qt.workers.task import TaskRunner, TaskSlot, TaskState

# Coalesce edits this long before recomputing; with the sub-millisecond estimate the panel is
# current well within 50 ms of the last change.
ESTIMATE_DEBOUNCE_MS = 15
CONFIG_FILTER = "Run configs (*.yaml *.yml);;All files (*)"



def probe_device(_state: TaskState | None = None) -> DeviceInfo:
    """This machine, read off the UI thread: it imports torch."""
    from studio.core.models.device import probe_device as probe

    return probe()


class ConfigurePane(ConfigureForm, ModelSource, QWidget):
    def __init__(self, state: AppState, tasks: TaskRunner | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.session = state.session
        self.tasks = tasks or TaskRunner(self)
        self.info: ModelInfo | None = None
        self.estimate: Estimate | None = None  # what the panel shows now
        self.suggestions: list[Suggestion] = []
        self.inspecting = False
        # One inspection and one token count at a time: a newer request cancels the older one, whose
        # late answer is dropped. The keys say what was last asked for, so that an edit they do not
        # depend on (the learning rate, say) starts nothing.
        self._inspecting = TaskSlot(self.tasks, self)
        self._inspect_key: tuple | None = None
        self._inspect_problem = ""
        self._model_pending = False
        self._syncing = False
        self.editors: dict[str, QWidget] = {}
        self._messages: dict[str, QLabel] = {}
        self._limit_errors: dict[str, str] = {}
        # The estimate's inputs from files: the dataset's token lengths, this machine's calibration.
        self.lengths: DatasetLengths | None = None
        self._counting = TaskSlot(self.tasks, self)
        self._lengths_key: tuple | None = None
        self._lengths_note = ""
        self.calibrations: dict[str, Calibration] = {}

        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse timer may fire 5 % late
        self.debounce.setInterval(ESTIMATE_DEBOUNCE_MS)
        self.debounce.timeout.connect(self.refresh_estimate)

        self.model_box = BaseModelBox()
        self.model_box.folder_requested.connect(self._choose_folder_dialog)
        self.model_box.store_chosen.connect(lambda p: self.session.set("model.path", p))
        self.model_box.import_requested.connect(self._import_dialog)
        self.model_box.allow_pickle_toggled.connect(lambda on: self._edit("model.allow_pickle", on))
        self.model_box.trust_code_toggled.connect(lambda on: self._edit("model.trust_remote_code", on))
        self.panel = EstimatePanel()
        self.panel.suggestion_chosen.connect(self.apply_suggestion)
        self.panel.plan_changed.connect(lambda: self.session.plan_for(self.panel.planned_gpu_gib()))

        sections = QWidget()
        sections.setObjectName("configureSections")
        col = QVBoxLayout(sections)
        col.setContentsMargins(0, 0, 8, 0)
        col.addWidget(self.model_box)
        col.addWidget(self._method_box())
        col.addWidget(self._lora_box())
        col.addWidget(self._training_box())
        col.addWidget(self._eval_box())
        col.addStretch(1)
        left = QScrollArea()
        left.setWidgetResizable(True)
        left.setFrameShape(QFrame.Shape.NoFrame)
        left.setWidget(sections)
        self.form_scroll = left
        right = QScrollArea()
        right.setWidgetResizable(True)
        right.setFrameShape(QFrame.Shape.NoFrame)
        right.setWidget(self.panel)
        right.setMinimumWidth(340)
        right.setMaximumWidth(400)
        for area in (left, right):
            area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for area in (left, right):
            # Only the viewport's page: "QScrollArea > QWidget > QWidget" also matched the scroll bar
            # (inside its container widget), which then lost its native look to a black outline.
            area.setStyleSheet("QScrollArea { background: transparent; } "
                               "QScrollArea > QWidget#qt_scrollarea_viewport > QWidget { background: transparent; }")

        title = QLabel("Configure")
        title.setObjectName("title")
        subtitle = QLabel("The base model and how to train it. The estimate updates as you change anything.")
        subtitle.setObjectName("muted")
        subtitle.setWordWrap(True)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Load a run config (YAML) saved from here or written for `studio train`.")
        self.load_button.clicked.connect(self._load_dialog)
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save this run config as YAML, for `studio train`, "
                                    "`studio estimate` or a multi-GPU launch.")
        self.save_button.clicked.connect(self._save_dialog)
        self.file_status = QLabel("")
        self.file_status.setObjectName("muted")
        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(title)
        titles.addWidget(subtitle)
        header.addLayout(titles, 1)
        header.addWidget(self.file_status)
        header.addWidget(self.load_button)
        header.addWidget(self.save_button)
        body = QHBoxLayout()
        body.addWidget(left, 3)
        body.addWidget(right, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addLayout(body, 1)

        events = self.session.events
        links = ((events.changed, self._on_field), (events.alpha_linked, self._on_alpha_linked),
                 (events.errors, self._on_errors), (events.budget, self.schedule_estimate),
                 (events.config, self._on_config_changed))
        for event, slot in links:
            event.connect(slot)
        # The session outlives a closed pane (it is the app's): stop listening with the widgets gone.
        self.destroyed.connect(lambda *_: [event.disconnect(slot) for event, slot in links])
        state.model_ready.connect(self._on_model_ready)
        self._refresh_store()
        guard_wheel(sections)
        for key in events:
            self._on_field(key, self.session.get(key))
        self._on_alpha_linked(self.session.alpha_linked)
        self._on_config_changed(self.session.config)
        self.tasks.run(probe_device, on_result=self._on_device, on_error=self._on_device_failed, owner=self)
        self.tasks.run(calibration_job, on_result=self._on_calibration, on_error=lambda _e: None, owner=self)

    # -- session -> widgets ----------------------------------------------------------------------
    def _on_field(self, key: str, value: Any) -> None:
        """Show one config field's new value in its editor and in what derives from it."""
        syncing, self._syncing = self._syncing, True
        try:
            widget = self.editors.get(key)
            if isinstance(widget, QComboBox):
                widget.setCurrentIndex(max(widget.findData(value), 0))
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)) and not (
                    key == "training.max_steps" and value < 1):  # -1 = use epochs; keep the last count
                widget.setValue(value)
            cfg = self.session.config
            if key == "training.max_steps":
                by_steps = self.session.length_mode == "steps"
                self.length_mode.setCurrentIndex(1 if by_steps else 0)
                self.epochs.setEnabled(not by_steps)
                self.max_steps.setEnabled(by_steps)
            elif key == "method":
                self.lora_box.setEnabled(value != "full")
                self.quant_box.setEnabled(value == "qlora")
            elif key == "objective":
                self._show_objective(value)
            elif key in ("training.batch_size", "training.grad_accum"):
                self.effective_batch.setText(f"{cfg.training.batch_size * cfg.training.grad_accum} per update")
            elif key == "model.path":
                self.model_box.set_path(value)
                self.model_box.store.setCurrentIndex(max(self.model_box.store.findData(value), 0))
            elif key in ("model.allow_pickle", "model.trust_remote_code"):
                self.model_box.set_safety(cfg.model.allow_pickle, cfg.model.trust_remote_code)
        finally:
            self._syncing = syncing

    def _on_alpha_linked(self, linked: bool) -> None:
        syncing, self._syncing = self._syncing, True
        try:
            self.alpha_link.setChecked(linked)
            self.alpha.setEnabled(not linked)
        finally:
            self._syncing = syncing

    def _on_config_changed(self, cfg: RunConfig) -> None:
        """After any change: what depends on the model and the whole config."""
        if self.info is not None:
            self.model_box.show_info(self.info)  # clears a notice about an earlier attempt
            self.targets.set_selection(cfg.lora.target_modules)
        self._check_limits(cfg)
        self._inspect_if_needed(cfg)
        self._count_lengths_if_needed(cfg)
        self.schedule_estimate()

    def _check_limits(self, cfg: RunConfig) -> None:
        """Cross-checks the config cannot make alone because they depend on the model."""
        self._limit_errors = model_limits(cfg, self.info)
        self._render_messages()

    def _on_errors(self, _errors: dict[str, str]) -> None:
        self._render_messages()

    def _render_messages(self) -> None:
        edit_errors = self.session.errors
        for key, label in self._messages.items():
            text = "\n".join(t for t in (edit_errors.get(key), self._limit_errors.get(key)) if t)
            label.setText(text)
            label.setVisible(bool(text))

    def message_for(self, key: str) -> str:
        """The inline message shown under the editor of ``key`` ('' when none)."""
        label = self._messages.get(key)
        return label.text() if label is not None and label.isVisible() else ""

    # -- widgets -> session -----------------------------------------------------------------------
    def _edit(self, key: str, value: Any) -> None:
        if not self._syncing:
            self.session.set(key, value)

    def apply_suggestion(self, suggestion: Suggestion) -> None:
        self.session.apply_suggestion(dict(suggestion.overrides))

    # -- the model --------------------------------------------------------------------------------
    def _on_device(self, device: DeviceInfo) -> None:
        self.session.set_machine(device)
        if device.kind == "cuda":
            text = (f"This machine: {device.name}, {format_bytes(device.memory_bytes)} GPU memory; "
                    f"{format_bytes(device.ram_bytes)} RAM.")
        else:
            text = f"This machine: {device.name}, {format_bytes(device.ram_bytes)} RAM, no CUDA GPU."
        self.panel.set_device_text(text)

    def _on_device_failed(self, exc: BaseException) -> None:
        message = describe_exception(exc)[0]
        self.panel.set_device_text(f"This machine's memory could not be read ({message}); "
                                   "choose a GPU size under Plan for.")
        self.session.machine_unknown()

    def budget(self, cfg: RunConfig) -> Budget | None:
        """(device kind to estimate for, budget bytes or None, budget name); None while detecting."""
        return self.session.budget(cfg)

    # -- the estimate -----------------------------------------------------------------------------
    def schedule_estimate(self) -> None:
        self.debounce.start()

    def refresh_estimate(self) -> None:
        """Recompute the estimate for the current config (pure arithmetic on the cached ModelInfo)."""
        self.debounce.stop()
        cfg = self.state.config
        self.estimate, self.suggestions = None, []
        if self.info is None:
            if self.inspecting:
                self.panel.show_waiting("Reading the model…")
            elif self._model_pending:
                self.panel.show_waiting("Waiting for the bundled model to be prepared…")
            else:
                self.panel.show_waiting("No estimate: the base model cannot be used (see Base model).")
            return
        target = self.budget(cfg)
        if target is None:
            self.panel.show_waiting("Detecting this machine's memory…")
            return
        kind, budget, name = target
        try:
            calib = self.calibrations.get(kind)
            factor = calib.factor if calib is not None else 1.0
            worst = estimate(self.info, cfg, device_kind=kind).scaled(factor)
            est = estimate(self.info, cfg, device_kind=kind, lengths=self.lengths).scaled(factor) \
                if self.lengths is not None else worst
        except StudioError as err:
            self.panel.show_waiting(f"No estimate: {err.message}")
            return
        full = estimate(self.info, cfg.model_copy(update={"method": "full"}), device_kind=kind,
                        lengths=self.lengths).scaled(factor)
        if budget is not None and verdict(est.total_bytes, budget) != "green":
            self.suggestions = suggestions(self.info, cfg, budget, device_kind=kind, lengths=self.lengths,
                                           factor=factor)
        self.estimate = est
        self.panel.show_estimate(est, full, budget, name, self.suggestions, worst=worst, calibration=calib,
                                 dataset_note=self._lengths_note)

    # -- the estimate's inputs from files ---------------------------------------------------------
    def _count_lengths_if_needed(self, cfg: RunConfig) -> None:
        """Count the training rows' tokens (in the background) when the dataset, model or max length changed."""
        key = lengths_key(cfg)
        if key == self._lengths_key:
            return
        self._lengths_key, self.lengths = key, None
        self._counting.cancel()
        if not cfg.dataset.train or not cfg.model.path:
            self._lengths_note = ""
            return
        self._lengths_note = "; counting the dataset's tokens…"
        self._counting.start(lengths_job(cfg), on_result=self._on_lengths, on_error=self._on_lengths_failed)

    def _on_lengths(self, result: tuple) -> None:
        lengths, problem = result
        self.lengths = lengths if lengths is not None and lengths.lengths else None
        self._lengths_note = f"; the dataset could not be counted: {problem}" if problem else ""
        self.schedule_estimate()

    def _on_lengths_failed(self, exc: BaseException) -> None:
        message = describe_exception(exc)[0]
        self._lengths_note = f"; the dataset could not be counted: {message}"
        self.schedule_estimate()

    def _on_calibration(self, calibrations: dict) -> None:
        self.calibrations = dict(calibrations)
        self.schedule_estimate()

    # -- files ------------------------------------------------------------------------------------
    def save_to(self, path: Path) -> bool:
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".yaml")
        try:
            self.state.config.save(path)
        except OSError as err:
            show_error(self, f"The config could not be written to {path}: {err.strerror or err}. "
                             "Choose a folder you can write to.", title="Config not saved")
            return False
        self.file_status.setText(f"Saved {path.name}")
        return True

    def load_from(self, path: Path) -> bool:
        """Load a YAML run config; a bad file shows its field-level messages and changes nothing."""
        try:
            cfg = load_config(Path(path))
        except StudioError as err:
            show_error(self, err.user_text(), err.detail, title="Config not loaded")
            return False
        self.session.load(cfg)
        self.file_status.setText(f"Loaded {Path(path).name}")
        return True

    def _save_dialog(self) -> None:
        name = (self.state.config.name or "run") + ".yaml"
        path, _ = QFileDialog.getSaveFileName(self, "Save run config", name, CONFIG_FILTER)
        if path:
            self.save_to(Path(path))

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load run config", "", CONFIG_FILTER)
        if path:
            self.load_from(Path(path))
