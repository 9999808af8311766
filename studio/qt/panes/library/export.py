"""The export dialog: merged model (fp32/bf16/fp16), adapter only (folder or zip), or GGUF (f16/q8_0).

It only gathers a choice; the export itself runs in a worker owned by the Library pane. The
destination is suggested from the adapter's name and the format, and the dialog refuses an
existing destination unless the user ticks Overwrite, because an export replaces the folder.

An export that is accepted is remembered in the settings file, so across launches: its folder and
format become the next opening's suggestion, and a destination typed or browsed for an adapter and
format comes back when that adapter is exported in that format again, instead of the suggestion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from studio.core import paths
from studio.core.library.gguf_export import GGUF_TYPES
from studio.core.library.registry import LibraryEntry
from studio.qt.dialogs.sizing import grow_to_fit
from studio.qt.settings import settings
from studio.qt.style import TONE

KINDS = ("merged", "adapter", "gguf")
DTYPES = ("bf16", "fp16", "fp32")


@dataclass(frozen=True)
class ExportChoice:
    kind: str = "merged"  # merged | adapter | gguf
    dtype: str = "bf16"
    zip: bool = False
    gguf_type: str = "q8_0"
    out: Path = Path()
    check: bool = True
    overwrite: bool = False

    def export_kwargs(self) -> dict:
        """Arguments for ``studio.core.library.merge.export_model``."""
        return {
            "merge": self.kind != "adapter", "dtype": self.dtype,
            "gguf": self.gguf_type if self.kind == "gguf" else None,
            "check": self.check, "overwrite": self.overwrite,
        }


SETTINGS_GROUP = "export"


def default_destination(entry: LibraryEntry, choice: ExportChoice, folder: Path | None = None) -> Path:
    folder = folder or paths.exports_dir()
    if choice.kind == "adapter":
        return folder / (f"{entry.name}-adapter" + (".zip" if choice.zip else ""))
    if choice.kind == "gguf":
        return folder / f"{entry.name}-gguf-{choice.gguf_type}"
    return folder / f"{entry.name}-merged-{choice.dtype}"


def remembered_folder() -> Path | None:
    """The folder of the last accepted export, while it still exists."""
    raw = str(settings().value(f"{SETTINGS_GROUP}/folder", "") or "")
    return Path(raw) if raw and Path(raw).is_dir() else None


def _format_key(choice: ExportChoice) -> str:
    return {"adapter": f"adapter-{'zip' if choice.zip else 'folder'}", "gguf": f"gguf-{choice.gguf_type}"}.get(
        choice.kind, f"merged-{choice.dtype}")


def remember(entry: LibraryEntry, choice: ExportChoice, custom: bool) -> None:
    """Keep an accepted choice for the next opening (see the module's docstring)."""
    s = settings()
    s.setValue(f"{SETTINGS_GROUP}/folder", str(choice.out.parent))
    s.setValue(f"{SETTINGS_GROUP}/kind", choice.kind)
    s.setValue(f"{SETTINGS_GROUP}/dtype", choice.dtype)
    s.setValue(f"{SETTINGS_GROUP}/zip", "1" if choice.zip else "0")
    s.setValue(f"{SETTINGS_GROUP}/gguf_type", choice.gguf_type)
    key = _chosen_key(entry, choice)
    if custom:
        s.setValue(key, str(choice.out))
    else:
        s.remove(key)
    s.sync()


def chosen_destination(entry: LibraryEntry, choice: ExportChoice) -> Path | None:
    """The destination the user chose for this adapter and format, if any."""
    raw = str(settings().value(_chosen_key(entry, choice), "") or "")
    return Path(raw) if raw else None


def _chosen_key(entry: LibraryEntry, choice: ExportChoice) -> str:
    return f"{SETTINGS_GROUP}/chosen/{entry.id}/{_format_key(choice)}"


class ExportDialog(QDialog):
    def __init__(self, entry: LibraryEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.setWindowTitle(f"Export {entry.name}")
        self.setMinimumWidth(560)
        self._dest_edited = False

        self.kind_buttons = QButtonGroup(self)
        self.merged_radio = QRadioButton("Merged model")
        self.adapter_radio = QRadioButton("Adapter only")
        self.gguf_radio = QRadioButton("GGUF for llama.cpp / Ollama")
        hints = (
            "The adapter merged into its base: a plain transformers model folder with tokenizer and chat template.",
            "The PEFT adapter files (a few MiB); whoever uses them needs the same base model.",
            "A merged model plus a .gguf file and an Ollama Modelfile (ollama create NAME -f Modelfile).",
        )
        self.dtype_box = QComboBox()
        self.dtype_box.addItems(DTYPES)
        self.dtype_box.setToolTip("Weights dtype of the merged model; bf16 halves the size of fp32")
        self.zip_box = QComboBox()
        self.zip_box.addItems(["Folder", "Zip archive"])
        self.gguf_box = QComboBox()
        self.gguf_box.addItems(GGUF_TYPES)
        self.gguf_box.setCurrentText("q8_0")
        self.gguf_box.setToolTip("f16/bf16: full 16-bit precision; q8_0: about half the size, near-identical "
                                 "answers; q4_k_m: about a quarter, what Ollama uses by default (made by "
                                 "llama.cpp's quantizer)")
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        options = (self.dtype_box, self.zip_box, self.gguf_box)
        for row, (radio, hint, option) in enumerate(zip((self.merged_radio, self.adapter_radio, self.gguf_radio),
                                                        hints, options, strict=True)):
            self.kind_buttons.addButton(radio, row)
            label = QLabel(hint)
            label.setObjectName("muted")
            label.setWordWrap(True)
            grid.addWidget(radio, 2 * row, 0)
            grid.addWidget(option, 2 * row, 2)
            grid.addWidget(label, 2 * row + 1, 0, 1, 3)
        self.merged_radio.setChecked(True)

        self.dest = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        dest_row = QHBoxLayout()
        dest_row.addWidget(QLabel("Destination"))
        dest_row.addWidget(self.dest, 1)
        dest_row.addWidget(browse)
        self.check_box = QCheckBox("Prove the export matches base + adapter (equivalence check)")
        self.check_box.setChecked(True)
        self.overwrite_box = QCheckBox("Overwrite the destination if it exists")
        self.problem = QLabel("")
        self.problem.setStyleSheet(f"color: {TONE.error}")
        self.problem.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addSpacing(6)
        layout.addLayout(dest_row)
        layout.addWidget(self.check_box)
        layout.addWidget(self.overwrite_box)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)

        self.kind_buttons.idToggled.connect(lambda _i, on: on and self._on_options())
        for box in options:
            box.currentIndexChanged.connect(self._on_options)
        self.dest.textEdited.connect(self._on_dest_edited)
        self.overwrite_box.toggled.connect(self._validate)
        self._folder = remembered_folder()
        self._restore_format()
        self._on_options()

    def _restore_format(self) -> None:
        """Start from the format of the last accepted export."""
        s = settings()
        kind = str(s.value(f"{SETTINGS_GROUP}/kind", "") or "")
        if kind not in KINDS:
            return
        self.set_choice(kind, dtype=str(s.value(f"{SETTINGS_GROUP}/dtype", "bf16")),
                        zip_file=str(s.value(f"{SETTINGS_GROUP}/zip", "0")) == "1",
                        gguf_type=str(s.value(f"{SETTINGS_GROUP}/gguf_type", "q8_0")))

    def accept(self) -> None:
        choice = self.choice()
        remember(self.entry, choice, custom=choice.out != self.suggestion(choice))
        super().accept()

    def choice(self) -> ExportChoice:
        kind = KINDS[max(0, self.kind_buttons.checkedId())]
        return ExportChoice(kind=kind, dtype=self.dtype_box.currentText(), zip=self.zip_box.currentIndex() == 1,
                            gguf_type=self.gguf_box.currentText(), out=Path(self.dest.text().strip()).expanduser(),
                            check=self.check_box.isChecked(), overwrite=self.overwrite_box.isChecked())

    def set_choice(self, kind: str, *, dtype: str | None = None, zip_file: bool | None = None,
                   gguf_type: str | None = None, out: Path | None = None) -> None:
        """Set the fields the way a user would (used by keyboard-free callers and tests)."""
        self.kind_buttons.button(KINDS.index(kind)).setChecked(True)
        if dtype is not None and dtype in DTYPES:
            self.dtype_box.setCurrentText(dtype)
        if zip_file is not None:
            self.zip_box.setCurrentIndex(int(zip_file))
        if gguf_type is not None and gguf_type in GGUF_TYPES:
            self.gguf_box.setCurrentText(gguf_type)
        if out is not None:
            self.dest.setText(str(out))
            self._on_dest_edited()

    def _on_options(self) -> None:
        kind = KINDS[max(0, self.kind_buttons.checkedId())]
        self.dtype_box.setEnabled(kind in ("merged", "gguf"))
        self.zip_box.setEnabled(kind == "adapter")
        self.gguf_box.setEnabled(kind == "gguf")
        self.check_box.setText("Verify the copied files (sha256)" if kind == "adapter"
                               else "Prove the export matches base + adapter (equivalence check)")
        if not self._dest_edited:
            choice = self.choice()
            chosen = chosen_destination(self.entry, choice)
            self.dest.setText(str(chosen or self.suggestion(choice)))
        self._validate()

    def suggestion(self, choice: ExportChoice) -> Path:
        return default_destination(self.entry, choice, getattr(self, "_folder", None))

    def _on_dest_edited(self, *_args: object) -> None:
        self._dest_edited = True
        self._validate()

    def _validate(self) -> None:
        c = self.choice()
        problem = ""
        if not self.dest.text().strip():
            problem = "Choose where to write the export."
        elif c.kind == "adapter" and c.zip and c.out.suffix.lower() != ".zip":
            problem = "A zip export needs a file name ending in .zip."
        elif c.out.exists() and not c.overwrite:
            problem = f"{c.out.name} already exists: choose another name or tick Overwrite."
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        self.ok_button.setEnabled(not problem)
        grow_to_fit(self)

    def _browse(self) -> None:
        c = self.choice()
        if c.kind == "adapter" and c.zip:
            path, _ = QFileDialog.getSaveFileName(self, "Export adapter as zip", str(c.out), "Zip archives (*.zip)")
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Export to a new folder", str(c.out))
        if path:
            self.dest.setText(path)
            self._on_dest_edited()
