"""The Dataset pane's header texts: which files are loaded, and what stops rows from being read.

Pure functions of the load spec and the report, kept apart from the pane so they can be read and
tested without a window.
"""

from __future__ import annotations

from pathlib import Path

from studio.core.datasets.findings import FATAL_CODES
from studio.core.datasets.pipeline import Loaded, LoadSpec
from studio.core.datasets.scan import overall_format
from studio.qt.style import TONE


def files_html(spec: LoadSpec | None, loaded: Loaded | None) -> tuple[str, str]:
    """(rich text naming the training and eval files with format and rows, tooltip with full paths)."""
    if spec is None or not spec.train:
        return "<i>No dataset yet — open a file or drop one on the window.</i>", ""
    infos = {f.path: f for f in loaded.result.files} if loaded else {}
    parts = []
    for path in spec.train:
        info = infos.get(path)
        name = f"<b>{Path(path).name}</b>"
        if info is None:
            parts.append(name)
        elif info.fatal:
            parts.append(f"{name} <span style='color:{TONE.error}'>(could not be read)</span>")
        else:
            parts.append(f"{name} <span style='color:{TONE.note}'>({overall_format(info.formats)}, "
                         f"{info.rows:,} rows)</span>")
    text = "Training data: " + " + ".join(parts)
    if spec.eval:
        text += " · eval: " + ", ".join(Path(p).name for p in spec.eval)
    return text, "\n".join([*spec.train, *(f"eval: {p}" for p in spec.eval)])


def banner_lines(result, report) -> list[str]:
    """Lines for the banner above the rows: files that could not be read, rows of no known format."""
    lines = []
    for info in [*report.files, *report.eval_files]:
        if info.fatal:
            why = next((f.message for f in report.findings if f.file == info.path and f.code in FATAL_CODES), "")
            lines.append(f"⚠ Could not read <b>{Path(info.path).name}</b>: {why}")
    if result.columns:
        unknown = result.format_counts.get("unknown", 0)
        lines.append(f"{unknown:,} row{'s' * (unknown != 1)} match no known format (columns: "
                     f"{', '.join(result.columns[:8])}). Use <b>Map columns…</b> to say which is the prompt "
                     "and which the answer.")
    return lines
