""""See what the model sees": the selected row after the chat template, token by token.

Trained tokens (they carry the loss) sit on green, masked prompt tokens on grey, and whatever
truncation to the max length cuts off is struck through in red. Neighbouring tokens alternate
between two shades so their boundaries show. The text is exactly what training feeds the model.
A preference pair shows its shared prompt once, then the chosen and the rejected answer, each under a
heading with its token count (the headings are the only text that is not the model's).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import QLabel, QTextEdit, QVBoxLayout, QWidget

from studio.core.datasets.preview import PairView, RowView
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
        self.view: RowView | PairView | None = None
        self.row: int | None = None
        # For a pair: where each part's text (prompt, chosen, rejected) starts in the document, and its length.
        self.part_ranges: dict[str, tuple[int, int]] = {}

    def document(self) -> QTextDocument:
        return self.text.document()

    def show_message(self, message: str, row: int | None = None) -> None:
        self.view = None
        self.row = row
        self.part_ranges = {}
        self.text.clear()
        self.counts.setText(message)

    def _begin(self, row: int, view: RowView | PairView) -> QTextCursor:
        """An emptied document for ``view`` of ``row``, with an edit block open (the caller ends it)."""
        self.view = view
        self.row = row
        self.part_ranges = {}
        doc = self.text.document()
        doc.clear()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        return cursor

    def show_row(self, row: int, label: str, view: RowView) -> None:
        """Paint one rendered row; ``label`` says where it is (e.g. 'line 12')."""
        cursor = self._begin(row, view)
        _paint(cursor, view)
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

    def show_pair(self, row: int, label: str, view: PairView) -> None:
        """Paint a preference pair: the prompt both answers share, then each answer as the loss sees it."""
        cursor = self._begin(row, view)
        max_len = view.prompt.max_len
        headings = {"prompt": (f"Prompt · {view.prompt.kept_tokens:,} tokens, shared by both answers, no loss",
                               TONE.masked)}
        for side in ("chosen", "rejected"):
            part = view.side(side)
            words = f"{side.capitalize()} answer · {part.kept_tokens:,} tokens, each carries the loss"
            tone = TONE.ok
            if part.cut_tokens:
                words = (f"{side.capitalize()} answer · {part.kept_tokens:,} of {part.total_tokens:,} tokens kept, "
                         f"{part.cut_tokens:,} cut at max length {max_len}")
                tone = TONE.error
            headings[side] = (words, tone)
        for i, (name, (words, tone)) in enumerate(headings.items()):
            if i:
                cursor.insertBlock()
            heading = QTextCharFormat()
            heading.setFontFamilies([self.font().family()])  # the window's font: not the model's text
            heading.setFontWeight(QFont.Weight.Bold)
            heading.setForeground(QColor(tone))
            cursor.insertText(words, heading)
            cursor.insertBlock()
            part = view.prompt if name == "prompt" else view.side(name)
            start = cursor.position()
            _paint(cursor, part)
            self.part_ranges[name] = (start, len(part.text))
        cursor.endEditBlock()
        self.text.moveCursor(QTextCursor.MoveOperation.Start)
        parts = [f"<b>{label}</b>, a preference pair: prompt <b>{view.prompt.kept_tokens:,}</b> tokens"]
        for side in ("chosen", "rejected"):
            part = view.side(side)
            text = f"{side} <b>{part.kept_tokens:,}</b>"
            if part.cut_tokens:
                text = f"<span style='color:{TONE.error}'>{text} ({part.cut_tokens:,} cut)</span>"
            parts.append(text)
        if view.chosen.cut_tokens or view.rejected.cut_tokens:
            parts.append(f"<span style='color:{TONE.error}'>truncated at max length {max_len}</span>")
        else:
            parts.append(f"both fit in max length {max_len}")
        if not view.usable:
            parts.append(f"<b style='color:{TONE.error}'>a side keeps no answer token, so training skips this "
                         "pair</b>")
        self.counts.setText(" · ".join(parts))

    def kind_at(self, position: int) -> str | None:
        """The kind painted at a character position of the document."""
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(position + 1)
        return kind_of_format(cursor.charFormat())


def _paint(cursor: QTextCursor, view: RowView) -> None:
    for seg in view.segments:
        cursor.insertText(view.text[seg.start:seg.end], char_format(seg.kind, seg.token))
