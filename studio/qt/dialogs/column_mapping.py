"""Map a dataset's own column names to prompt / answer (and optionally system).

Shown when rows match no known format. The mapping goes into the run config
(``dataset.column_map``), so the checks, the preview and training all read the rows the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from studio.core.datasets.formats import to_example
from studio.qt.style import TONE

NONE = "(none)"
# Column names that usually hold each role, best first; used only to pre-select the boxes.
GUESSES = {
    "prompt": ("prompt", "question", "query", "input", "instruction", "user", "source", "q", "context"),
    "answer": ("answer", "response", "reply", "output", "completion", "target", "assistant", "a", "label"),
    "system": ("system", "system_prompt", "persona"),
}


def guess_mapping(columns: list[str]) -> dict[str, str]:
    """A first guess from common column names (never the same column twice)."""
    lower = {c.lower(): c for c in columns}
    out: dict[str, str] = {}
    for role, names in GUESSES.items():
        for name in names:
            col = lower.get(name)
            if col is not None and col not in out.values():
                out[role] = col
                break
    if "prompt" not in out and "answer" not in out and len(columns) >= 2:
        out["prompt"], out["answer"] = columns[0], columns[1]
    return out


class ColumnMappingDialog(QDialog):
    def __init__(self, columns: list[str], sample: Mapping[str, Any] | None = None,
                 current: Mapping[str, str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Map columns")
        self.setMinimumWidth(520)
        self.sample = dict(sample) if isinstance(sample, Mapping) else None
        intro = QLabel(
            "These rows match no known format. Say which column holds the prompt (what the user asks) "
            "and which the answer (what the model should learn to reply). The mapping is saved with the run."
        )
        intro.setWordWrap(True)
        self.combos: dict[str, QComboBox] = {}
        form = QFormLayout()
        start = dict(current or {}) or guess_mapping(columns)
        for role, label in (("prompt", "Prompt column"), ("answer", "Answer column"), ("system", "System column")):
            box = QComboBox()
            if role == "system":
                box.addItem(NONE)
            else:
                box.addItem("")
            box.addItems(columns)
            chosen = start.get(role)
            if chosen in columns:
                box.setCurrentText(chosen)
            box.currentTextChanged.connect(self._refresh)
            self.combos[role] = box
            form.addRow(label, box)
        self.example = QPlainTextEdit()
        self.example.setReadOnly(True)
        self.example.setMaximumHeight(160)
        self.problem = QLabel()
        self.problem.setStyleSheet(f"color: {TONE.error};")
        self.problem.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(QLabel("The first such row becomes:"))
        layout.addWidget(self.example)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self._refresh()

    def mapping(self) -> dict[str, str]:
        out = {}
        for role, box in self.combos.items():
            text = box.currentText()
            if text and text != NONE:
                out[role] = text
        return out

    def set_column(self, role: str, column: str) -> None:
        self.combos[role].setCurrentText(column)

    def _problem(self, mapping: dict[str, str]) -> str:
        if "prompt" not in mapping or "answer" not in mapping:
            return "Choose both a prompt and an answer column."
        if len(set(mapping.values())) != len(mapping):
            return "Each role needs its own column."
        return ""

    def _refresh(self, _text: str = "") -> None:
        mapping = self.mapping()
        problem = self._problem(mapping)
        self.problem.setText(problem)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)
        if problem or self.sample is None:
            self.example.setPlainText("")
            return
        try:
            ex = to_example(self.sample, column_map=mapping)
            self.example.setPlainText("\n\n".join(f"[{role}]\n{content}" for role, content in ex.messages))
        except Exception as err:  # a column of the wrong type: say so, keep the dialog usable
            self.example.setPlainText(json.dumps(self.sample, ensure_ascii=False, default=str)[:2000])
            self.problem.setText(str(err))
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
