"""Keeping a dialog tall enough for its wrapped text.

Qt sizes a window once, when it is shown. A word-wrapped label that appears or grows later (an
"already exists" message, a result under the buttons) then takes its room from the labels around
it, which are drawn cut off. Growing the window to what its layout needs at its current width
keeps every line readable without undoing a size the user chose.
"""

from __future__ import annotations

from PySide6.QtWidgets import QWidget


def grow_to_fit(window: QWidget) -> None:
    """Make ``window`` at least as tall as its layout needs at its width; never shrink it."""
    layout = window.layout()
    if layout is None or not window.isVisible():
        return  # before the first show Qt sizes the window itself, wrapped labels included
    layout.activate()
    width = window.width()
    needed = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
    needed = max(needed, layout.totalMinimumSize().height())
    if needed > window.height():
        window.resize(width, needed)
