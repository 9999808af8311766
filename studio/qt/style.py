"""One light, calm look for the whole app."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

STYLE = """
QMainWindow, QWidget { font-size: 10pt; }
QListWidget#sidebar { background: #1f2937; color: #e5e7eb; border: none; padding-top: 8px; font-size: 11pt; }
QListWidget#sidebar::item { padding: 10px 14px; border-left: 3px solid transparent; }
QListWidget#sidebar::item:selected { background: #374151; color: white; border-left: 3px solid #60a5fa; }
QListWidget#sidebar::item:hover:!selected { background: #2b3544; }
QStackedWidget > QWidget { background: #f8fafc; }
QGroupBox { font-weight: 600; border: 1px solid #e2e8f0; border-radius: 6px; margin-top: 14px; padding: 10px 8px 8px 8px; background: white; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; color: #334155; }
QPushButton { padding: 6px 14px; border: 1px solid #cbd5e1; border-radius: 5px; background: white; }
QPushButton:hover { background: #f1f5f9; }
QPushButton:disabled { color: #94a3b8; background: #f1f5f9; }
QPushButton#primary { background: #2563eb; color: white; border: 1px solid #1d4ed8; font-weight: 600; }
QPushButton#primary:hover { background: #1d4ed8; }
QPushButton#primary:disabled { background: #93c5fd; border-color: #93c5fd; }
QLabel#muted { color: #64748b; }
QLabel#title { font-size: 14pt; font-weight: 600; color: #0f172a; }
QProgressBar { border: 1px solid #cbd5e1; border-radius: 4px; text-align: center; background: white; min-height: 18px; }
QProgressBar::chunk { background: #60a5fa; border-radius: 3px; }
QTableView { background: white; alternate-background-color: #f8fafc; gridline-color: #e2e8f0; selection-background-color: #dbeafe; selection-color: #0f172a; }
QHeaderView::section { background: #f1f5f9; border: none; border-bottom: 1px solid #e2e8f0; padding: 4px 6px; font-weight: 600; }
QPlainTextEdit, QTextEdit { background: white; border: 1px solid #e2e8f0; font-family: monospace; }
QStatusBar { background: #f1f5f9; color: #334155; }
"""


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setStyleSheet(STYLE)
