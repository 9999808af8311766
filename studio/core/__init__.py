"""Qt-free core of the studio. Nothing here may import PySide6, pyqtgraph or studio.qt (checked in CI)."""
