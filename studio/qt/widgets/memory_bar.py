"""The memory estimate as a picture: one stacked bar of the peak's parts against the device budget.

Painted with QPainter rather than a plot library: it is seven rectangles and a line, it repaints on
every knob change, and it must cost nothing to create. The legend is a separate widget of real
labels, so that sizes can be selected, read by screen readers and checked in tests.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QHelpEvent, QPainter, QPalette, QPen
from PySide6.QtWidgets import QGridLayout, QLabel, QToolTip, QWidget

from studio.core.formatting import format_bytes
from studio.core.memory import BREAKDOWN_KEYS
from studio.qt.style import TONE

# Order and words follow studio.core.memory.BREAKDOWN_KEYS; colours are distinguishable for the
# common colour-vision deficiencies (blue/orange/purple/teal first, red and green not adjacent).
TERM_COLORS: dict[str, str] = {
    "weights": TONE.weights,
    "adapter": TONE.adapter,
    "gradients": TONE.gradients,
    "optimizer": TONE.optimizer,
    "activations": TONE.activations,
    "logits": TONE.logits,
    "overhead": TONE.bar_grey,
}
TERM_LABELS: dict[str, str] = {
    "weights": "Base weights",
    "adapter": "Adapter weights",
    "gradients": "Gradients",
    "optimizer": "Optimizer states",
    "activations": "Activations",
    "logits": "Logits and loss",
    "overhead": "Runtime and workspace",
}
TERM_TIPS: dict[str, str] = {
    "weights": "The frozen (or, for full fine-tuning, trained) model weights in their training dtype.",
    "adapter": "LoRA A/B matrices, kept in fp32 by PEFT.",
    "gradients": "One gradient per trainable parameter.",
    "optimizer": "AdamW's two moment estimates per trainable parameter (8-bit variants: ~2 bytes).",
    "activations": "Tensors the forward pass keeps for backward; grows with batch x sequence length.",
    "logits": "Vocabulary-wide logits, their fp32 copy and the loss gradient; large for big vocabularies.",
    "overhead": "CUDA context or the Python process, plus the transient workspace of the peak phase.",
}


class MemoryBar(QWidget):
    """A horizontal stacked bar of the breakdown with the budget drawn as a vertical line."""

    BAR_HEIGHT = 30
    TOP = 18  # room above the bar for the budget label

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.parts: dict[str, int] = {}
        self.budget: int | None = None
        self.budget_label = ""
        self.setMinimumHeight(self.TOP + self.BAR_HEIGHT + 20)
        self.setMouseTracking(True)
        self.setAccessibleName("Memory estimate bar")
        self.setAccessibleDescription("Estimated memory by part (weights, optimizer, activations…) against the "
                                      "device's budget; the same figures are listed beside it.")

    @property
    def total_bytes(self) -> int:
        return int(sum(self.parts.values()))

    def set_parts(self, parts: dict[str, int], budget: int | None, budget_label: str = "") -> None:
        self.parts = {k: int(parts.get(k, 0)) for k in BREAKDOWN_KEYS}
        self.budget = budget
        self.budget_label = budget_label
        self.update()

    def clear(self) -> None:
        self.parts = {}
        self.budget = None
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(360, self.TOP + self.BAR_HEIGHT + 20)

    # -- geometry ---------------------------------------------------------------------------------
    def _scale(self) -> float:
        return float(max(self.total_bytes, self.budget or 0, 1)) * 1.04

    def _bar_rect(self) -> QRectF:
        return QRectF(1, self.TOP, self.width() - 2, self.BAR_HEIGHT)

    def _segments(self) -> list[tuple[str, QRectF]]:
        bar = self._bar_rect()
        scale = self._scale()
        x = bar.left()
        out = []
        for key in BREAKDOWN_KEYS:
            val = self.parts.get(key, 0)
            if val <= 0:
                continue
            w = bar.width() * val / scale
            out.append((key, QRectF(x, bar.top(), w, bar.height())))
            x += w
        return out

    # -- painting ---------------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        bar = self._bar_rect()
        p.setPen(Qt.PenStyle.NoPen)
        ink = self.palette().color(QPalette.ColorRole.WindowText)  # palette colours follow light/dark (qt/style.py)
        p.setBrush(self.palette().color(QPalette.ColorRole.Midlight))
        p.drawRoundedRect(bar, 4, 4)
        for key, rect in self._segments():
            p.setBrush(QColor(TERM_COLORS[key]))
            p.drawRect(rect)
        small = QFont(self.font())
        small.setPointSizeF(max(7.5, small.pointSizeF() - 1))
        p.setFont(small)
        if self.parts:
            end = bar.left() + bar.width() * self.total_bytes / self._scale()
            p.setPen(ink)
            text = f"peak {format_bytes(self.total_bytes)}"
            fm = p.fontMetrics()
            tw = fm.horizontalAdvance(text)
            tx = min(max(bar.left(), end - tw / 2), bar.right() - tw)
            p.drawText(QPointF(tx, bar.bottom() + fm.ascent() + 3), text)
        if self.budget:
            over = self.total_bytes > self.budget
            x = bar.left() + bar.width() * self.budget / self._scale()
            pen = QPen(QColor(TONE.error_mark) if over else ink, 2, Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(x, bar.top() - 4), QPointF(x, bar.bottom() + 2))
            label = self.budget_label or f"budget {format_bytes(self.budget)}"
            fm = p.fontMetrics()
            tw = fm.horizontalAdvance(label)
            tx = min(max(bar.left(), x - tw / 2), bar.right() - tw)
            p.setPen(QColor(TONE.error_mark) if over else ink)
            p.drawText(QPointF(tx, bar.top() - 6), label)
        p.end()

    def event(self, ev: QEvent) -> bool:
        if ev.type() == QEvent.Type.ToolTip and isinstance(ev, QHelpEvent):
            for key, rect in self._segments():
                if rect.contains(QPointF(ev.pos())):
                    QToolTip.showText(ev.globalPos(), f"{TERM_LABELS[key]}: {format_bytes(self.parts[key])}\n"
                                                      f"{TERM_TIPS[key]}", self)
                    return True
            QToolTip.hideText()
            ev.ignore()
            return True
        return super().event(ev)


class MemoryLegend(QWidget):
    """Colour, term, size and share of the peak for each of the seven terms, as selectable labels."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sizes: dict[str, QLabel] = {}
        self.shares: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 4, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(3)
        for row, key in enumerate(BREAKDOWN_KEYS):
            swatch = QLabel()
            swatch.setFixedSize(12, 12)
            swatch.setStyleSheet(f"background: {TERM_COLORS[key]}; border-radius: 2px;")
            name = QLabel(TERM_LABELS[key])
            name.setToolTip(TERM_TIPS[key])
            size = QLabel("–")
            size.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            size.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            share = QLabel("")
            share.setObjectName("muted")
            share.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            share.setMinimumWidth(40)
            grid.addWidget(swatch, row, 0)
            grid.addWidget(name, row, 1)
            grid.addWidget(size, row, 2)
            grid.addWidget(share, row, 3)
            self.sizes[key] = size
            self.shares[key] = share
        grid.setColumnStretch(1, 1)

    def set_parts(self, parts: dict[str, int]) -> None:
        total = max(sum(int(parts.get(k, 0)) for k in BREAKDOWN_KEYS), 1)
        for key in BREAKDOWN_KEYS:
            val = int(parts.get(key, 0))
            self.sizes[key].setText(format_bytes(val))
            self.shares[key].setText(f"{100 * val / total:.0f} %")

    def clear(self) -> None:
        for key in BREAKDOWN_KEYS:
            self.sizes[key].setText("–")
            self.shares[key].setText("")
