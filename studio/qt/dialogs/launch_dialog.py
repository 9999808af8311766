"""Write the current config + an accelerate launch for a multi-GPU box."""

from __future__ import annotations

from pathlib import Path

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


class LaunchDialog(QDialog):
    def __init__(self, cfg: RunConfig, default_dir: Path, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run on a multi-GPU machine")
        self.cfg = cfg
        self.gpus = QSpinBox(minimum=1, maximum=64, value=2)
        self.gpus.setToolTip("One training process per GPU")
        self.strategy = QComboBox()
        self.strategy.addItem("DDP — each GPU holds the whole model", "ddp")
        self.strategy.addItem("FSDP — shard the model across GPUs", "fsdp")
        self.folder = QLineEdit(str(default_dir))
        browse = QPushButton("…")
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
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.write)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Writes config.yaml, accelerate_config.yaml and launch.sh. Copy the folder to the GPU "
                                "machine (with the studio installed) and run launch.sh."))
        layout.addLayout(form)
        layout.addWidget(self.result_label)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder for the launch files", self.folder.text())
        if d:
            self.folder.setText(d)

    def write(self) -> dict[str, Path]:
        files = write_launch_bundle(self.cfg, Path(self.folder.text()), self.gpus.value(), self.strategy.currentData())
        self.result_label.setText(f"Written to {self.folder.text()}.\nOn the GPU machine run:\n  {launch_command()}")
        return files
