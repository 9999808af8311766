"""Split and clean: how eval rows are chosen, and cleaned copies that never touch the original.

The split settings are the run config's (``dataset.eval_ratio``, ``split_seed``, ``eval``), so
what is shown here is what training does. Cleaning writes ``<name>.cleaned.jsonl`` beside the
first file; the pane can then point training at it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.config import DatasetSection, RunConfig
from studio.core.datasets.split import split_sizes
from studio.core.datasets.validate import Report
from studio.qt.style import TONE

# clean.py action -> (label, finding codes whose rows it drops, tooltip)
ACTIONS = {
    "drop_exact_duplicates": ("Drop exact duplicates", ("dup.exact",),
                              "Keep the first of rows that repeat exactly; repeats weigh those examples more."),
    "drop_empty_answers": ("Drop empty answers", ("answer.empty",), "Rows with nothing to learn."),
    "strip_whitespace": ("Strip whitespace around fields", (),
                         "Remove spaces and newlines at the start and end of every text field and turn."),
    "drop_untrainable": ("Drop rows that cannot train", None,
                         "Every row with an error: wrong shape, no answer, answer lost to truncation…"),
}


def _tip(field: str) -> str:
    return DatasetSection.model_fields[field].description or ""


class SplitCleanView(QWidget):
    """Signals carry what the user asked for; the pane applies it to the state and runs the work."""

    split_changed = Signal(dict)       # dotted config overrides
    choose_eval_files = Signal()
    clean_requested = Signal(list)     # clean.py action names
    use_cleaned = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # -- split -------------------------------------------------------------------------------
        self.ratio_radio = QRadioButton("Hold out a share of the training rows")
        self.file_radio = QRadioButton("Use separate eval file(s)")
        group = QButtonGroup(self)
        group.addButton(self.ratio_radio)
        group.addButton(self.file_radio)
        self.ratio = QDoubleSpinBox()   # shown in percent, stored as a fraction
        self.ratio.setRange(0.0, 50.0)
        self.ratio.setSingleStep(5.0)
        self.ratio.setDecimals(1)
        self.ratio.setSuffix(" %")
        self.ratio.setToolTip(_tip("eval_ratio"))
        self.ratio.setMaximumWidth(130)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip(_tip("split_seed"))
        self.seed.setMaximumWidth(130)
        self.eval_files = QLabel()
        self.eval_files.setWordWrap(True)
        self.eval_files.setObjectName("muted")
        self.choose_button = QPushButton("Choose eval file(s)…")
        self.choose_button.clicked.connect(self.choose_eval_files.emit)
        self.split_result = QLabel()
        self.split_result.setWordWrap(True)
        self.split_result.setTextFormat(Qt.TextFormat.RichText)
        ratio_row = QFormLayout()
        ratio_row.addRow("Eval share", self.ratio)
        ratio_row.addRow("Seed", self.seed)
        ratio_box = QWidget()
        ratio_box.setLayout(ratio_row)
        ratio_row.setContentsMargins(24, 0, 0, 0)
        file_row = QHBoxLayout()
        file_row.setContentsMargins(24, 0, 0, 0)
        file_row.addWidget(self.eval_files, 1)
        file_row.addWidget(self.choose_button)
        split_box = QGroupBox("Train / eval split")
        split_layout = QVBoxLayout(split_box)
        split_layout.addWidget(self.ratio_radio)
        split_layout.addWidget(ratio_box)
        split_layout.addWidget(self.file_radio)
        split_layout.addLayout(file_row)
        split_layout.addWidget(self.split_result)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(400)
        self._debounce.timeout.connect(self._emit_split)
        self.ratio.valueChanged.connect(self._on_value)
        self.seed.valueChanged.connect(self._on_value)
        self.ratio_radio.toggled.connect(self._on_mode)
        self._loading = False
        self._remembered_eval: list[str] = []

        # -- clean -------------------------------------------------------------------------------
        clean_box = QGroupBox("Fix without loss: write a cleaned copy")
        clean_layout = QVBoxLayout(clean_box)
        intro = QLabel("The original file is never changed. The copy is UTF-8 JSON Lines next to it.")
        intro.setObjectName("muted")
        intro.setWordWrap(True)
        clean_layout.addWidget(intro)
        self.checks: dict[str, QCheckBox] = {}
        for action, (label, _codes, tip) in ACTIONS.items():
            box = QCheckBox(label)
            box.setToolTip(tip)
            box.setChecked(action != "drop_untrainable")
            box.toggled.connect(self._update_clean_button)
            self.checks[action] = box
            clean_layout.addWidget(box)
        buttons = QHBoxLayout()
        self.clean_button = QPushButton("Write cleaned copy")
        self.clean_button.setObjectName("primary")
        self.clean_button.clicked.connect(lambda: self.clean_requested.emit(self.actions()))
        self.use_button = QPushButton("Train on the cleaned copy")
        self.use_button.setToolTip("Point the run's training data at the cleaned copy")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(lambda: self.use_cleaned.emit(self.cleaned_path))
        buttons.addWidget(self.clean_button)
        buttons.addWidget(self.use_button)
        buttons.addStretch(1)
        clean_layout.addLayout(buttons)
        self.clean_result = QLabel()
        self.clean_result.setWordWrap(True)
        self.clean_result.setTextFormat(Qt.TextFormat.RichText)
        self.clean_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        clean_layout.addWidget(self.clean_result)
        self.cleaned_path = ""

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split_box)
        layout.addWidget(clean_box)
        layout.addStretch(1)
        self._rows = 0
        self._has_rows = False
        self._update_clean_button()

    # -- split -----------------------------------------------------------------------------------
    def set_config(self, cfg: RunConfig) -> None:
        d = cfg.dataset
        self._loading = True
        try:
            if d.eval:
                self._remembered_eval = list(d.eval)
            self.file_radio.setChecked(bool(d.eval))
            self.ratio_radio.setChecked(not d.eval)
            self.ratio.setValue(d.eval_ratio * 100)
            self.seed.setValue(d.split_seed)
            names = ", ".join(Path(f).name for f in (d.eval or self._remembered_eval))
            self.eval_files.setText(names or "no eval file chosen")
            self.eval_files.setToolTip("\n".join(d.eval or self._remembered_eval))
            self._on_mode_widgets()
        finally:
            self._loading = False
        self._cfg = cfg
        self._show_split()

    def set_rows(self, rows: int, eval_rows: int | None) -> None:
        self._rows = rows
        self._eval_rows = eval_rows
        self._has_rows = rows > 0
        self._update_clean_button()
        self._show_split()

    def _on_value(self, _value: float) -> None:
        if not self._loading:
            self._debounce.start()

    def _on_mode_widgets(self) -> None:
        by_ratio = self.ratio_radio.isChecked()
        self.ratio.setEnabled(by_ratio)
        self.seed.setEnabled(by_ratio)
        self.choose_button.setEnabled(not by_ratio)

    def _on_mode(self, by_ratio: bool) -> None:
        self._on_mode_widgets()
        if self._loading:
            return
        if by_ratio:
            self.split_changed.emit({"dataset.eval": []})
        elif self._remembered_eval:
            self.split_changed.emit({"dataset.eval": list(self._remembered_eval)})
        else:
            self.choose_eval_files.emit()

    def _emit_split(self) -> None:
        if not self._loading and self.ratio_radio.isChecked():
            self.split_changed.emit({"dataset.eval_ratio": round(self.ratio.value() / 100, 4),
                                     "dataset.split_seed": self.seed.value()})

    def _show_split(self) -> None:
        cfg = getattr(self, "_cfg", None)
        if cfg is None or not self._rows:
            self.split_result.setText("")
            return
        if cfg.dataset.eval:
            eval_rows = getattr(self, "_eval_rows", None)
            evals = f"{eval_rows:,} eval rows from the eval file(s)" if eval_rows is not None else "eval rows from the eval file(s)"
            self.split_result.setText(f"Training uses <b>{self._rows:,}</b> rows · {evals}")
            return
        train, held = split_sizes(self._rows, cfg.dataset.eval_ratio)
        if not held:
            self.split_result.setText(f"Training uses all <b>{self._rows:,}</b> rows · no eval loss will be reported")
            return
        self.split_result.setText(
            f"Training uses <b>{train:,}</b> rows · <b>{held:,}</b> held out for eval "
            f"(seed {cfg.dataset.split_seed}; the same seed always holds out the same rows)")

    # -- clean -----------------------------------------------------------------------------------
    def actions(self) -> list[str]:
        return [a for a, box in self.checks.items() if box.isChecked()]

    def set_report(self, report: Report | None) -> None:
        """Put the number of rows each action would touch next to it."""
        eval_files = {e.path for e in report.eval_files} if report is not None else set()
        for action, (label, codes, _tip_text) in ACTIONS.items():
            if report is None or codes == ():
                self.checks[action].setText(label)
                continue
            rows = {r for f in report.findings if f.file not in eval_files
                    and (f.code in codes if codes is not None else f.severity == "error") for r in f.rows}
            self.checks[action].setText(f"{label} ({len(rows):,} row{'s' * (len(rows) != 1)})")

    def set_busy(self, busy: bool) -> None:
        self.clean_button.setEnabled(not busy and self._has_rows and bool(self.actions()))
        self.clean_button.setText("Writing…" if busy else "Write cleaned copy")

    def _update_clean_button(self) -> None:
        self.clean_button.setEnabled(self._has_rows and bool(self.actions()))

    def show_cleaned(self, path: str, kept: int, dropped: dict[str, int], stripped: int, original_fp: str,
                     in_use: bool) -> None:
        self.cleaned_path = path
        gone = ", ".join(f"{n:,} {why.replace('_', ' ')}" for why, n in dropped.items()) or "none"
        self.clean_result.setText(
            f"Wrote <b>{Path(path).name}</b>: {kept:,} rows kept; dropped: {gone}; {stripped:,} rows stripped.<br>"
            f"<span style='color:{TONE.note}'>{path}</span><br>"
            f"Original unchanged (sha256 {original_fp[:16]}…)."
        )
        self.use_button.setEnabled(not in_use)
        self.use_button.setText("Training uses the cleaned copy" if in_use else "Train on the cleaned copy")

    def show_clean_error(self, message: str) -> None:
        self.clean_result.setText(f"<span style='color:{TONE.error}'>⚠ {message}</span>")
        self.use_button.setEnabled(False)
