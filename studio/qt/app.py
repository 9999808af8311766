"""Start the desktop app: window first, everything heavy afterwards.

Only PySide6 and the studio's light modules are imported before the window shows; torch,
transformers and peft load in workers (peft alone takes seconds to import).
"""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from studio.qt import errors, gc_guard
from studio.qt.style import apply_style

T0 = time.perf_counter()


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("Fine-Tuning Studio")
    app.setOrganizationName("fine-tuning-studio")
    apply_style(app)
    gc_guard.install(app)
    return app


def main(dataset: str | None = None, model: str | None = None) -> int:
    app = create_app()
    from studio.qt.main_window import MainWindow

    reporter = errors.ErrorReporter()
    errors.install(reporter)
    window = MainWindow()
    reporter.set_parent_widget(window)
    if dataset:
        window.dataset_pane.set_files([dataset])
    if model:
        window.state.update(**{"model.path": model})
    window.show()
    if "--print-startup" in sys.argv or __import__("os").environ.get("STUDIO_PRINT_STARTUP"):
        app.processEvents()
        print(f"window-visible {time.perf_counter() - T0:.3f}", flush=True)
        QTimer.singleShot(0, app.quit)
        return app.exec()
    QTimer.singleShot(0, window.start_background_work)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
