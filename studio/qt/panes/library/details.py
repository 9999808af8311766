"""Where an adapter came from: base model (and whether it is still the same), data, run, config, metrics.

The base check re-hashes the base folder's config and safetensors headers (a few KiB per file),
so a swapped or edited base shows up here before anyone trusts an answer from the adapter.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from PySide6.QtWidgets import QTextBrowser, QWidget

from studio.core.errors import StudioError
from studio.core.formatting import format_bytes, run_method_label
from studio.core.library.registry import LibraryEntry
from studio.core.models.folder import has_config
from studio.core.models.identity import BaseIdentity, cached_identity, identity_change
from studio.core.training import before_after
from studio.qt.style import TONE


def base_status(entry: LibraryEntry, cache: dict[str, str] | None = None) -> tuple[str, str]:
    """(colour, words) saying whether the recorded base is still on disk and unchanged."""
    base = Path(entry.base_model) if entry.base_model else None
    if base is None or not has_config(base):
        return TONE.warning, "base model folder not found on this machine"
    if not entry.base_model_hash:
        return TONE.note, "no hash recorded (imported without one)"
    key = str(base)
    current = cache.get(key) if cache is not None else None
    if current is None:
        current = cached_identity(base)  # never reads weights on the GUI thread
    if current is None and BaseIdentity.parse(entry.base_model_hash) is not None:
        return TONE.note, "not checked yet (export, playground and resume check it)"
    if cache is not None and current is not None:
        cache[key] = current
    try:
        change = identity_change(entry.base_model_hash, base, current=current)
    except (OSError, StudioError):
        return TONE.warning, "base model files could not be read"
    if change is None:
        return TONE.ok, "✓ unchanged since training"
    return TONE.warning, f"⚠ changed since training ({change}); outputs may differ"


def _fmt_metric(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and abs(value) >= 2**20:
        return format_bytes(value, 1) if value > 0 else str(value)
    return html.escape(str(value))


def _before_after_rows(rep: dict) -> str:
    """The run's before/after report: the model it started from, then the one it saved, each change
    coloured by whether it is an improvement."""
    rows = []
    for key, label, _, _ in before_after.MEASURES:
        row = rep.get(key) if isinstance(rep, dict) else None
        if not isinstance(row, dict):
            continue
        before, after = row.get("before"), row.get("after")
        tone = TONE.note
        if isinstance(before, float) and isinstance(after, float):
            good = before_after.better(key, before, after)
            tone = TONE.note if good is None else TONE.ok if good else TONE.error
        rows.append(_row(html.escape(label), f"{before_after.fmt(key, before)} → "
                                             f"<span style='color:{tone}'>{before_after.fmt(key, after)}</span>"))
    return "".join(rows)


def _row(label: str, value: str) -> str:
    return (f"<tr><td style='color:{TONE.note}; padding-right:14px; white-space:nowrap'>{label}</td>"
            f"<td>{value}</td></tr>")


def lineage_html(entry: LibraryEntry, status: tuple[str, str]) -> str:
    esc = html.escape
    colour, words = status
    rows = [
        _row("Name", f"<b>{esc(entry.name)}</b> <span style='color:{TONE.note}'>({esc(entry.id)})</span>"),
        _row("Method", esc(run_method_label(entry.method, entry.objective)) + (" — a full model (no adapter; exports without a merge)"
                                                     if entry.is_full_model else "")),
        _row("Created", esc(entry.created.replace("T", " "))),
        _row("Size", format_bytes(entry.size_bytes, 1)),
        _row("Stored in", esc(str(entry.path))),
    ]
    lineage = [
        _row("Base model", esc(entry.base_model or "—")),
        _row("Base hash", f"{esc(entry.base_model_hash or '—')} <span style='color:{colour}'>{esc(words)}</span>"),
        _row("Dataset", esc(entry.dataset_fingerprint or "—")),
        _row("Run folder", esc(entry.run_dir or "—")),
    ]
    flat = {k: v for k, v in entry.metrics.items() if k != "before_after"}
    metrics = [_row(esc(k), _fmt_metric(v)) for k, v in sorted(flat.items())] or [_row("—", "no metrics recorded")]
    config = json.dumps(entry.config, indent=2, ensure_ascii=False, default=str) if entry.config else "—"
    section = f"<h4 style='margin:10px 0 4px 0; color:{TONE.label}'>{{}}</h4><table cellspacing='2'>{{}}</table>"
    return (
        "<div style='font-family: sans-serif'>"
        + section.format("Adapter", "".join(rows))
        + section.format("Lineage", "".join(lineage))
        + section.format("Final metrics", "".join(metrics))
        + (section.format("Before → after (eval split)", _before_after_rows(entry.metrics["before_after"]))
           if entry.metrics.get("before_after") else "")
        + f"<h4 style='margin:10px 0 4px 0; color:{TONE.label}'>Full config</h4>"
        + f"<pre style='font-family: monospace; font-size: 9pt'>{esc(config)}</pre></div>"
    )


class LineageView(QTextBrowser):
    """Read-only details of the selected adapter; its hash cache is dropped when the library reloads."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setPlaceholderText("Select an adapter to see where it came from.")
        self.hash_cache: dict[str, str] = {}
        self.entry: LibraryEntry | None = None

    def show_entry(self, entry: LibraryEntry | None) -> None:
        self.entry = entry
        if entry is None:
            self.clear()
            return
        self.setHtml(lineage_html(entry, base_status(entry, self.hash_cache)))

    def forget_hashes(self) -> None:
        self.hash_cache.clear()
