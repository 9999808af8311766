"""Configure: the base model, the method and every training knob, with a live memory estimate.

Every edit goes through ``AppState.update`` so the Train pane trains exactly what is shown here,
and every config change (from this pane, a loaded file or a clicked suggestion) comes back through
``config_changed`` to refresh the widgets: the state is the single source of truth.

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

from studio.core.config import LoraSection, RunConfig, default_lr, load_config
from studio.core.errors import StudioError
from studio.core.memory import (
    Calibration,
    DatasetLengths,
    Estimate,
    GiB,
    Suggestion,
    estimate,
    format_bytes,
    suggestions,
    verdict,
)
from studio.core.models.introspect import ModelInfo
from studio.qt.errors import show_error
from studio.qt.panes.configure.form import ConfigureForm
from studio.qt.panes.configure.model_source import ModelSource
from studio.qt.state import AppState
from studio.qt.widgets.base_model_box import BaseModelBox
from studio.qt.widgets.config_fields import get_value, guard_wheel
from studio.qt.widgets.estimate_panel import EstimatePanel
from studio.qt.workers.estimate_inputs import calibration_job, lengths_job, lengths_key
from studio.qt.workers.task import TaskRunner, TaskState

# Coalesce edits this long before recomputing; with the sub-millisecond estimate the panel is
# current well within 50 ms of the last change.
ESTIMATE_DEBOUNCE_MS = 15
DEFAULT_RANK: int = LoraSection.model_fields["r"].default
ALPHA_PER_RANK = 2.0  # the common recipe: alpha = 2 x r
CONFIG_FILTER = "Run configs (*.yaml *.yml);;All files (*)"



def probe_device(_state: TaskState | None = None) -> tuple[str, str, int, int]:
    """(kind, name, device bytes, RAM bytes), off the UI thread: it imports torch."""
    import psutil

    from studio.core.memory import device_memory

    kind, name, total = device_memory()
    return kind, name, total, int(psutil.virtual_memory().total)


def _field_messages(err: StudioError) -> str:
    """The field-level lines of a validation error, without the 'overrides has 1 bad value' header."""
    lines = err.message.splitlines()
    body = [ln.strip() for ln in lines[1:] if ln.strip()]
    return "\n".join(body) if body and "bad value" in lines[0] else err.message


def touched_in(cfg: RunConfig) -> set[str]:
    """Knobs of a loaded config that differ from the method's recipe: its author chose them,
    so a later method switch must not reset them."""
    out = set()
    if cfg.training.lr != default_lr(cfg.method):
        out.add("training.lr")
    if cfg.lora.r != DEFAULT_RANK:
        out.add("lora.r")
    if cfg.lora.alpha != ALPHA_PER_RANK * cfg.lora.r:
        out.add("lora.alpha")
    return out


class ConfigurePane(ConfigureForm, ModelSource, QWidget):
    def __init__(self, state: AppState, tasks: TaskRunner | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = tasks or TaskRunner(self)
        self.info: ModelInfo | None = None
        self.estimate: Estimate | None = None  # what the panel shows now
        self.suggestions: list[Suggestion] = []
        self.inspecting = False
        self._inspect_key: tuple | None = None
        self._inspect_problem = ""
        self._model_pending = False
        self._device: tuple[str, str, int, int] | None = None
        self._device_failed = False
        self._touched: set[str] = set()
        self._syncing = False
        self.editors: dict[str, QWidget] = {}
        self._messages: dict[str, QLabel] = {}
        self._edit_errors: dict[str, str] = {}
        self._limit_errors: dict[str, str] = {}
        # The estimate's inputs from files: the dataset's token lengths, this machine's calibration.
        self.lengths: DatasetLengths | None = None
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
        self.model_box.store_chosen.connect(lambda p: self._apply({"model.path": p}, "model.path"))
        self.model_box.import_requested.connect(self._import_dialog)
        self.model_box.allow_pickle_toggled.connect(lambda on: self._edit("model.allow_pickle", on))
        self.model_box.trust_code_toggled.connect(lambda on: self._edit("model.trust_remote_code", on))
        self.panel = EstimatePanel()
        self.panel.suggestion_chosen.connect(self.apply_suggestion)
        self.panel.plan_changed.connect(self.schedule_estimate)

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

        state.config_changed.connect(self._on_config_changed)
        state.model_ready.connect(self._on_model_ready)
        self._refresh_store()
        guard_wheel(sections)
        self._on_config_changed(state.config)
        self.tasks.run(probe_device, on_result=self._on_device, on_error=self._on_device_failed, owner=self)
        self.tasks.run(calibration_job, on_result=self._on_calibration, on_error=lambda _m, _d: None, owner=self)

    # -- building ---------------------------------------------------------------------------------
    def _on_config_changed(self, cfg: RunConfig) -> None:
        self._syncing = True
        try:
            for key, widget in self.editors.items():
                value = get_value(cfg, key)
                if isinstance(widget, QComboBox):
                    widget.setCurrentIndex(max(widget.findData(value), 0))
                elif isinstance(widget, QCheckBox):
                    widget.setChecked(bool(value))
                elif isinstance(widget, (QSpinBox, QDoubleSpinBox)) and not (
                        key == "training.max_steps" and value < 1):  # -1 = use epochs; keep the last count
                    widget.setValue(value)
            if self.alpha_link.isChecked() and cfg.lora.alpha != ALPHA_PER_RANK * cfg.lora.r:
                self.alpha_link.setChecked(False)  # a file or a suggestion set alpha on its own
            self.alpha.setEnabled(not self.alpha_link.isChecked())
            by_steps = cfg.training.max_steps > 0
            self.length_mode.setCurrentIndex(1 if by_steps else 0)
            self.epochs.setEnabled(not by_steps)
            self.max_steps.setEnabled(by_steps)
            self.lora_box.setEnabled(cfg.method != "full")
            self.quant_box.setEnabled(cfg.method == "qlora")
            self.effective_batch.setText(f"{cfg.training.batch_size * cfg.training.grad_accum} per update")
            self.model_box.set_path(cfg.model.path)
            self.model_box.set_safety(cfg.model.allow_pickle, cfg.model.trust_remote_code)
            self.model_box.store.setCurrentIndex(max(self.model_box.store.findData(cfg.model.path), 0))
        finally:
            self._syncing = False
        if self.info is not None:
            self.model_box.show_info(self.info)  # clears a notice about an earlier attempt
            self.targets.set_selection(cfg.lora.target_modules)
        self._check_limits(cfg)
        self._inspect_if_needed(cfg)
        self._count_lengths_if_needed(cfg)
        self.schedule_estimate()

    def _check_limits(self, cfg: RunConfig) -> None:
        """Cross-checks the config cannot make alone because they depend on the model."""
        self._limit_errors.clear()
        info = self.info
        if info is not None and info.context_length and cfg.training.max_seq_len > info.context_length:
            self._limit_errors["training.max_seq_len"] = (
                f"Longer than this model's context window ({info.context_length:,} tokens): it has never seen "
                f"positions past that. Use {info.context_length:,} or less.")
        self._render_messages()

    def _render_messages(self) -> None:
        for key, label in self._messages.items():
            text = "\n".join(t for t in (self._edit_errors.get(key), self._limit_errors.get(key)) if t)
            label.setText(text)
            label.setVisible(bool(text))

    def message_for(self, key: str) -> str:
        """The inline message shown under the editor of ``key`` ('' when none)."""
        label = self._messages.get(key)
        return label.text() if label is not None and label.isVisible() else ""

    # -- widgets -> state -------------------------------------------------------------------------
    def _edit(self, key: str, value: Any, **extra: Any) -> None:
        if self._syncing:
            return
        self._touched.add(key)
        self._apply({key: value, **extra}, key)

    def _apply(self, overrides: dict[str, Any], key: str) -> bool:
        try:
            self.state.update(**overrides)
        except StudioError as err:
            self._edit_errors[key] = _field_messages(err)
            self._render_messages()
            return False
        for k in overrides:
            self._edit_errors.pop(k, None)
        self._edit_errors.pop(key, None)
        self._render_messages()
        return True

    def _on_rank(self, r: int) -> None:
        extra = {"lora.alpha": ALPHA_PER_RANK * r} if self.alpha_link.isChecked() else {}
        self._touched.add("lora.r")
        self._apply({"lora.r": r, **extra}, "lora.r")

    def _on_alpha_link(self, linked: bool) -> None:
        self.alpha.setEnabled(not linked)
        if linked and not self._syncing:
            self._apply({"lora.alpha": ALPHA_PER_RANK * self.state.config.lora.r}, "lora.alpha")

    def _on_method(self, method: str) -> None:
        """Switch method and bring the untouched knobs to that method's recipe."""
        cfg = self.state.config
        if method == cfg.method:
            return
        # Beside the user's own edits, whatever differs from the current recipe was chosen by someone
        # (a loaded file, the demo's defaults, another pane) and is kept too.
        touched = self._touched | touched_in(cfg)
        overrides: dict[str, Any] = {"method": method}
        if "training.lr" not in touched:
            overrides["training.lr"] = default_lr(method)
        if method != "full":
            r = cfg.lora.r if "lora.r" in touched else DEFAULT_RANK
            overrides["lora.r"] = r
            if self.alpha_link.isChecked() or "lora.alpha" not in touched:
                overrides["lora.alpha"] = ALPHA_PER_RANK * r
        self._apply(overrides, "method")

    def _on_length_mode(self) -> None:
        if self.length_mode.currentData() == "steps":
            self._apply({"training.max_steps": self.max_steps.value()}, "training.max_steps")
        else:
            self._apply({"training.max_steps": -1}, "training.max_steps")

    def apply_suggestion(self, suggestion: Suggestion) -> None:
        self._touched.update(suggestion.overrides)
        self._apply(dict(suggestion.overrides), next(iter(suggestion.overrides), "method"))

    # -- the model --------------------------------------------------------------------------------
    def _on_device(self, result: tuple[str, str, int, int]) -> None:
        self._device = result
        kind, name, total, ram = result
        if kind == "cuda":
            text = f"This machine: {name}, {format_bytes(total)} GPU memory; {format_bytes(ram)} RAM."
        else:
            text = f"This machine: {name.removesuffix(' (system RAM)')}, {format_bytes(ram)} RAM, no CUDA GPU."
        self.panel.set_device_text(text)
        self.schedule_estimate()

    def _on_device_failed(self, message: str, _detail: str) -> None:
        self._device_failed = True
        self.panel.set_device_text(f"This machine's memory could not be read ({message}); "
                                   "choose a GPU size under Plan for.")
        self.schedule_estimate()

    def budget(self, cfg: RunConfig) -> tuple[str, int | None, str] | None:
        """(device kind to estimate for, budget bytes or None, budget name); None while detecting."""
        gib = self.panel.planned_gpu_gib()
        if gib:
            return "cuda", int(gib * GiB), "GPU"
        want = cfg.training.device
        if self._device is None:
            if not self._device_failed:
                return None
            return ("cpu" if want == "auto" else want), None, "this machine's memory is unknown"
        kind, _name, total, ram = self._device
        target = kind if want == "auto" else want
        if target == "cpu":
            return "cpu", ram, "RAM"
        if kind == "cuda":
            return "cuda", total, "GPU"
        return "cuda", None, "no CUDA GPU here: pick a GPU size under Plan for"

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
        if not cfg.dataset.train or not cfg.model.path:
            self._lengths_note = ""
            return
        self._lengths_note = "; counting the dataset's tokens…"
        self.tasks.run(lengths_job(cfg), on_result=self._on_lengths, on_error=self._on_lengths_failed, owner=self)

    def _on_lengths(self, result: tuple) -> None:
        key, lengths, problem = result
        if key != self._lengths_key:
            return  # the user moved on while this one was being counted
        self.lengths = lengths if lengths is not None and lengths.lengths else None
        self._lengths_note = f"; the dataset could not be counted: {problem}" if problem else ""
        self.schedule_estimate()

    def _on_lengths_failed(self, message: str, _detail: str) -> None:
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
        self._touched = touched_in(cfg)
        self._edit_errors.clear()
        self.state.set_config(cfg)
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
