"""One playground column: which model answers (the base or an adapter), its streamed text, its numbers."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.formatting import format_seconds, run_method_label
from studio.core.library.playground import Generation
from studio.core.library.registry import LibraryEntry

BASE_LABEL = "Base model (no adapter)"
_FINISH = {"eos": "finished", "length": "hit the token limit", "stopped": "stopped"}


class ColumnView(QFrame):
    remove_requested = Signal(object)  # self
    choice_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("playgroundColumn")
        self.setMinimumWidth(150)
        self.setStyleSheet("QFrame#playgroundColumn { background: palette(base); border: 1px solid palette(midlight); border-radius: 6px; }")
        self.choice = QComboBox()
        self.choice.setMinimumContentsLength(8)
        self.choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.choice.setToolTip("Which model answers in this column")
        self.touched = False  # the user picked this column's model (programmatic fills block signals)
        self.choice.currentIndexChanged.connect(self._on_choice)
        self.remove_button = QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setToolTip("Remove this column")
        self.remove_button.setAccessibleName("Remove this column")  # a screen reader would say "multiplication x"
        self.remove_button.setAutoRaise(True)
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("The answer streams in here.")
        self.output.setStyleSheet("QPlainTextEdit { font-family: sans-serif; font-size: 10pt; border: none; }")
        self.stats = QLabel("")
        self.stats.setObjectName("muted")
        self.stats.setWordWrap(True)
        self.score = QLabel("")
        self.score.setWordWrap(True)
        self.score.hide()
        head = QHBoxLayout()
        head.addWidget(self.choice, 1)
        head.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(head)
        layout.addWidget(self.output, 1)
        layout.addWidget(self.score)
        layout.addWidget(self.stats)
        self.chunks = 0
        self.running = False
        self._text = ""
        self.set_entries([])

    # -- which model ----------------------------------------------------------------------------
    def set_entries(self, entries: list[LibraryEntry], select: str | None = "keep") -> None:
        """Offer the base and ``entries``; keep the current choice when it is still offered."""
        keep = self.entry_id() if select == "keep" else select
        before = self._signature()
        self.choice.blockSignals(True)
        self.choice.clear()
        self.choice.addItem(BASE_LABEL, None)
        self._entries = {e.id: e for e in entries}
        for e in entries:
            loss = e.metrics.get("eval_loss")
            self.choice.addItem(e.name, e.id)
            self.choice.setItemData(self.choice.count() - 1,
                                    f"{e.name} · {run_method_label(e.method, e.objective)}" + (f" · eval loss {loss:.4f}" if isinstance(loss, float) else ""),
                                    Qt.ItemDataRole.ToolTipRole)
        index = self.choice.findData(keep) if keep else 0
        self.choice.setCurrentIndex(max(0, index))
        self.choice.blockSignals(False)
        if self._signature() != before:
            # Re-pointed (the chosen entry is gone, or the same run refreshed it with newer weights):
            # the answer shown was written by another model and must not stand under this one.
            self.clear_answer()

    def _signature(self) -> tuple[str | None, str]:
        """The model this column answers with: entry id plus what changes when its weights do."""
        entry = getattr(self, "_entries", {}).get(self.entry_id()) if self.choice.count() else None
        return self.choice.currentData(), repr(sorted(entry.metrics.items())) if entry else ""

    def clear_answer(self) -> None:
        self.output.clear()
        self._text = ""
        self.chunks = 0
        self.stats.setText("")
        self.show_score("")

    def _on_choice(self, _index: int) -> None:
        self.clear_answer()
        self.touched = True
        self.choice_changed.emit()

    def entry_id(self) -> str | None:
        return self.choice.currentData()

    def entry(self) -> LibraryEntry | None:
        key = self.entry_id()
        return self._entries.get(key) if key else None

    def label(self) -> str:
        return self.choice.currentText() if self.entry_id() else "base"

    def select(self, entry_id: str | None) -> None:
        self.choice.setCurrentIndex(max(0, self.choice.findData(entry_id)) if entry_id else 0)

    # -- streamed output ------------------------------------------------------------------------
    def begin(self, note: str = "") -> None:
        self.output.clear()
        self._text = ""
        self.chunks = 0
        self.running = True
        self.stats.setText(note or "Waiting for its turn…")

    def start_item(self, note: str) -> None:
        self.output.clear()
        self._text = ""
        self.running = True
        self.stats.setText(note)

    def append(self, text: str) -> None:
        self.chunks += 1
        self._text += text
        cursor = self.output.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.output.setTextCursor(cursor)
        self.output.ensureCursorVisible()

    def finish(self, gen: Generation, *, replace_text: bool = True) -> None:
        """The authoritative answer replaces the streamed one (they only differ if decoding merged chunks)."""
        self.running = False
        if replace_text and gen.text != self._text:
            self._text = gen.text
            self.output.setPlainText(gen.text)
        first = "—" if gen.first_token_s is None else format_seconds(gen.first_token_s, 2)
        self.stats.setText(f"{gen.new_tokens} tokens · {gen.tokens_per_s:.1f} tok/s · first token {first} · "
                           f"{_FINISH.get(gen.finish, gen.finish)}")

    def fail(self, message: str) -> None:
        self.running = False
        self.stats.setText(f"⚠ {message}")

    def show_score(self, text: str) -> None:
        self.score.setText(text)
        self.score.setVisible(bool(text))

    def text(self) -> str:
        """The answer exactly as generated (the text widget turns e.g. no-break spaces into spaces)."""
        return self._text
