"""Read dataset files into rows that remember where they came from.

Every row keeps its source file and 1-based line (JSONL, CSV) or element index (JSON array), so
every later message can point at the exact place to fix. ``read_rows`` is strict and used for
training; the validator reads more forgivingly and reports every problem instead of the first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError

SUPPORTED_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")


@dataclass(frozen=True)
class Row:
    source: str
    line: int
    data: Any


def _check_path(path: Path) -> None:
    if not path.exists():
        raise StudioError("File not found. Check the path or pick the file again.", path=path)
    if path.is_dir():
        raise StudioError("This is a folder, not a dataset file. Pick a .json, .jsonl, .csv or .parquet file.", path=path)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise StudioError(
            f"Unsupported file type '{path.suffix or '(none)'}'. Use .json, .jsonl, .csv or .parquet.", path=path
        )


def file_problem(path: Path | str) -> StudioError | None:
    """Why this dataset file cannot be trained on at all, from its name and first bytes, or None.

    Cheap enough to ask on every config change, so the Train button can say "this file cannot be
    read" before minutes go into loading a model; the full read still reports rows and lines.
    """
    from studio.core.datasets.readers import SNIFF_BYTES, FileFatal, sniff_text_encoding

    path = Path(path)
    try:
        _check_path(path)
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except StudioError as err:
        return err
    except OSError as err:
        return StudioError(f"The file cannot be read: {err.strerror or err}. Check its permissions.", path=path)
    if not head:
        return StudioError("The file is empty. Pick a file with training rows.", path=path)
    if path.suffix.lower() == ".parquet":
        return None if head.startswith(b"PAR1") else StudioError(
            "This is not a Parquet file (it lacks Parquet's header). Export the dataset again.", path=path)
    try:
        wide = sniff_text_encoding(head)
    except FileFatal as fatal:
        return StudioError(f"This looks like a binary file, not text ({fatal.note}). "
                           "Export the dataset as JSON Lines.", path=path)
    if wide:
        return StudioError(f"The file is {wide.upper()} text, not UTF-8. Re-save it as UTF-8.", path=path)
    return None


def _decode(path: Path, raw: bytes) -> str:
    # The same sniff as the validator's reader, so both call the same files binary.
    from studio.core.datasets.readers import SNIFF_BYTES, FileFatal, sniff_text_encoding

    try:
        wide = sniff_text_encoding(raw[:SNIFF_BYTES])
    except FileFatal as fatal:
        raise StudioError(
            f"This looks like a binary file, not text ({fatal.note}). Export the dataset as JSON Lines.", path=path
        ) from None
    if wide:
        raise StudioError(f"The file is {wide.upper()} text, not UTF-8. Re-save it as UTF-8.", path=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise StudioError(
            "The file is not UTF-8 text (it may be Latin-1 or Windows-1252). Re-save it as UTF-8.",
            path=path, line=line, detail=str(err),
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise StudioError(
            "This line contains NUL bytes, which text never holds (the file may be damaged). Remove them, "
            "or use the cleaned copy from the dataset check.", path=path, line=text.count("\n", 0, nul) + 1,
        )
    return text.removeprefix("\ufeff")


def iter_jsonl(path: Path, text: str) -> Iterator[Row]:
    # Split on "\n" only: str.splitlines() also breaks at U+2028, U+0085 and form feeds, which
    # are legal inside JSON strings, and would turn a valid row into two broken ones.
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            yield Row(str(path), lineno, json.loads(line))
        except json.JSONDecodeError as err:
            snippet = line[max(0, err.colno - 20): err.colno + 20]
            raise StudioError(
                f"Line is not valid JSON ({err.msg} at column {err.colno}: …{snippet}…). Fix or delete this line.",
                path=path, line=lineno, detail=str(err),
            ) from None


def rows_from_json_document(path: Path, text: str) -> Iterator[Row]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise StudioError(
            f"Not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}).", path=path, line=err.lineno, detail=str(err)
        ) from None
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise StudioError(
                "A JSON object must hold exactly one list of examples (or use a top-level array).", path=path
            )
        doc = lists[0]
    if not isinstance(doc, list):
        raise StudioError("Expected a JSON array of examples.", path=path)
    for i, item in enumerate(doc):
        yield Row(str(path), i, item)


def read_rows(path: Path | str) -> list[Row]:
    """All rows of one file; raises StudioError naming file and line on the first unreadable spot."""
    path = Path(path)
    _check_path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        except Exception as err:
            raise StudioError("Could not read this Parquet file; it may be truncated or not Parquet.", path=path, detail=str(err)) from None
        return [Row(str(path), i + 1, r) for i, r in enumerate(table.to_pylist())]
    text = _decode(path, path.read_bytes())
    if suffix == ".jsonl":
        rows = list(iter_jsonl(path, text))
    elif suffix == ".json":
        stripped = text.lstrip()
        # Many ".json" datasets are really JSON Lines; accept both.
        if stripped.startswith("{") and "\n{" in stripped and not stripped.rstrip().endswith("]}"):
            try:
                rows = list(rows_from_json_document(path, text))
            except StudioError:
                rows = list(iter_jsonl(path, text))
        else:
            rows = list(rows_from_json_document(path, text))
    else:  # csv
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = [Row(str(path), reader.line_num, dict(r)) for r in reader]
    if not rows:
        raise StudioError("The file holds no examples.", path=path)
    return rows
