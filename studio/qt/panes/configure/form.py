"""The Configure pane's form: field grids, the editors bound to run-config keys, and the Method,
LoRA, Training and Evaluation boxes built from them. A mixin of ``ConfigurePane``: it builds widgets
and registers them in ``self.editors``; the pane binds them to the configure session they edit."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.configure.fields import field_description
from studio.core.datasets.templates import LABELS as TEMPLATE_LABELS
from studio.qt.style import TONE
from studio.qt.widgets.config_fields import LearningRateSpinBox
from studio.qt.widgets.target_picker import TargetPicker

METHODS = (
    ("lora", "LoRA: adapters on a 16-bit base"),
    ("qlora", "QLoRA: adapters on a 4-bit base"),
    ("full", "Full fine-tune: every weight trains"),
)
OBJECTIVES = (
    ("sft", "Supervised (SFT): learn the answers"),
    ("dpo", "DPO: prefer the chosen answer (pairs)"),
    ("orpo", "ORPO: answer loss + preference (pairs)"),
)
DPO_LOSSES = (("sigmoid", "sigmoid (DPO)"), ("ipo", "IPO"), ("hinge", "hinge"), ("robust", "robust"))


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
        msg.setStyleSheet(f"color: {TONE.error};")
        msg.hide()
        self.addWidget(msg, 2 * row + 1, 2 * col, 1, 2)
        return msg


class ConfigureForm:
    """Builders for the pane's editors (mixed into ConfigurePane)."""

    def _bind(self, grid: _FieldGrid, label: str, key: str, widget: QWidget) -> QWidget:
        """Register ``widget`` as the editor of config ``key``; the user's edits go to the session."""
        self.editors[key] = widget
        self._messages[key] = grid.add(label, widget, field_description(key))
        if isinstance(widget, QComboBox):
            widget.currentIndexChanged.connect(lambda _i, w=widget: self._edit(key, w.currentData()))
        elif isinstance(widget, QCheckBox):
            widget.toggled.connect(lambda v: self._edit(key, bool(v)))
        elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.valueChanged.connect(lambda v: self._edit(key, v))
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
        self.method = self._bind(grid, "Method", "method", self._combo(METHODS))
        self.objective = self._bind(grid, "Objective", "objective", self._combo(OBJECTIVES))
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
        # Only a preference run reads these, so an SFT config does not show them at all.
        self.preference_box = QGroupBox("Preference (DPO / ORPO)")
        pgrid = _FieldGrid(2)
        self.beta = self._bind(pgrid, "Beta", "preference.beta", self._dspin(0.01, 10.0, 0.05))
        self.loss_type = self._bind(pgrid, "DPO loss", "preference.loss_type", self._combo(DPO_LOSSES))
        self.preference_box.setLayout(pgrid)
        layout = QVBoxLayout(box)
        layout.addLayout(grid)
        layout.addWidget(self.preference_box)
        layout.addWidget(self.quant_box)
        return box

    def _show_objective(self, objective: str) -> None:
        """Beta and the loss type exist for DPO/ORPO only; ORPO has no DPO loss variants."""
        self.preference_box.setVisible(objective != "sft")
        self.loss_type.setEnabled(objective == "dpo")

    def _lora_box(self) -> QGroupBox:
        self.lora_box = QGroupBox("LoRA adapter")
        grid = _FieldGrid(2)
        self.rank = self._bind(grid, "Rank r", "lora.r", self._spin(1, 1024))
        alpha_row = QWidget()
        row = QHBoxLayout(alpha_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.alpha = self._dspin(0.01, 1e5, 1.0, decimals=2)
        self.alpha_link = QCheckBox("= 2 × rank")
        self.alpha_link.setToolTip("Keep alpha at twice the rank, the usual recipe. Untick to set alpha yourself.")
        self.alpha_link.setChecked(True)
        self.alpha_link.toggled.connect(lambda on: self._syncing or self.session.set_alpha_linked(on))
        row.addWidget(self.alpha, 1)
        row.addWidget(self.alpha_link)
        self._bind(grid, "Alpha", "lora.alpha", alpha_row)
        self.editors["lora.alpha"] = self.alpha
        self.alpha.valueChanged.connect(lambda v: self._edit("lora.alpha", v))
        self.alpha.setToolTip(field_description("lora.alpha"))
        self.dropout = self._bind(grid, "Dropout", "lora.dropout", self._dspin(0.0, 0.95, 0.05))
        self.use_rslora = self._bind(grid, "", "lora.use_rslora", QCheckBox("rsLoRA (alpha / √r)"))
        self.use_dora = self._bind(grid, "", "lora.use_dora", QCheckBox("DoRA"))
        self.targets = TargetPicker()
        self.targets.setToolTip(field_description("lora.target_modules"))
        self.targets.edited.connect(lambda names: self._edit("lora.target_modules", names))
        self.editors["lora.target_modules"] = self.targets
        layout = QVBoxLayout(self.lora_box)
        layout.addLayout(grid)
        targets_label = QLabel("Target layers")
        targets_label.setToolTip(field_description("lora.target_modules"))
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
        self.length_mode.currentIndexChanged.connect(
            lambda _i: self._syncing or self.session.set_length_mode(self.length_mode.currentData()))
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
