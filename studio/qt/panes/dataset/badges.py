"""Severity colours and dot icons shared by the findings list and the rows table."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from studio.qt.style import TONE

SEVERITY_COLORS = {"error": TONE.error_mark, "warning": TONE.warning_mark, "ok": TONE.ok_mark}
SEVERITY_RANK = {"error": 2, "warning": 1}


@cache
def dot_icon(severity: str, size: int = 12) -> QIcon:
    """A filled circle in the severity's colour (drawn, so it needs no icon files)."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(SEVERITY_COLORS.get(severity, TONE.note)))
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pix)
