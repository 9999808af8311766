"""The app's look, light or dark as the desktop asks, switched live when the desktop switches.

One table of colours per scheme feeds three things that must agree: the QPalette (what plain widgets
and dialogs draw with), the stylesheet (the calm panels and buttons), and pyqtgraph's plots (which
draw their own backgrounds and axes and would otherwise stay white in a dark window). The scheme
comes from Qt's ``QStyleHints.colorScheme`` (Qt 6.5+); ``STUDIO_COLOR_SCHEME=light|dark`` overrides
it for a desktop that reports nothing (bare X11, Xvfb) or for a user who wants the other one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

LIGHT, DARK = "light", "dark"
SCHEME_ENV = "STUDIO_COLOR_SCHEME"

COLORS: dict[str, dict[str, str]] = {
    LIGHT: {
        "window": "#f8fafc", "base": "#ffffff", "alt": "#f8fafc", "panel": "#f1f5f9", "text": "#0f172a",
        "strong": "#0f172a", "label": "#334155", "muted": "#64748b", "border": "#e2e8f0", "control": "#cbd5e1",
        "hover": "#f1f5f9", "disabled": "#94a3b8", "accent": "#2563eb", "accent_hover": "#1d4ed8",
        "accent_off": "#93c5fd", "chunk": "#60a5fa", "selection": "#dbeafe", "selection_text": "#0f172a",
        "sidebar": "#1f2937", "sidebar_text": "#e5e7eb", "sidebar_selected": "#374151", "sidebar_hover": "#2b3544",
        "link": "#1d4ed8", "plot_background": "#ffffff", "plot_foreground": "#334155",
    },
    DARK: {
        "window": "#0f172a", "base": "#111827", "alt": "#162032", "panel": "#1e293b", "text": "#e2e8f0",
        "strong": "#f8fafc", "label": "#cbd5e1", "muted": "#94a3b8", "border": "#334155", "control": "#475569",
        "hover": "#273449", "disabled": "#64748b", "accent": "#3b82f6", "accent_hover": "#2563eb",
        "accent_off": "#1e3a8a", "chunk": "#3b82f6", "selection": "#1e3a8a", "selection_text": "#f8fafc",
        "sidebar": "#020617", "sidebar_text": "#e5e7eb", "sidebar_selected": "#1e293b", "sidebar_hover": "#111c33",
        "link": "#93c5fd", "plot_background": "#111827", "plot_foreground": "#cbd5e1",
    },
}


@dataclass(frozen=True)
class Tones:
    """Colours that mean something: severity, status, tinted badges, plot series.

    Unlike ``COLORS`` one table serves both schemes: each tint carries its own dark ink, and the
    inks and series are the mid-tones that read on the light window and on the dark one alike.
    Named here so "error red" is one red everywhere and a view never spells a hex value.
    """

    # Text and marks drawn on the window.
    error: str = "#b91c1c"
    warning: str = "#b45309"
    ok: str = "#15803d"
    info: str = "#1d4ed8"
    label: str = "#334155"
    masked: str = "#475569"
    note: str = "#64748b"
    quiet: str = "#718096"
    error_mark: str = "#dc2626"
    warning_mark: str = "#d97706"
    ok_mark: str = "#16a34a"
    # Tints: the background, ink and edge of a badge, banner or highlighted cell.
    ok_tint: str = "#dcfce7"
    ok_ink: str = "#14532d"
    ok_edge: str = "#86efac"
    trained_tint: str = "#bbf7d0"
    warn_tint: str = "#fef3c7"
    warn_ink: str = "#78350f"
    warn_edge: str = "#fcd34d"
    caution_ink: str = "#92400e"
    bad_tint: str = "#fee2e2"
    bad_ink: str = "#7f1d1d"
    bad_edge: str = "#fca5a5"
    cut_ink: str = "#991b1b"
    cut_edge: str = "#fecaca"
    neutral_tint: str = "#f1f5f9"
    neutral_edge: str = "#cbd5e1"
    faint_edge: str = "#e2e8f0"
    best_tint: str = "#e6fffa"
    tint_ink: str = "#0f172a"
    # Plot series: training curves, runs overlaid, run status.
    blue: str = "#2b6cb0"
    orange: str = "#dd6b20"
    green: str = "#2f855a"
    maroon: str = "#9b2c2c"
    purple: str = "#6b46c1"
    amber: str = "#b7791f"
    teal: str = "#319795"
    pink: str = "#d53f8c"
    red: str = "#c53030"
    # Bars: the dataset's histograms and the memory breakdown's terms.
    bar_blue: str = "#3b82f6"
    bar_green: str = "#22c55e"
    bar_red: str = "#ef4444"
    bar_grey: str = "#94a3b8"
    bar_violet: str = "#8b5cf6"
    bar_sky: str = "#0ea5e9"
    weights: str = "#2563eb"
    adapter: str = "#9333ea"
    gradients: str = "#db2777"
    optimizer: str = "#f59e0b"
    activations: str = "#0d9488"
    logits: str = "#65a30d"


TONE = Tones()

# Runs overlaid on one plot take these in turn.
SERIES = (TONE.blue, TONE.orange, TONE.green, TONE.maroon, TONE.purple, TONE.amber, TONE.teal, TONE.pink)

STYLE_TEMPLATE = """
QMainWindow, QWidget {{ font-size: 10pt; }}
QListWidget#sidebar {{ background: {sidebar}; color: {sidebar_text}; border: none; padding-top: 8px; font-size: 11pt; }}
QListWidget#sidebar::item {{ padding: 10px 14px; border-left: 3px solid transparent; }}
QListWidget#sidebar::item:selected {{ background: {sidebar_selected}; color: white; border-left: 3px solid #60a5fa; }}
QListWidget#sidebar::item:hover:!selected {{ background: {sidebar_hover}; }}
QStackedWidget > QWidget {{ background: {window}; }}
QGroupBox {{ font-weight: 600; border: 1px solid {border}; border-radius: 6px; margin-top: 14px; padding: 10px 8px 8px 8px; background: {base}; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {label}; }}
QPushButton {{ padding: 6px 14px; border: 1px solid {control}; border-radius: 5px; background: {base}; color: {text}; }}
QPushButton:hover {{ background: {hover}; }}
QPushButton:disabled {{ color: {disabled}; background: {panel}; }}
QPushButton#primary {{ background: {accent}; color: white; border: 1px solid {accent_hover}; font-weight: 600; }}
QPushButton#primary:hover {{ background: {accent_hover}; }}
QPushButton#primary:disabled {{ background: {accent_off}; border-color: {accent_off}; }}
QLabel#muted {{ color: {muted}; }}
QLabel#title {{ font-size: 14pt; font-weight: 600; color: {strong}; }}
QProgressBar {{ border: 1px solid {control}; border-radius: 4px; text-align: center; background: {base}; min-height: 18px; }}
QProgressBar::chunk {{ background: {chunk}; border-radius: 3px; }}
QTableView {{ background: {base}; alternate-background-color: {alt}; gridline-color: {border}; selection-background-color: {selection}; selection-color: {selection_text}; }}
QHeaderView::section {{ background: {panel}; color: {label}; border: none; border-bottom: 1px solid {border}; padding: 4px 6px; font-weight: 600; }}
QPlainTextEdit, QTextEdit {{ background: {base}; border: 1px solid {border}; font-family: monospace; }}
QStatusBar {{ background: {panel}; color: {label}; }}
"""

# Kept for callers that want the light sheet as text (the look before schemes existed).
STYLE = STYLE_TEMPLATE.format(**COLORS[LIGHT])


def scheme_from_hint(hint: Qt.ColorScheme) -> str:
    """Qt's hint as one of our two schemes; "Unknown" (no desktop preference) reads as light."""
    return DARK if hint == Qt.ColorScheme.Dark else LIGHT


def system_scheme(app: QApplication) -> str:
    """The scheme to use now: the override if set, else what the desktop reports."""
    override = os.environ.get(SCHEME_ENV, "").strip().lower()
    if override in (LIGHT, DARK):
        return override
    return scheme_from_hint(app.styleHints().colorScheme())


def build_palette(scheme: str) -> QPalette:
    c = COLORS[scheme]
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: c["window"], QPalette.ColorRole.WindowText: c["text"],
        QPalette.ColorRole.Base: c["base"], QPalette.ColorRole.AlternateBase: c["alt"],
        QPalette.ColorRole.Text: c["text"], QPalette.ColorRole.Button: c["panel"],
        QPalette.ColorRole.ButtonText: c["text"], QPalette.ColorRole.BrightText: "#ef4444",
        QPalette.ColorRole.Highlight: c["accent"], QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: c["panel"], QPalette.ColorRole.ToolTipText: c["text"],
        QPalette.ColorRole.PlaceholderText: c["muted"], QPalette.ColorRole.Link: c["link"],
        QPalette.ColorRole.Light: c["base"], QPalette.ColorRole.Midlight: c["border"],
        QPalette.ColorRole.Mid: c["control"], QPalette.ColorRole.Dark: c["muted"], QPalette.ColorRole.Shadow: "#000000",
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(c["disabled"]))
    return pal


def plot_colors(scheme: str) -> tuple[str, str]:
    """(background, foreground) for pyqtgraph in ``scheme``."""
    return COLORS[scheme]["plot_background"], COLORS[scheme]["plot_foreground"]


def theme_plots(scheme: str) -> None:
    """Point pyqtgraph's defaults at ``scheme`` and recolour every plot that exists.

    Only when pyqtgraph is already imported: importing it here would cost the window ~0.8 s. The
    app calls this again once the window's modules (which import pyqtgraph) are loaded, so plots
    made afterwards start from the right defaults.
    """
    pg = sys.modules.get("pyqtgraph")
    if pg is None:
        return
    background, foreground = plot_colors(scheme)
    pg.setConfigOptions(background=background, foreground=foreground)
    app = QApplication.instance()
    if app is None:
        return
    for widget in app.allWidgets():
        if isinstance(widget, pg.PlotWidget):
            _recolor_plot(widget, background, foreground)


def _recolor_plot(widget, background: str, foreground: str) -> None:
    widget.setBackground(background)
    item = widget.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name)
        axis.setPen(foreground)
        axis.setTextPen(foreground)
    title = item.titleLabel
    if title.text:
        title.setText(title.text, color=foreground)
    if item.legend is not None:
        item.legend.setLabelTextColor(foreground)


def apply_style(app: QApplication, scheme: str | None = None) -> str:
    """Give ``app`` the look of ``scheme`` (default: the system's); returns the scheme applied."""
    scheme = scheme or system_scheme(app)
    app.setStyle("Fusion")
    app.setPalette(build_palette(scheme))
    app.setStyleSheet(STYLE_TEMPLATE.format(**COLORS[scheme]))
    app.setProperty("studio_color_scheme", scheme)
    theme_plots(scheme)
    return scheme


def current_scheme(app: QApplication) -> str:
    """The scheme ``apply_style`` last applied (light before it ever ran)."""
    return app.property("studio_color_scheme") or LIGHT


class SchemeFollower(QObject):
    """Re-applies the style whenever the desktop's colour scheme changes while the app runs.

    ``changed`` fires after the new look is in place, for views that paint colours of their own.
    An explicit ``STUDIO_COLOR_SCHEME`` pins the scheme, so system changes are then ignored.
    """

    changed = Signal(str)

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._app = app
        app.styleHints().colorSchemeChanged.connect(self._on_color_scheme_changed)

    def _on_color_scheme_changed(self, hint: Qt.ColorScheme) -> None:
        if os.environ.get(SCHEME_ENV, "").strip().lower() in (LIGHT, DARK):
            return
        scheme = scheme_from_hint(hint)
        if scheme == current_scheme(self._app):
            return
        apply_style(self._app, scheme)
        self.changed.emit(scheme)
