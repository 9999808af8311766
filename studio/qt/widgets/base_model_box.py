"""The base-model section of the Configure room: where the model comes from and what it is.

A view: the pane decides what to inspect and when; this box shows the path, the store, the
safety switches for pickle weights and remote code, and the inspected facts (architecture,
parameters, dtype, context length) or a plain message saying why the folder cannot be used.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.configure.fields import field_description
from studio.core.formatting import format_bytes, format_count
from studio.core.models.hf_cache import CachedModel
from studio.core.models.introspect import ModelInfo
from studio.core.models.store import StoredModel
from studio.qt.style import TONE

SAFETY_WARNING = (
    "⚠ Allowed: loading this model may run code from its files with your permissions. "
    "Keep this on only for models from a source you trust."
)


class BaseModelBox(QGroupBox):
    folder_requested = Signal()
    store_chosen = Signal(str)  # folder of a stored model
    import_requested = Signal()
    allow_pickle_toggled = Signal(bool)
    trust_code_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Base model", parent)
        self._syncing = False
        self.path = QLineEdit()
        self.path.setReadOnly(True)
        self.path.setPlaceholderText("No model chosen")
        self.path.setToolTip(field_description("model.path"))
        self.folder_button = QPushButton("Folder…")
        self.folder_button.setToolTip("Pick a local Hugging Face model folder (config.json + .safetensors weights).")
        self.folder_button.clicked.connect(self.folder_requested)
        self.store = QComboBox()
        self.store.setToolTip("Models already in the studio's store: the bundled model and imported GGUF files.")
        self.store.activated.connect(self._on_store_activated)
        self.import_button = QPushButton("Import GGUF…")
        self.import_button.setToolTip("Convert a .gguf file into a trainable model folder in the store "
                                      "(dequantised to 16 bit; takes a while for big models).")
        self.import_button.clicked.connect(self.import_requested)

        self.allow_pickle = QCheckBox("Allow pickle weights (.bin)")
        self.allow_pickle.setToolTip(field_description("model.allow_pickle"))
        self.allow_pickle.toggled.connect(self._on_allow_pickle)
        self.trust_code = QCheckBox("Trust remote code")
        self.trust_code.setToolTip(field_description("model.trust_remote_code"))
        self.trust_code.toggled.connect(self._on_trust_code)
        self.warning = QLabel(SAFETY_WARNING)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(f"color: {TONE.caution_ink}; background: {TONE.warn_tint}; border-radius: 4px; padding: 4px 6px;")
        self.warning.hide()

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.hide()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.hide()

        self.architecture = QLabel("–")
        self.params = QLabel("–")
        self.dtype = QLabel("–")
        self.context = QLabel("–")
        self.shape = QLabel("–")
        self.shape.setWordWrap(True)
        for lbl in (self.architecture, self.params, self.dtype, self.context, self.shape):
            lbl.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(self.folder_button)
        source_row = QHBoxLayout()
        source_row.addWidget(self.store, 1)
        source_row.addWidget(self.import_button)
        safety_row = QHBoxLayout()
        safety_row.addWidget(self.allow_pickle)
        safety_row.addWidget(self.trust_code)
        safety_row.addStretch(1)
        facts = QFormLayout()
        facts.addRow("Architecture", self.architecture)
        facts.addRow("Parameters", self.params)
        facts.addRow("Weights dtype", self.dtype)
        facts.addRow("Context length", self.context)
        facts.addRow("Shape", self.shape)
        form = QFormLayout()
        form.addRow("Folder", path_row)
        form.addRow("Or use", source_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(safety_row)
        layout.addWidget(self.warning)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(facts)

    # -- store ------------------------------------------------------------------------------------
    def set_store(self, models: list[StoredModel], current: str, cached: list[CachedModel] | None = None) -> None:
        """The store's models, then (in their own group) those already in the Hugging Face cache."""
        self._syncing = True
        try:
            self.store.clear()
            self.store.addItem("Model store…" if models else "Model store (empty)", None)
            for m in models:
                tag = "imported GGUF" if m.source == "gguf" else m.source
                self.store.addItem(f"{m.name}  ({m.model_type}, {tag})", str(m.path))
            if cached:
                self._add_cached(cached)
            idx = self.store.findData(current)
            self.store.setCurrentIndex(max(idx, 0))
        finally:
            self._syncing = False

    def _add_cached(self, cached: list[CachedModel]) -> None:
        """A header row, then one row per cached repo. A repo without a config cannot even be
        inspected, so its row is greyed out; the reason is in every unusable row's tooltip."""
        self.store.insertSeparator(self.store.count())
        self.store.addItem("Hugging Face cache", None)
        header = self.store.model().item(self.store.count() - 1)  # type: ignore[attr-defined]
        header.setEnabled(False)
        header.setToolTip("Models you already downloaded with transformers or huggingface-cli: used in place, "
                          "nothing is copied or downloaded.")
        for m in cached:
            size = format_bytes(m.size_bytes) if m.size_bytes else "no weights"
            state = "trainable" if m.trainable else "not trainable"
            self.store.addItem(f"{m.repo_id}  ({m.model_type}, {size}, {state})", str(m.path))
            row = self.store.count() - 1
            tip = f"{m.path}\nRevision {m.revision}" + (f"\nNot trainable: {m.problem}" if m.problem else "")
            self.store.setItemData(row, tip, Qt.ItemDataRole.ToolTipRole)
            if not m.has_config:
                self.store.model().item(row).setEnabled(False)  # type: ignore[attr-defined]

    def _on_store_activated(self, index: int) -> None:
        path = self.store.itemData(index)
        if path and not self._syncing:
            self.store_chosen.emit(path)

    # -- safety -----------------------------------------------------------------------------------
    def set_safety(self, allow_pickle: bool, trust_code: bool) -> None:
        self._syncing = True
        try:
            self.allow_pickle.setChecked(allow_pickle)
            self.trust_code.setChecked(trust_code)
        finally:
            self._syncing = False
        self.warning.setVisible(allow_pickle or trust_code)

    def _on_allow_pickle(self, on: bool) -> None:
        self.warning.setVisible(on or self.trust_code.isChecked())
        if not self._syncing:
            self.allow_pickle_toggled.emit(on)

    def _on_trust_code(self, on: bool) -> None:
        self.warning.setVisible(on or self.allow_pickle.isChecked())
        if not self._syncing:
            self.trust_code_toggled.emit(on)

    # -- what the model is ------------------------------------------------------------------------
    def set_path(self, path: str) -> None:
        self.path.setText(path)
        self.path.setCursorPosition(0)
        self.path.setToolTip(path or field_description("model.path"))

    def _clear_facts(self) -> None:
        for lbl in (self.architecture, self.params, self.dtype, self.context, self.shape):
            lbl.setText("–")

    def show_busy(self, text: str) -> None:
        self._clear_facts()
        self._set_status(text, "muted")

    def show_problem(self, text: str) -> None:
        self._clear_facts()
        self._set_status(text, "error")

    def show_notice(self, text: str) -> None:
        """A problem with something the user tried, shown without hiding the current model's facts."""
        self._set_status(text, "error")

    def show_info(self, info: ModelInfo) -> None:
        self._set_status("", "")
        self.architecture.setText(f"{info.architecture} ({info.model_type})")
        self.params.setText(f"{format_count(info.total_params)}  ({info.total_params:,})")
        self.dtype.setText(info.config_dtype or "not declared (float32)")
        self.context.setText(f"{info.context_length:,} tokens" if info.context_length else "not declared")
        kv = f" ({info.num_kv_heads} KV)" if info.num_kv_heads != info.num_heads else ""
        self.shape.setText(f"{info.num_layers} layers · hidden {info.hidden_size:,} · {info.num_heads} heads{kv} · "
                           f"vocabulary {info.vocab_size:,}")
        self.path.setToolTip(info.path)

    def _set_status(self, text: str, kind: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))
        colour = {"error": f"color: {TONE.error};", "muted": f"color: {TONE.note};"}.get(kind, "")
        if colour and colour != self.status.styleSheet():
            self.status.setStyleSheet(colour)

    def show_import_progress(self, frac: float, message: str) -> None:
        self.progress.show()
        self.progress.setValue(int(frac * 100))
        self.progress.setFormat(f"{message} %p%" if message else "%p%")
        self.import_button.setEnabled(False)

    def end_import(self) -> None:
        self.progress.hide()
        self.import_button.setEnabled(True)
