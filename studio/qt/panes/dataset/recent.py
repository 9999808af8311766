"""Recently opened datasets, kept in the studio's settings file, offered as a menu.

An entry is the list of files opened together (several files make one dataset), so reopening it
gives the same rows in the same order.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget

from studio.qt.settings import settings

KEY = "dataset/recent"
MAX_ENTRIES = 10


def recent_entries() -> list[list[str]]:
    raw = settings().value(KEY, "")
    try:
        data = json.loads(raw) if isinstance(raw, str) and raw else []
    except ValueError:
        return []
    return [[str(p) for p in e] for e in data if isinstance(e, list) and e and all(isinstance(p, str) for p in e)]


def _save(entries: list[list[str]]) -> None:
    s = settings()
    s.setValue(KEY, json.dumps(entries[:MAX_ENTRIES]))
    s.sync()


def remember(files: list[str]) -> None:
    """Put this set of files first in the list (once)."""
    entry = [str(Path(f)) for f in files]
    if not entry:
        return
    _save([entry, *[e for e in recent_entries() if e != entry]])


def forget_all() -> None:
    _save([])


def entry_label(entry: list[str]) -> str:
    names = [Path(p).name for p in entry]
    shown = " + ".join(names[:3]) + (f" + {len(names) - 3} more" if len(names) > 3 else "")
    return f"{shown}  —  {Path(entry[0]).parent}"


class RecentMenu(QMenu):
    """'Open recent': rebuilt each time it opens; ``chosen(files)`` when an entry is picked."""

    chosen = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Open &recent", parent)
        self.aboutToShow.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        entries = recent_entries()
        if not entries:
            empty = QAction("No recent datasets", self)
            empty.setEnabled(False)
            self.addAction(empty)
            return
        for k, entry in enumerate(entries):
            action = QAction(f"&{k + 1 if k < 9 else 0}  {entry_label(entry)}", self)
            action.setToolTip("\n".join(entry))
            missing = [p for p in entry if not Path(p).exists()]
            if missing:
                action.setText(action.text() + "  (missing)")
            action.triggered.connect(lambda _checked=False, e=entry: self.chosen.emit(list(e)))
            self.addAction(action)
        self.addSeparator()
        clear = QAction("Clear recent datasets", self)
        clear.triggered.connect(self._clear)
        self.addAction(clear)

    def _clear(self) -> None:
        forget_all()
        self.rebuild()
