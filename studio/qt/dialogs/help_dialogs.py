"""The Help menu's windows: About (with the versions a bug report needs), where the data lives,
and the keyboard shortcuts.

Versions are read from package metadata, not by importing torch or peft, so About opens at once
even before the first run has paid for those imports.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QUrl, qVersion
from PySide6.QtGui import QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

import studio
from studio.core import paths
from studio.qt.settings import settings

_PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate")

# Shortcuts the window defines; Qt's standard keys are shown as this desktop spells them.
SHORTCUTS: tuple[tuple[QKeySequence | str, str], ...] = (
    (QKeySequence(QKeySequence.StandardKey.Open), "Open a dataset"),
    (QKeySequence(QKeySequence.StandardKey.Quit), "Quit (a running training first writes a checkpoint)"),
    (QKeySequence(QKeySequence.StandardKey.HelpContents), "Open the README"),
    ("Ctrl+Enter", "Playground: run the prompt"),
)


def versions() -> list[tuple[str, str]]:
    """(name, version) of the app and the stack under it, for About and for bug reports."""
    out = [("Fine-Tuning Studio", studio.__version__),
           ("Python", f"{platform.python_version()} ({sys.executable})")]
    for name in _PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    out.append(("Qt", f"{qVersion()} (PySide6 {pyside_version})"))
    return out


def data_places() -> list[tuple[str, Path, str]]:
    """(what, folder, why a user would open it): everything the studio writes."""
    return [
        ("Models", paths.models_dir(), "the bundled model once converted, imported GGUF models"),
        ("Runs", paths.runs_dir(), "one folder per run: journal, checkpoints, config"),
        ("Library", paths.library_dir(), "trained adapters with their lineage (and .trash)"),
        ("Exports", paths.exports_dir(), "merged models and GGUF files, unless you chose another folder"),
        ("Settings", Path(settings().fileName()).parent, "window layout, recent files, the current config"),
    ]


def readme_path() -> Path | None:
    """The README beside this installation (a checkout or a bundle that carries it)."""
    for candidate in (Path(studio.__file__).resolve().parents[1] / "README.md",
                      paths.resources_dir().parent / "README.md"):
        if candidate.is_file():
            return candidate
    return None


def open_folder(path: Path) -> bool:
    """Open ``path`` in the desktop's file manager, creating it first so the click never lands nowhere."""
    path.mkdir(parents=True, exist_ok=True)
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def _dialog(parent: QWidget | None, title: str) -> tuple[QDialog, QVBoxLayout]:
    dlg = QDialog(parent)
    dlg.setWindowTitle(title)
    layout = QVBoxLayout(dlg)
    return dlg, layout


def _close_row(dlg: QDialog, layout: QVBoxLayout) -> None:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dlg.reject)
    layout.addWidget(buttons)


def _selectable(text: str) -> QLabel:
    label = QLabel(text)
    label.setTextInteractionFlags(label.textInteractionFlags() | label.textInteractionFlags().TextSelectableByMouse)
    return label


def about_dialog(parent: QWidget | None = None) -> QDialog:
    dlg, layout = _dialog(parent, "About Fine-Tuning Studio")
    intro = QLabel("<b>Fine-Tuning Studio</b><br>Check a dataset, configure and train LoRA / QLoRA / full "
                   "fine-tunes on this machine, and export models other tools open.")
    intro.setWordWrap(True)
    layout.addWidget(intro)
    grid = QGridLayout()
    for row, (name, version) in enumerate(versions()):
        grid.addWidget(QLabel(name), row, 0)
        grid.addWidget(_selectable(version), row, 1)
    layout.addLayout(grid)
    layout.addWidget(QLabel("Select the versions to copy them into a bug report."))
    _close_row(dlg, layout)
    dlg.versions_grid = grid  # for tests
    return dlg


def data_dialog(parent: QWidget | None = None) -> QDialog:
    dlg, layout = _dialog(parent, "Where my data lives")
    note = QLabel("Everything the studio writes stays on this machine, in these folders. "
                  "Your dataset files are read where they are and never changed.")
    note.setWordWrap(True)
    layout.addWidget(note)
    grid = QGridLayout()
    dlg.open_buttons = []
    for row, (what, folder, why) in enumerate(data_places()):
        text = _selectable(f"<b>{what}</b> — {why}<br><code>{folder}</code>")
        text.setWordWrap(True)
        button = QPushButton("Open folder")
        button.setToolTip(f"Open {folder} in the file manager")
        button.setAccessibleName(f"Open the {what} folder")
        button.clicked.connect(lambda _=False, f=folder: open_folder(f))
        grid.addWidget(text, row, 0)
        grid.addWidget(button, row, 1)
        dlg.open_buttons.append((folder, button))
    grid.setColumnStretch(0, 1)
    layout.addLayout(grid)
    _close_row(dlg, layout)
    # The height the wrapped text needs at this width: sizeHint() guesses narrower, taller lines and
    # left a band of empty space around the note.
    dlg.resize(620, layout.totalHeightForWidth(620))
    return dlg


def shortcuts_dialog(parent: QWidget | None = None) -> QDialog:
    dlg, layout = _dialog(parent, "Keyboard shortcuts")
    grid = QGridLayout()
    for row, (keys, what) in enumerate(SHORTCUTS):
        text = keys.toString(QKeySequence.SequenceFormat.NativeText) if isinstance(keys, QKeySequence) else keys
        grid.addWidget(QLabel(f"<b>{text}</b>"), row, 0)
        grid.addWidget(QLabel(what), row, 1)
    grid.setColumnStretch(1, 1)
    layout.addLayout(grid)
    _close_row(dlg, layout)
    return dlg
