"""Write the current config + an accelerate launch for a multi-GPU box."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from studio.core.config import RunConfig
from studio.core.training.launch import launch_command, write_launch_bundle
from studio.qt.dialogs.sizing import grow_to_fit


class LaunchDialog(QDialog):
    def __init__(self, cfg: RunConfig, default_dir: Path, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run on a multi-GPU machine")
        self.setMinimumWidth(540)
        self.cfg = cfg
        self.gpus = QSpinBox(minimum=1, maximum=64, value=2)
        self.gpus.setToolTip("One training process per GPU")
        self.strategy = QComboBox()
        self.strategy.addItem("DDP — each GPU holds the whole model", "ddp")
        self.strategy.addItem("FSDP — shard the model across GPUs", "fsdp")
        self.folder = QLineEdit(str(default_dir))
        browse = QPushButton("…")
        browse.setToolTip("Choose the output folder")
        browse.setAccessibleName("Choose the output folder")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("GPUs", self.gpus)
        form.addRow("Strategy", self.strategy)
        form.addRow("Write to", row)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.write)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        # Wrapped, or the one-line intro sets the dialog's width (it was ~940 px of mostly empty form).
        intro = QLabel("Writes config.yaml, accelerate_config.yaml and launch.sh. Copy the folder to the GPU "
                       "machine (with the studio installed) and run launch.sh.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.result_label)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder for the launch files", self.folder.text())
        if d:
            self.folder.setText(d)

    def write(self) -> dict[str, Path]:
        files = write_launch_bundle(self.cfg, Path(self.folder.text()), self.gpus.value(), self.strategy.currentData())
        self.result_label.setText(f"Written to {escape(self.folder.text())}.<br>On the GPU machine run:"
                                  f"<br><code>{escape(launch_command())}</code>")
        self.result_label.show()
        grow_to_fit(self)
        return files
