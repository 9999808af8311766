"""Configure: the run's method and knobs, bound to the shared config."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.config import RunConfig, TrainingSection, default_lr
from studio.core.errors import StudioError
from studio.qt.errors import show_error
from studio.qt.state import AppState


def _tip(section: type, field: str) -> str:
    return section.model_fields[field].description or ""


class ConfigurePane(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._syncing = False

        self.model_path = QLineEdit()
        self.model_path.setReadOnly(True)
        browse = QPushButton("Choose folder…")
        browse.setToolTip("Pick a local Hugging Face model folder (config.json + safetensors)")
        browse.clicked.connect(self._choose_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_path, 1)
        model_row.addWidget(browse)

        self.method = QComboBox()
        for key, label in (("lora", "LoRA"), ("qlora", "QLoRA (4-bit base)"), ("full", "Full fine-tune")):
            self.method.addItem(label, key)
        self.method.setToolTip(RunConfig.model_fields["method"].description)
        self.rank = QSpinBox(minimum=1, maximum=1024)
        self.rank.setToolTip(_tip(type(state.config.lora), "r"))
        self.lr = QDoubleSpinBox(decimals=6, minimum=1e-7, maximum=1.0, singleStep=1e-5)
        self.lr.setToolTip(_tip(TrainingSection, "lr"))
        self.epochs = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=1000, singleStep=0.5)
        self.epochs.setToolTip(_tip(TrainingSection, "epochs"))
        self.max_steps = QSpinBox(minimum=-1, maximum=10_000_000)
        self.max_steps.setSpecialValueText("use epochs")
        self.max_steps.setToolTip(_tip(TrainingSection, "max_steps"))
        self.batch = QSpinBox(minimum=1, maximum=4096)
        self.batch.setToolTip(_tip(TrainingSection, "batch_size"))
        self.seq = QSpinBox(minimum=8, maximum=1_000_000, singleStep=64)
        self.seq.setToolTip(_tip(TrainingSection, "max_seq_len"))

        model_box = QGroupBox("Base model")
        mf = QFormLayout(model_box)
        mf.addRow("Folder", model_row)
        knobs = QGroupBox("Method and training")
        form = QFormLayout(knobs)
        form.addRow("Method", self.method)
        form.addRow("LoRA rank", self.rank)
        form.addRow("Learning rate", self.lr)
        form.addRow("Epochs", self.epochs)
        form.addRow("Max steps", self.max_steps)
        form.addRow("Batch size", self.batch)
        form.addRow("Max sequence length", self.seq)
        self.message = QLabel("")
        self.message.setObjectName("muted")
        layout = QVBoxLayout(self)
        layout.addWidget(model_box)
        layout.addWidget(knobs)
        layout.addWidget(self.message)
        layout.addStretch(1)

        self.method.currentIndexChanged.connect(self._on_method)
        self.rank.valueChanged.connect(lambda v: self._set("lora.r", v, "lora.alpha", 2.0 * v))
        self.lr.valueChanged.connect(lambda v: self._set("training.lr", v))
        self.epochs.valueChanged.connect(lambda v: self._set("training.epochs", v))
        self.max_steps.valueChanged.connect(lambda v: self._set("training.max_steps", v))
        self.batch.valueChanged.connect(lambda v: self._set("training.batch_size", v))
        self.seq.valueChanged.connect(lambda v: self._set("training.max_seq_len", v))
        state.config_changed.connect(self._load)
        self._load(state.config)

    def _load(self, cfg: RunConfig) -> None:
        self._syncing = True
        try:
            self.model_path.setText(cfg.model.path)
            self.method.setCurrentIndex(self.method.findData(cfg.method))
            self.rank.setValue(cfg.lora.r)
            self.rank.setEnabled(cfg.method != "full")
            self.lr.setValue(cfg.training.lr)
            self.epochs.setValue(cfg.training.epochs)
            self.max_steps.setValue(cfg.training.max_steps)
            self.batch.setValue(cfg.training.batch_size)
            self.seq.setValue(cfg.training.max_seq_len)
        finally:
            self._syncing = False

    def _set(self, *pairs) -> None:
        if self._syncing:
            return
        overrides = dict(zip(pairs[::2], pairs[1::2], strict=True))
        try:
            self.state.update(**overrides)
            self.message.setText("")
        except StudioError as err:
            self.message.setText(err.message)

    def _on_method(self) -> None:
        method = self.method.currentData()
        if self._syncing or method == self.state.config.method:
            return
        # Changing method resets the learning rate to that method's recipe.
        self._set("method", method, "training.lr", default_lr(method))

    def _choose_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", self.model_path.text())
        if not folder:
            return
        if not (Path(folder) / "config.json").is_file():
            show_error(self, f"{folder} has no config.json. Choose a Hugging Face model folder.", title="Not a model folder")
            return
        self._set("model.path", folder)
