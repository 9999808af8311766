"""The Dataset pane's top bar: open, add and recent buttons, the files, format, rows and fingerprint
of what is open, the progress of a read or check, and the warning banner. A mixin of
``DatasetPane``; the texts themselves come from ``header.py``."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton

from studio.core.datasets import pipeline
from studio.qt.panes.dataset import header
from studio.qt.panes.dataset.recent import RecentMenu
from studio.qt.style import TONE

FORMAT_COLORS = {"unknown": TONE.error, "mixed": TONE.warning}


class TopBar:
    """Builds and fills the rows above the table (mixed into DatasetPane)."""

    def _build_top_bar(self) -> None:
        self.open_button = QPushButton("Open…")
        self.open_button.setObjectName("primary")
        self.open_button.setToolTip("Choose dataset files (.json, .jsonl, .csv, .parquet); several files make one "
                                    "dataset. You can also drop files on the window.")
        self.open_button.clicked.connect(self.open_dialog)
        self.add_button = QPushButton("Add files…")
        self.add_button.setToolTip("Append more files to the current training data")
        self.add_button.clicked.connect(self.add_dialog)
        self.recent_menu = RecentMenu(self)
        self.recent_menu.chosen.connect(self.set_files)
        self.recent_button = QPushButton("Recent")
        self.recent_button.setToolTip("Reopen a dataset you opened before")
        self.recent_button.setMenu(self.recent_menu)
        self.files_label = QLabel()
        self.files_label.setWordWrap(True)
        self.files_label.setTextFormat(Qt.TextFormat.RichText)
        self._top = QHBoxLayout()
        self._top.addWidget(self.open_button)
        self._top.addWidget(self.add_button)
        self._top.addWidget(self.recent_button)
        self._top.addSpacing(8)
        self._top.addWidget(self.files_label, 1)

        self.format_label = QLabel()
        self.format_label.setTextFormat(Qt.TextFormat.RichText)
        self.format_label.setToolTip("alpaca · prompt_completion · text · messages · sharegpt, detected per row; "
                                     "mixed when a dataset holds more than one")
        self.rows_label = QLabel()
        self.fingerprint_label = QLabel()
        self.fingerprint_label.setObjectName("muted")
        self.fingerprint_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.map_button = QPushButton("Map columns…")
        self.map_button.setToolTip("Say which column is the prompt and which the answer")
        self.map_button.clicked.connect(self.open_column_mapping)
        self.map_button.hide()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.status = QLabel()
        self.status.setObjectName("muted")
        self._second = QHBoxLayout()
        for w in (self.format_label, self.rows_label, self.fingerprint_label, self.map_button):
            self._second.addWidget(w)
        self._second.addStretch(1)
        self._second.addWidget(self.status)
        self._second.addWidget(self.progress)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setStyleSheet(f"background:{TONE.warn_tint}; color:{TONE.warn_ink}; border:1px solid {TONE.warn_edge}; border-radius:5px; "
                                  "padding:6px 8px;")
        self.banner.hide()

    def _set_progress(self, frac: float, message: str) -> None:
        self.progress.show()
        if frac < 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(frac * 1000))
        self.status.setText(message)

    def _show_files(self) -> None:
        text, tip = header.files_html(self._spec, self.loaded)
        self.files_label.setText(text)
        self.files_label.setToolTip(tip)

    def _show_summary(self, loaded: pipeline.Loaded) -> None:
        result, report = loaded.result, loaded.report
        self._show_files()
        fmt = result.format
        color = FORMAT_COLORS.get(fmt, TONE.info)
        counts = ", ".join(f"{n:,} {k}" for k, n in sorted(result.format_counts.items(), key=lambda kv: -kv[1]))
        self.format_label.setText(f"Format: <b style='color:{color}'>{fmt}</b>")
        self.format_label.setToolTip(f"Rows by format: {counts or 'none'}")
        self.rows_label.setText(f"· {len(result):,} rows")
        fp = report.fingerprint
        self.fingerprint_label.setText(f"· {report.fingerprint_caption}" if fp else "")
        self.fingerprint_label.setToolTip(
            f"Fingerprint of the dataset's bytes (train and eval files together when there are both; "
            f"`studio validate` with the same files prints the same):\n{fp}\n"
            "Runs record it, so you can tell which data trained an adapter." if fp else "")
        self.map_button.setVisible(bool(result.columns or result.column_map))
        self.map_button.setText("Map columns…" if not result.column_map else "Column mapping…")
        lines = header.banner_lines(result, report)
        if lines:
            self._show_banner("<br>".join(lines))
        else:
            self.banner.hide()

    def _show_banner(self, html: str) -> None:
        self.banner.setText(html)
        self.banner.show()
