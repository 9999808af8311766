"""The library's trash: deleted adapters wait here until restored or emptied for good.

Deleting is a move, so it needs no confirmation; emptying the trash is the one irreversible step
and asks first.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.formatting import format_bytes, run_method_label
from studio.core.library import registry
from studio.qt.errors import show_error


class TrashDialog(QDialog):
    def __init__(self, on_changed: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Library trash")
        self.setMinimumSize(520, 320)
        self._on_changed = on_changed
        self.list = QListWidget()
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.list.itemDoubleClicked.connect(lambda _i: self.restore_selected())
        self.empty_label = QLabel("The trash is empty.")
        self.empty_label.setObjectName("muted")
        self.restore_button = QPushButton("Restore")
        self.restore_button.setObjectName("primary")
        self.restore_button.clicked.connect(self.restore_selected)
        self.empty_button = QPushButton("Empty trash…")
        self.empty_button.setToolTip("Delete every adapter in the trash for good")
        self.empty_button.clicked.connect(lambda: self.empty(confirm=True))
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.empty_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.reload()

    def reload(self) -> None:
        self.list.clear()
        for e in registry.list_trash():
            item = QListWidgetItem(f"{e.name}    ·  {run_method_label(e.method, e.objective)}  ·  {format_bytes(e.size_bytes, 1)}  ·  {e.created[:16].replace('T', ' ')}")
            item.setData(Qt.ItemDataRole.UserRole, e.id)
            item.setToolTip(str(e.path))
            self.list.addItem(item)
        self.empty_label.setVisible(self.list.count() == 0)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.restore_button.setEnabled(bool(self.list.selectedItems()))
        self.empty_button.setEnabled(self.list.count() > 0)

    def restore_selected(self) -> None:
        items = self.list.selectedItems()
        if not items:
            return
        try:
            registry.restore(items[0].data(Qt.ItemDataRole.UserRole))
        except Exception as err:  # a folder vanished or is unwritable: say so, keep the dialog usable
            from studio.core.errors import describe_exception

            show_error(self, *describe_exception(err), title="Could not restore")
        self.reload()
        self._on_changed()

    def empty(self, *, confirm: bool) -> int:
        if confirm:
            n = self.list.count()
            answer = QMessageBox.question(
                self, "Empty trash", f"Delete {n} adapter{'s' if n != 1 else ''} for good? This cannot be undone.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return 0
        removed = registry.empty_trash()
        self.reload()
        return removed
