"""Which Linear layers get LoRA adapters: presets plus a checkable list of what the model really has.

The list comes from the meta-device inspection, so it names the model's own layers (``c_attn`` on
GPT-2, ``q_proj`` on Llama) with their shapes; nothing is guessed from the architecture name.
Ticking every box is saved as ``all-linear`` so the config stays valid for a model of another size.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.config import TARGET_PRESETS
from studio.core.errors import StudioError
from studio.core.models.introspect import ALL_LINEAR, ModelInfo, resolve_targets

PRESET_TIPS = {
    "q,v": "Query and value projections only: the original LoRA paper's choice, fewest parameters.",
    "all attention": "Every attention projection (q, k, v, o).",
    "all linear": "Every Linear layer except the output head (QLoRA paper's choice): best quality, most parameters.",
}


def _shape_text(info: ModelInfo, name: str) -> str:
    mods = [m for m in info.linear_modules if m.name == name]
    count = sum(m.count for m in mods)
    shapes = ", ".join(f"{m.d_in}→{m.d_out}" for m in mods)
    return f"{name}   {shapes}   ×{count}"


class TargetPicker(QWidget):
    """Emits ``edited(list[str])`` with a ``lora.target_modules`` value when the user changes the choice."""

    edited = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info: ModelInfo | None = None
        self._syncing = False
        self.preset_buttons: dict[str, QPushButton] = {}
        presets = QHBoxLayout()
        presets.setContentsMargins(0, 0, 0, 0)
        presets.addWidget(QLabel("Presets:"))
        for key in TARGET_PRESETS:
            b = QPushButton(key)
            b.setToolTip(PRESET_TIPS.get(key, ""))
            b.clicked.connect(lambda _=False, k=key: self.apply_preset(k))
            presets.addWidget(b)
            self.preset_buttons[key] = b
        presets.addStretch(1)
        self.list = QListWidget()
        self.list.setToolTip("Tick the layers that get an adapter. Shapes are input → output features, "
                             "× how many there are in the model.")
        self.list.setMinimumHeight(120)
        self.list.itemChanged.connect(self._on_item_changed)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("fieldError")
        self.message.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(presets)
        layout.addWidget(self.list)
        layout.addWidget(self.message)

    # -- model and selection ----------------------------------------------------------------------
    def set_model(self, info: ModelInfo | None) -> None:
        self.info = info
        self._syncing = True
        try:
            self.list.clear()
            if info is None:
                item = QListWidgetItem("Layers appear here once the model is inspected.")
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                self.list.addItem(item)
            else:
                for name in info.target_names:
                    item = QListWidgetItem(_shape_text(info, name))
                    item.setData(Qt.ItemDataRole.UserRole, name)
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Unchecked)
                    self.list.addItem(item)
            available = set(info.target_names) if info else set()
            for key, button in self.preset_buttons.items():
                names = TARGET_PRESETS[key]
                ok = info is None or names == [ALL_LINEAR] or set(names) <= available
                button.setEnabled(ok)
                if not ok:
                    button.setToolTip(f"This model has no {', '.join(n for n in names if n not in available)}.")
                else:
                    button.setToolTip(PRESET_TIPS.get(key, ""))
        finally:
            self._syncing = False

    def set_selection(self, target_modules: list[str]) -> None:
        """Tick what ``target_modules`` resolves to on this model; say so when it names missing layers."""
        if self.info is None:
            return
        try:
            chosen = set(resolve_targets(self.info, target_modules))
            self.message.hide()
        except StudioError as err:
            chosen = set()
            self.message.setText(err.message + " Pick a preset or tick layers below.")
            self.message.show()
        self._syncing = True
        try:
            for i in range(self.list.count()):
                item = self.list.item(i)
                name = item.data(Qt.ItemDataRole.UserRole)
                item.setCheckState(Qt.CheckState.Checked if name in chosen else Qt.CheckState.Unchecked)
        finally:
            self._syncing = False

    def checked_names(self) -> list[str]:
        out = []
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(item.data(Qt.ItemDataRole.UserRole))
        return out

    def item_for(self, name: str) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == name:
                return item
        return None

    # -- user actions -----------------------------------------------------------------------------
    def apply_preset(self, key: str) -> None:
        self.edited.emit(list(TARGET_PRESETS[key]))

    def _on_item_changed(self, _item: QListWidgetItem) -> None:
        if self._syncing or self.info is None:
            return
        names = self.checked_names()
        if not names:
            self.message.setText("Choose at least one layer: LoRA needs somewhere to put its adapters.")
            self.message.show()
            return
        self.message.hide()
        self.edited.emit([ALL_LINEAR] if len(names) == len(self.info.target_names) else names)
