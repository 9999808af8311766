""""See what the model sees": the selected row after the chat template, token by token.

Trained tokens (they carry the loss) sit on green, masked prompt tokens on grey, and whatever
truncation to the max length cuts off is struck through in red. Neighbouring tokens alternate
between two shades so their boundaries show. The text is exactly what training feeds the model.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import QLabel, QTextEdit, QVBoxLayout, QWidget

from studio.core.datasets.preview import RowView
from studio.qt.style import TONE

# kind -> (text colour, background for even tokens, background for odd tokens)
PALETTE = {
    "trained": (TONE.ok_ink, TONE.trained_tint, TONE.ok_edge),
    "masked": (TONE.masked, TONE.neutral_tint, TONE.faint_edge),
    "cut": (TONE.cut_ink, TONE.bad_tint, TONE.cut_edge),
}
LEGEND = (("trained", "trained (carries the loss)"), ("masked", "masked prompt (no loss)"),
          ("cut", "cut off by the max length"))


def char_format(kind: str, token: int | None) -> QTextCharFormat:
    fg, even, odd = PALETTE[kind]
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(fg))
    fmt.setBackground(QColor(odd if (token or 0) % 2 else even))
    if kind == "cut":
        fmt.setFontStrikeOut(True)
    if kind == "trained":
        fmt.setFontWeight(QFont.Weight.DemiBold)
    return fmt


def kind_of_format(fmt: QTextCharFormat) -> str | None:
    """Which kind a character was painted as (for tests and tooltips): read back from its colours."""
    bg = fmt.background().color().name()
    for kind, (_fg, even, odd) in PALETTE.items():
        if bg in (even, odd):
            return kind
    return None


class PreviewView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts = QLabel("Select a row to see it as the model will.")
        self.counts.setWordWrap(True)
        self.counts.setTextFormat(Qt.TextFormat.RichText)
        self.text = QTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.text.setPlaceholderText("The selected row, after the model's chat template, appears here.")
        # One wrapping label, so the legend never sets the pane's minimum width.
        self.legend = QLabel("&nbsp; ".join(
            f"<span style='background:{PALETTE[kind][1]}; color:{PALETTE[kind][0]};'>&nbsp;{words}&nbsp;</span>"
            for kind, words in LEGEND))
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.counts)
        layout.addWidget(self.legend)
        layout.addWidget(self.text, 1)
        self.view: RowView | None = None
        self.row: int | None = None

    def document(self) -> QTextDocument:
        return self.text.document()

    def show_message(self, message: str, row: int | None = None) -> None:
        self.view = None
        self.row = row
        self.text.clear()
        self.counts.setText(message)

    def show_row(self, row: int, label: str, view: RowView) -> None:
        """Paint one rendered row; ``label`` says where it is (e.g. 'line 12')."""
        self.view = view
        self.row = row
        doc = self.text.document()
        doc.clear()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        for seg in view.segments:
            cursor.insertText(view.text[seg.start:seg.end], char_format(seg.kind, seg.token))
        cursor.endEditBlock()
        self.text.moveCursor(QTextCursor.MoveOperation.Start)
        parts = [
            f"<b>{label}</b>: <b>{view.total_tokens:,}</b> tokens",
            f"<span style='color:{TONE.ok}'><b>{view.trained_tokens:,}</b> trained</span>",
            f"<span style='color:{TONE.masked}'>{view.masked_tokens:,} masked</span>",
        ]
        if view.cut_tokens:
            lost = view.trained_full - view.trained_tokens
            parts.append(f"<span style='color:{TONE.error}'><b>{view.cut_tokens:,}</b> cut at max length {view.max_len}"
                         + (f", {lost:,} of them trained" if lost else "") + "</span>")
        else:
            parts.append(f"fits in max length {view.max_len}")
        if view.trained_tokens == 0:
            parts.append(f"<b style='color:{TONE.error}'>nothing left to learn from this row</b>")
        self.counts.setText(" · ".join(parts))

    def kind_at(self, position: int) -> str | None:
        """The kind painted at a character position of the document."""
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(position + 1)
        return kind_of_format(cursor.charFormat())
