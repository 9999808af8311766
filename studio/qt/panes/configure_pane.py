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

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.config import LoraSection, RunConfig, default_lr, load_config
from studio.core.datasets.templates import LABELS as TEMPLATE_LABELS
from studio.core.errors import StudioError, describe_exception
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
from studio.core.models.introspect import ModelInfo, inspect_model
from studio.qt.errors import show_error
from studio.qt.state import AppState
from studio.qt.widgets.base_model_box import BaseModelBox
from studio.qt.widgets.config_fields import LearningRateSpinBox, field_tip, get_value, guard_wheel
from studio.qt.widgets.estimate_panel import EstimatePanel
from studio.qt.widgets.target_picker import TargetPicker
from studio.qt.workers.estimate_inputs import calibration_job, lengths_job, lengths_key
from studio.qt.workers.task import TaskRunner, TaskState

# Coalesce edits this long before recomputing; with the sub-millisecond estimate the panel is
# current well within 50 ms of the last change.
ESTIMATE_DEBOUNCE_MS = 15
DEFAULT_RANK: int = LoraSection.model_fields["r"].default
ALPHA_PER_RANK = 2.0  # the common recipe: alpha = 2 x r
CONFIG_FILTER = "Run configs (*.yaml *.yml);;All files (*)"

METHODS = (
    ("lora", "LoRA: adapters on a 16-bit base"),
    ("qlora", "QLoRA: adapters on a 4-bit base"),
    ("full", "Full fine-tune: every weight trains"),
)


def probe_device(_state: TaskState | None = None) -> tuple[str, str, int, int]:
    """(kind, name, device bytes, RAM bytes), off the UI thread: it imports torch."""
    import psutil

    from studio.core.memory import device_memory

    kind, name, total = device_memory()
    return kind, name, total, int(psutil.virtual_memory().total)


def _inspect_job(key: tuple[str, bool, bool]) -> Callable[[TaskState], tuple]:
    """A worker function that reads one model and returns (key, info or None, problem text), so the
    pane can drop answers for a model the user has already moved away from."""
    path, trust, pickle = key

    def job(_state: TaskState) -> tuple:
        try:
            return key, inspect_model(Path(path), trust_remote_code=trust, allow_pickle=pickle), ""
        except Exception as exc:  # every failure becomes a message in the Base model box
            return key, None, describe_exception(exc)[0]

    return job


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


class _FieldGrid(QGridLayout):
    """Label/widget pairs laid out in ``columns`` columns, each with an inline message row below."""

    def __init__(self, columns: int = 1) -> None:
        super().__init__()
        self.columns = columns
        self._n = 0
        self.setHorizontalSpacing(10)
        self.setVerticalSpacing(4)
        for c in range(columns):
            self.setColumnStretch(2 * c + 1, 1)

    def add(self, label: str, widget: QWidget, tip: str = "") -> QLabel:
        row, col = divmod(self._n, self.columns)
        self._n += 1
        if tip:
            widget.setToolTip(tip)
        if label:
            lbl = QLabel(label)
            lbl.setToolTip(tip)
            self.addWidget(lbl, 2 * row, 2 * col)
            self.addWidget(widget, 2 * row, 2 * col + 1)
        else:  # a check box carries its own text: let it use the label's column too
            self.addWidget(widget, 2 * row, 2 * col, 1, 2)
        msg = QLabel("")
        msg.setWordWrap(True)
        msg.setStyleSheet("color: #b91c1c;")
        msg.hide()
        self.addWidget(msg, 2 * row + 1, 2 * col, 1, 2)
        return msg


class ConfigurePane(QWidget):
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
    def _bind(self, grid: _FieldGrid, label: str, key: str, widget: QWidget,
              on_edit: Callable[[Any], None] | None = None) -> QWidget:
        """Register ``widget`` as the editor of config ``key``; user edits call ``on_edit`` (default: set it)."""
        handler = on_edit or (lambda v, k=key: self._edit(k, v))
        self.editors[key] = widget
        self._messages[key] = grid.add(label, widget, field_tip(key))
        if isinstance(widget, QComboBox):
            widget.currentIndexChanged.connect(lambda _i, w=widget: self._syncing or handler(w.currentData()))
        elif isinstance(widget, QCheckBox):
            widget.toggled.connect(lambda v: self._syncing or handler(bool(v)))
        elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.valueChanged.connect(lambda v: self._syncing or handler(v))
        return widget

    @staticmethod
    def _combo(items: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> QComboBox:
        box = QComboBox()
        # Shrink to the column rather than to the longest item, so nothing forces a sideways scroll.
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.setMinimumContentsLength(8)
        for data, text in items:
            box.addItem(text, data)
        return box

    @staticmethod
    def _spin(lo: int, hi: int, step: int = 1, special: str = "") -> QSpinBox:
        s = QSpinBox()
        s.setRange(lo, hi)
        s.setSingleStep(step)
        s.setMinimumWidth(90)
        s.setKeyboardTracking(False)
        if special:
            s.setSpecialValueText(special)
        return s

    @staticmethod
    def _dspin(lo: float, hi: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
        s = QDoubleSpinBox()
        s.setRange(lo, hi)
        s.setSingleStep(step)
        s.setDecimals(decimals)
        s.setMinimumWidth(90)
        s.setKeyboardTracking(False)
        return s

    def _method_box(self) -> QGroupBox:
        box = QGroupBox("Method")
        grid = _FieldGrid(1)
        self.method = self._bind(grid, "Method", "method", self._combo(METHODS), on_edit=self._on_method)
        self.dtype = self._bind(grid, "Weights dtype", "model.dtype", self._combo((
            ("auto", "auto (bf16 on a GPU, fp32 on CPU)"), ("bfloat16", "bfloat16"),
            ("float16", "float16"), ("float32", "float32"))))
        # A base model has no chat format of its own: the user picks the one it should learn.
        self.chat_template = self._bind(grid, "Chat format", "model.chat_template", self._combo(
            tuple((key, label + (" template" if key == "" else "")) for key, label in TEMPLATE_LABELS.items())))
        self.device = self._bind(grid, "Train on", "training.device", self._combo((
            ("auto", "auto (the GPU when there is one)"), ("cuda", "CUDA GPU"), ("cpu", "CPU"))))
        self.quant_box = QGroupBox("4-bit base (QLoRA only)")
        qgrid = _FieldGrid(2)
        self.quant_type = self._bind(qgrid, "Type", "quant.quant_type", self._combo((("nf4", "NF4"), ("fp4", "FP4"))))
        self.compute_dtype = self._bind(qgrid, "Compute dtype", "quant.compute_dtype", self._combo((
            ("bfloat16", "bfloat16"), ("float16", "float16"), ("float32", "float32"))))
        self.double_quant = self._bind(qgrid, "", "quant.double_quant", QCheckBox("Double quantisation"))
        self.quant_box.setLayout(qgrid)
        layout = QVBoxLayout(box)
        layout.addLayout(grid)
        layout.addWidget(self.quant_box)
        return box

    def _lora_box(self) -> QGroupBox:
        self.lora_box = QGroupBox("LoRA adapter")
        grid = _FieldGrid(2)
        self.rank = self._bind(grid, "Rank r", "lora.r", self._spin(1, 1024), on_edit=self._on_rank)
        alpha_row = QWidget()
        row = QHBoxLayout(alpha_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.alpha = self._dspin(0.01, 1e5, 1.0, decimals=2)
        self.alpha_link = QCheckBox("= 2 × rank")
        self.alpha_link.setToolTip("Keep alpha at twice the rank, the usual recipe. Untick to set alpha yourself.")
        self.alpha_link.setChecked(True)
        self.alpha_link.toggled.connect(self._on_alpha_link)
        row.addWidget(self.alpha, 1)
        row.addWidget(self.alpha_link)
        self._bind(grid, "Alpha", "lora.alpha", alpha_row)
        self.editors["lora.alpha"] = self.alpha
        self.alpha.valueChanged.connect(lambda v: self._syncing or self._edit("lora.alpha", v))
        self.alpha.setToolTip(field_tip("lora.alpha"))
        self.dropout = self._bind(grid, "Dropout", "lora.dropout", self._dspin(0.0, 0.95, 0.05))
        self.use_rslora = self._bind(grid, "", "lora.use_rslora", QCheckBox("rsLoRA (alpha / √r)"))
        self.use_dora = self._bind(grid, "", "lora.use_dora", QCheckBox("DoRA"))
        self.targets = TargetPicker()
        self.targets.setToolTip(field_tip("lora.target_modules"))
        self.targets.edited.connect(lambda names: self._edit("lora.target_modules", names))
        self.editors["lora.target_modules"] = self.targets
        layout = QVBoxLayout(self.lora_box)
        layout.addLayout(grid)
        targets_label = QLabel("Target layers")
        targets_label.setToolTip(field_tip("lora.target_modules"))
        layout.addWidget(targets_label)
        layout.addWidget(self.targets)
        return self.lora_box

    def _training_box(self) -> QGroupBox:
        box = QGroupBox("Training")
        grid = _FieldGrid(2)
        self.lr = self._bind(grid, "Learning rate", "training.lr", LearningRateSpinBox())
        self.scheduler = self._bind(grid, "Schedule", "training.scheduler", self._combo((
            ("cosine", "cosine"), ("linear", "linear"), ("constant", "constant"),
            ("constant_with_warmup", "constant with warmup"))))
        self.warmup = self._bind(grid, "Warmup share", "training.warmup_ratio", self._dspin(0.0, 0.5, 0.01))
        self.weight_decay = self._bind(grid, "Weight decay", "training.weight_decay", self._dspin(0.0, 1.0, 0.01, 3))
        self.optimizer = self._bind(grid, "Optimizer", "training.optimizer", self._combo((
            ("adamw", "AdamW"), ("adamw_8bit", "AdamW 8-bit"), ("paged_adamw_8bit", "Paged AdamW 8-bit"))))
        self.max_grad_norm = self._bind(grid, "Clip grad norm", "training.max_grad_norm", self._dspin(0.0, 100.0, 0.5))

        self.length_mode = self._combo((("epochs", "Epochs"), ("steps", "Steps")))
        self.length_mode.setToolTip("Train for a number of passes over the data, or for a fixed number of steps.")
        self.length_mode.currentIndexChanged.connect(lambda _i: self._syncing or self._on_length_mode())
        grid.add("Train for", self.length_mode)
        self.epochs = self._bind(grid, "Epochs", "training.epochs", self._dspin(0.01, 1000.0, 0.5))
        self.max_steps = self._bind(grid, "Max steps", "training.max_steps", self._spin(1, 10_000_000, 10))
        self.batch = self._bind(grid, "Batch size", "training.batch_size", self._spin(1, 4096))
        self.grad_accum = self._bind(grid, "Grad accum steps", "training.grad_accum", self._spin(1, 4096))
        self.effective_batch = QLabel("")
        self.effective_batch.setObjectName("muted")
        grid.add("Effective batch", self.effective_batch,
                 "Examples per optimizer update: batch size × gradient accumulation.")
        self.seq = self._bind(grid, "Max seq length", "training.max_seq_len", self._spin(8, 1_048_576, 64))
        self.seed = self._bind(grid, "Seed", "training.seed", self._spin(0, 2**31 - 1))
        self.grad_ckpt = self._bind(grid, "", "training.grad_checkpointing", QCheckBox("Gradient checkpointing"))
        self.packing = self._bind(grid, "", "training.packing", QCheckBox("Packing"))
        box.setLayout(grid)
        return box

    def _eval_box(self) -> QGroupBox:
        box = QGroupBox("Evaluation and checkpoints")
        grid = _FieldGrid(2)
        self.eval_steps = self._bind(grid, "Evaluate every", "training.eval_steps",
                                     self._spin(0, 1_000_000, 10, "start and end only"))
        self.eval_steps.setSuffix(" steps")
        self.save_steps = self._bind(grid, "Checkpoint every", "training.save_steps",
                                     self._spin(0, 1_000_000, 10, "at the end only"))
        self.save_steps.setSuffix(" steps")
        self.logging_steps = self._bind(grid, "Log loss every", "training.logging_steps", self._spin(1, 100_000))
        self.logging_steps.setSuffix(" steps")
        self.patience = self._bind(grid, "Early stopping", "training.early_stopping_patience",
                                   self._spin(0, 1000, 1, "off"))
        self.patience.setSuffix(" evals")
        box.setLayout(grid)
        return box

    # -- state -> widgets -------------------------------------------------------------------------
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
    def _inspect_if_needed(self, cfg: RunConfig) -> None:
        key = (cfg.model.path, cfg.model.trust_remote_code, cfg.model.allow_pickle)
        if key == self._inspect_key:
            return
        self._inspect_key = key
        self.info = None
        self._inspect_problem = ""
        self.targets.set_model(None)
        if not cfg.model.path:
            self._inspect_problem = "Choose a model folder, a model from the store, or import a GGUF file."
            self.model_box.show_problem(self._inspect_problem)
            return
        self.inspecting = True
        self.model_box.show_busy("Reading the model's architecture (no weights are loaded)…")
        # Results come back through bound methods: PySide delivers those on this object's (GUI)
        # thread, whereas a lambda would run on the worker's thread.
        self.tasks.run(_inspect_job(key), on_result=self._on_inspected, on_error=self._on_inspect_crashed, owner=self)

    def _on_inspected(self, result: tuple[tuple, ModelInfo | None, str]) -> None:
        key, info, problem = result
        if key != self._inspect_key:
            return  # the user moved on while this one was being read
        if info is None:
            self._on_inspect_failed(key, problem)
            return
        self.inspecting = False
        self.info = info
        self.model_box.show_info(info)
        self.targets.set_model(info)
        cfg = self.state.config
        self.targets.set_selection(cfg.lora.target_modules)
        self._check_limits(cfg)
        self.refresh_estimate()

    def _on_inspect_crashed(self, message: str, _detail: str) -> None:
        if self._inspect_key is not None:
            self._on_inspect_failed(self._inspect_key, message)

    def _on_inspect_failed(self, key: tuple, message: str) -> None:
        self.inspecting = False
        from studio.core.models.store import default_model_path, is_model_folder

        path = Path(key[0])
        self._model_pending = path == default_model_path() and not is_model_folder(path)
        if self._model_pending:  # the window converts it on first launch and then emits model_ready
            self._inspect_problem = "The bundled model is being prepared (first launch only)…"
            self.model_box.show_busy(self._inspect_problem)
        else:
            self._inspect_problem = message
            self.model_box.show_problem(message)
        self.refresh_estimate()

    def _on_model_ready(self, path: str) -> None:
        self._refresh_store()
        if Path(path) == Path(self.state.config.model.path) and self.info is None:
            self._inspect_key = None  # it did not exist a moment ago: read it again
            self._inspect_if_needed(self.state.config)

    def _refresh_store(self) -> None:
        from studio.core.models.hf_cache import list_cached_models
        from studio.core.models.store import list_models

        try:
            models = list_models()
        except OSError:
            models = []
        self.model_box.set_store(models, self.state.config.model.path, cached=list_cached_models())

    def choose_model_folder(self, folder: str) -> bool:
        """Use ``folder`` as the base model if it looks like one; otherwise say why and keep the old one."""
        path = Path(folder)
        if not (path / "config.json").is_file():
            self.model_box.show_notice(
                f"{folder} has no config.json, so it is not a Hugging Face model folder. Pick the folder "
                "that holds config.json and the .safetensors weights. The base model was not changed.")
            return False
        return self._apply({"model.path": str(path)}, "model.path")

    def _choose_folder_dialog(self) -> None:
        start = str(Path(self.state.config.model.path).parent) if self.state.config.model.path else ""
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", start)
        if folder:
            self.choose_model_folder(folder)

    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", "", "GGUF models (*.gguf)")
        if path:
            self.import_gguf(Path(path))

    def import_gguf(self, path: Path) -> None:
        """Convert a GGUF file into the store in a worker, then make it the base model."""
        from studio.core.models.store import import_gguf_to_store

        self.model_box.show_import_progress(0.0, f"Importing {path.name}…")
        self.tasks.run(
            lambda s: import_gguf_to_store(path, progress=s.progress),
            on_progress=self.model_box.show_import_progress,
            on_result=self._on_imported,
            on_error=self._on_import_failed,
            owner=self,
        )

    def _on_imported(self, dest: Path) -> None:
        self.model_box.end_import()
        self._refresh_store()
        self._apply({"model.path": str(dest)}, "model.path")

    def _on_import_failed(self, message: str, detail: str) -> None:
        self.model_box.end_import()
        show_error(self, message, detail, title="GGUF import failed")

    # -- the machine ------------------------------------------------------------------------------
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
