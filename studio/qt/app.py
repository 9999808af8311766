"""Start the desktop app: window first, everything heavy afterwards.

Only PySide6 and the studio's light modules are imported before the window shows; torch,
transformers and peft load in workers (peft alone takes seconds to import).
"""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QSize, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from studio.core.desktop_install import APP_ID, app_icon_files
from studio.qt import errors, gc_guard
from studio.qt.style import SchemeFollower, apply_style, current_scheme, theme_plots

T0 = time.perf_counter()


def app_icon() -> QIcon:
    """The studio's icon with every rendered PNG size (16–512), so title bars and task switchers get
    crisp pixels; the PNGs rather than the SVG because Qt's SVG engine would hide the sizes it holds."""
    icon = QIcon()
    for path in app_icon_files():
        if path.suffix == ".png":  # hicolor/<n>x<n>/apps/…: the size is in the folder name
            n = int(path.parts[-3].split("x")[0])
            icon.addFile(str(path), QSize(n, n))
    return icon


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("Fine-Tuning Studio")
    app.setOrganizationName("fine-tuning-studio")
    # Wayland compositors match the window to the installed desktop entry (and its icon) by this name.
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    apply_style(app)
    if app.property("studio_scheme_follower") is None:
        app.setProperty("studio_scheme_follower", True)
        app.scheme_follower = SchemeFollower(app)  # kept alive by the app; restyles on a system change
    gc_guard.install(app)
    return app


def main(dataset: str | None = None, model: str | None = None) -> int:
    app = create_app()
    from studio.qt.main_window import MainWindow

    theme_plots(current_scheme(app))  # pyqtgraph is loaded now: plots made from here on start in the scheme
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
