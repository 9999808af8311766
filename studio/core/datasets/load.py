"""Strict reading for training: the validator's readers, stopped at the first problem.

Every row keeps its source file and 1-based line (JSONL, CSV), element index (JSON array) or
1-based row (Parquet), so every later message can point at the exact place to fix. ``read_rows``
runs the same readers as the dataset check (``readers.py``) with a sink that raises a
``StudioError`` naming file and line at the first error-severity finding, so training and the check
never disagree on what a file holds. Warnings (a byte-order mark, a repeated key, NaN) do not stop
training: the row is read as ``json.loads`` reads it, and the check lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.datasets import readers
from studio.core.datasets.findings import CATALOGUE, FindingSink, describe
from studio.core.errors import StudioError


@dataclass(frozen=True)
class Row:
    source: str
    line: int
    data: Any


# What training says for a finding code; ``{note}`` is the reader's note on the place. Codes not
# listed here are told in the dataset check's own words.
_MESSAGES = {
    "file.missing": "File not found. Check the path or pick the file again.",
    "file.is_directory": "This is a folder, not a dataset file. Pick a .json, .jsonl, .csv or .parquet file.",
    "file.unreadable": "The file cannot be read: {note}. Check its permissions.",
    "file.empty": "The file is empty. Pick a file with training rows.",
    "file.binary": "This looks like a binary file, not text ({note}). Export the dataset as JSON Lines.",
    "parquet.unreadable": "Could not read this Parquet file; it may be truncated or not Parquet.",
    "encoding.not_utf8": "The file is not UTF-8 text (it may be Latin-1 or Windows-1252). Re-save it as UTF-8.",
    "encoding.nul_bytes": "This line contains NUL bytes, which text never holds (the file may be damaged). Remove "
                          "them, or use the cleaned copy from the dataset check.",
    "json.unparseable": "This line is not valid JSON ({note}). Fix or delete this line.",
}


def _error(code: str, path: Path, line: int | None = None, note: str | None = None) -> StudioError:
    if code == "file.unsupported_type":
        return StudioError(f"Unsupported file type '{path.suffix or '(none)'}'. Use .json, .jsonl, .csv or .parquet.",
                           path=path)
    template = _MESSAGES.get(code)
    message = template.format(note=note or "") if template else describe(code, 1, note)
    return StudioError(message, path=path, line=line, detail=note)


class _FirstProblem(FindingSink):
    """A finding sink that turns the first error into a StudioError (the readers' strict mode)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def add(self, code: str, file: str, *, line: int | None = None, row: int | None = None,
            note: str | None = None) -> None:
        if CATALOGUE[code][0] == "error":
            raise _error(code, self.path, line, note)
        super().add(code, file, line=line, row=row, note=note)


def file_problem(path: Path | str) -> StudioError | None:
    """Why this dataset file cannot be trained on at all, from its name and first bytes, or None.

    Cheap enough to ask on every config change, so the Train button can say "this file cannot be
    read" before minutes go into loading a model; the full read still reports rows and lines.
    """
    path = Path(path)
    try:
        kind, _st = readers.preflight(path)
        with open(path, "rb") as fh:
            head = fh.read(readers.SNIFF_BYTES)
        if kind == "parquet":
            return None if head.startswith(b"PAR1") else StudioError(
                "This is not a Parquet file (it lacks Parquet's header). Export the dataset again.", path=path)
        wide = readers.sniff_text_encoding(head)
    except readers.FileFatal as fatal:
        return _error(fatal.code, path, fatal.line, fatal.note)
    except OSError as err:
        return _error("file.unreadable", path, note=err.strerror or str(err))
    if wide:
        return StudioError(f"The file is {wide.upper()} text, not UTF-8. Re-save it as UTF-8.", path=path)
    return None


def read_rows(path: Path | str) -> list[Row]:
    """All rows of one file; raises StudioError naming file and line on the first unreadable spot."""
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise problem
    name = str(path)
    sink = _FirstProblem(path)
    kind = path.suffix.lower().lstrip(".")
    try:
        if kind == "parquet":
            raw_rows = readers.iter_parquet(path, sink, name, batch_rows=2000)
        else:
            raw_rows = readers.TEXT_READERS[kind](readers.TextSource(path, sink, name), 0)
        rows = [Row(name, r.line, r.data) for r in raw_rows]
    except readers.FileFatal as fatal:
        raise _error(fatal.code, path, fatal.line, fatal.note) from None
    except OSError as err:
        raise _error("file.unreadable", path, note=err.strerror or str(err)) from None
    if not rows:
        raise StudioError("The file holds no examples.", path=path)
    return rows
