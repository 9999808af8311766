"""Fix without loss: a cleaned copy next to the original.

The original file is never written to. The cleaned copy is JSON Lines in UTF-8 (whatever the
source was), written atomically, and rows that needed no change keep their exact original text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.datasets.findings import CATALOGUE
from studio.core.datasets.formats import to_example
from studio.core.datasets.scan import ScanResult
from studio.core.errors import StudioError
from studio.core.fsutil import atomic_write_bytes

ACTIONS = frozenset({"drop_exact_duplicates", "drop_empty_answers", "strip_whitespace", "drop_untrainable"})
_TEXT_FIELDS = ("instruction", "input", "output", "prompt", "completion", "text", "system")


@dataclass
class CleanPlan:
    """Which rows the cleaned copy keeps, and why the others go (for a preview before writing)."""

    keep: list[int] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    stripped: int = 0


def _strip(data: Any, column_map: dict[str, str]) -> tuple[Any, bool]:
    if not isinstance(data, dict):
        return data, False
    changed = False
    out = dict(data)
    for key in (*_TEXT_FIELDS, *column_map.values()):
        v = out.get(key)
        if isinstance(v, str) and v != v.strip():
            out[key] = v.strip()
            changed = True
    for key, content_key in (("messages", "content"), ("conversations", "value"), ("prompt", "content"), ("completion", "content")):
        turns = out.get(key)
        if isinstance(turns, list):
            new_turns = []
            for t in turns:
                if isinstance(t, dict) and isinstance(t.get(content_key), str) and t[content_key] != t[content_key].strip():
                    t = {**t, content_key: t[content_key].strip()}
                    changed = True
                new_turns.append(t)
            out[key] = new_turns
    return out, changed


def _rows_with(findings, codes: Iterable[str] | None = None, severity: str | None = None) -> set[int]:
    wanted = set(codes or [])
    return {
        r for f in findings
        if (f.code in wanted) or (severity is not None and CATALOGUE[f.code][0] == severity)
        for r in f.rows
    }


def plan_clean(scan: ScanResult, actions: Iterable[str], report=None) -> tuple[CleanPlan, list[str]]:
    """Decide row by row; returns the plan and the JSON lines to write."""
    actions = set(actions)
    unknown = actions - ACTIONS
    if unknown:
        raise StudioError(f"Unknown clean-up action(s): {', '.join(sorted(unknown))}. Use: {', '.join(sorted(ACTIONS))}.")
    findings = list(report.findings) if report is not None else list(scan.findings)
    empty = _rows_with(findings, {"answer.empty"}) if "drop_empty_answers" in actions else set()
    untrainable = _rows_with(findings, severity="error") if "drop_untrainable" in actions else set()
    has = scan.features.keyed   # rows with an Example or a preference pair
    cmap = dict(scan.column_map)
    plan = CleanPlan()
    seen: set[int] = set()
    lines: list[str] = []
    drop = plan.dropped
    for i, raw in scan.store.iter_raw():
        if i in empty:
            drop["empty_answer"] = drop.get("empty_answer", 0) + 1
            continue
        if "drop_untrainable" in actions and (i in untrainable or not has[i]):
            drop["untrainable"] = drop.get("untrainable", 0) + 1
            continue
        text = raw
        data = None
        if "strip_whitespace" in actions:
            data, changed = _strip(json.loads(raw), cmap)
            if changed:
                plan.stripped += 1
                text = json.dumps(data, ensure_ascii=False)
        if "drop_exact_duplicates" in actions and has[i]:
            if data is None:
                key = scan.features.exact[i]
            else:
                try:
                    ex = to_example(data, column_map=cmap or None)
                    key = hash(ex.messages) if ex.is_chat else hash(("text", ex.text))
                except Exception:
                    key = hash(text)
            if key in seen:
                drop["exact_duplicate"] = drop.get("exact_duplicate", 0) + 1
                continue
            seen.add(key)
        plan.keep.append(i)
        lines.append(text)
    return plan, lines


def _utf8_line(line: str) -> bytes:
    try:
        return line.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate (from a "\\ud800" escape) has no UTF-8 form; keep it escaped instead.
        return json.dumps(json.loads(line), ensure_ascii=True).encode("ascii") + b"\n"


def cleaned_path(source: str | Path) -> Path:
    """``data.jsonl`` → ``data.cleaned.jsonl`` beside it (any source type becomes JSON Lines)."""
    p = Path(source)
    return p.with_name(f"{p.stem}.cleaned.jsonl")


def write_cleaned_copy(scan: ScanResult, actions: Iterable[str] = ("drop_exact_duplicates", "drop_empty_answers",
                       "strip_whitespace"), out: str | Path | None = None, report=None) -> Path:
    """Write the kept rows as UTF-8 JSON Lines next to the (first) original and return its path.

    Unparseable lines are never in a scan, so they are never in the copy. ``report`` (from
    ``validate``) lets ``drop_untrainable`` also drop rows the token checks found useless.
    """
    if not scan.files or all(f.fatal for f in scan.files):
        raise StudioError("There is nothing to clean: no rows could be read from the dataset.")
    target = Path(out) if out is not None else cleaned_path(scan.files[0].path)
    sources = {os.path.realpath(f.path) for f in scan.files}
    if os.path.realpath(target) in sources:
        raise StudioError("The cleaned copy would overwrite the original. Pick another file name.", path=target)
    _plan, lines = plan_clean(scan, actions, report)
    payload = b"".join(_utf8_line(line) for line in lines)
    try:
        atomic_write_bytes(target, payload)
    except OSError as err:
        raise StudioError("Could not write the cleaned copy. Check free space and write permission.",
                          path=target, detail=str(err)) from None
    return target
