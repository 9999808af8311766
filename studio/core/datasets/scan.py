"""Scan dataset files forgivingly: rows for the table as they load, problems collected, never raised.

``scan`` is what the Dataset pane runs in a worker and what ``studio validate`` starts with. It hands
the first chunk of rows to ``on_rows`` within milliseconds, checks ``should_stop`` between chunks,
and returns a ``ScanResult`` holding every row (compactly, see ``store.py``), each row's format and
features, and the read-level findings. Dataset-wide checks live in ``validate.py``.
"""

from __future__ import annotations

import os
import time
from array import array
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.datasets import readers
from studio.core.datasets.findings import FATAL_CODES, Finding, FindingSink
from studio.core.datasets.fingerprint import combine_digests
from studio.core.datasets.formats import FORMATS, SFT_FORMATS, Example, to_example
from studio.core.datasets.load import Row
from studio.core.datasets.pairs import Pair, to_pair
from studio.core.datasets.rowcheck import FORMAT_CODES, check_row, pair_feature, row_feature
from studio.core.datasets.store import RowStore
from studio.core.datasets.textcheck import has_surrogate
from studio.core.fsutil import file_sha256

OnRows = Callable[[list[Row]], None]
OnExamples = Callable[[list[tuple[int, Example]]], None]
ShouldStop = Callable[[], bool]


@dataclass
class FileInfo:
    path: str
    kind: str = ""                 # jsonl, json, csv, parquet
    rows: int = 0
    first_row: int = 0             # index of its first row in the scanned dataset
    size: int = 0
    encoding: str = ""
    sha256: str | None = None      # of the bytes that were read; None when reading stopped early
    formats: dict[str, int] = field(default_factory=dict)
    fatal: bool = False            # nothing could be read from it

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Features:
    """Per-row columns for the dataset-wide checks (one entry per row, in row order)."""

    fmt: array = field(default_factory=lambda: array("b"))          # index into FORMATS, -1 unknown
    trainable: array = field(default_factory=lambda: array("b"))
    has_example: array = field(default_factory=lambda: array("b"))
    has_pair: array = field(default_factory=lambda: array("b"))     # a preference pair (no Example)
    keyed: array = field(default_factory=lambda: array("b"))        # has an Example or a pair: dup/leak keys
    exact: array = field(default_factory=lambda: array("q"))
    normalized: array = field(default_factory=lambda: array("q"))
    prompt: array = field(default_factory=lambda: array("q"))
    answer_chars: array = field(default_factory=lambda: array("q"))
    total_chars: array = field(default_factory=lambda: array("q"))
    turns: array = field(default_factory=lambda: array("i"))
    trailing_ws: array = field(default_factory=lambda: array("b"))
    ends_punct: array = field(default_factory=lambda: array("b"))
    rejected_chars: array = field(default_factory=lambda: array("q"))  # a pair's rejected answer; chosen: answer_chars

    def __post_init__(self) -> None:
        # In RowFeature's field order, so a row's features go in with one zip.
        self._feature_columns = (self.exact, self.normalized, self.prompt, self.answer_chars, self.total_chars,
                                 self.turns, self.trailing_ws, self.ends_punct)

    def add(self, fmt: str | None, trainable: bool, example: Example | None, pair: Pair | None = None) -> None:
        self.fmt.append(FORMAT_CODES.get(fmt, -1) if fmt else -1)
        self.trainable.append(bool(trainable))
        self.has_example.append(example is not None)
        self.has_pair.append(pair is not None)
        self.keyed.append(example is not None or pair is not None)
        self.rejected_chars.append(len(pair.answer("rejected")) if pair is not None else 0)
        if example is not None:
            values = row_feature(example)
        else:
            values = _NO_FEATURE if pair is None else pair_feature(pair)
        for col, value in zip(self._feature_columns, values, strict=True):
            col.append(value)


_NO_FEATURE = (0,) * 8


@dataclass
class ScanResult:
    files: list[FileInfo]
    store: RowStore
    findings: list[Finding]
    features: Features
    format: str                      # one of FORMATS, "mixed" or "unknown"
    format_counts: dict[str, int]
    columns: list[str]               # fields of rows in no known format, for the column-mapping dialog
    column_map: dict[str, str]
    stopped: bool = False
    seconds: float = 0.0
    first_rows_seconds: float | None = None

    def __len__(self) -> int:
        return len(self.store)

    @property
    def fatal(self) -> bool:
        """A file could not be read at all (the CLI exits 2)."""
        return any(f.fatal for f in self.files)

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    def row(self, i: int) -> Row:
        return self.store.row(i)

    def rows(self, start: int, stop: int) -> list[Row]:
        return self.store.rows(start, stop)

    def example(self, i: int) -> Example | None:
        """Row ``i`` in normal form, or None when it cannot be normalised (see the findings)."""
        if not self.features.has_example[i]:
            return None
        try:
            return to_example(self.store.data(i), column_map=self.column_map or None)
        except Exception:
            return None

    def pair(self, i: int) -> Pair | None:
        """Row ``i`` as a preference pair, or None when it is not one (or cannot be read as one)."""
        if not self.features.has_pair[i]:
            return None
        try:
            return to_pair(self.store.data(i))
        except Exception:
            return None

    def iter_pairs(self) -> Iterator[tuple[int, Pair]]:
        """(row index, Pair) for every row that is a readable preference pair, parsed again from the store."""
        import json

        has = self.features.has_pair
        for i, raw in self.store.iter_raw():
            if has[i]:
                try:
                    yield i, to_pair(json.loads(raw))
                except Exception:
                    continue

    def iter_examples(self, skip: Container[int] = ()) -> Iterator[tuple[int, Example | None]]:
        """(row index, Example or None) for every row not in ``skip``, parsed again from the store."""
        import json

        cmap = self.column_map or None
        has = self.features.has_example
        for i, raw in self.store.iter_raw():
            if i in skip:
                continue
            if not has[i]:
                yield i, None
                continue
            try:
                yield i, to_example(json.loads(raw), column_map=cmap)
            except Exception:
                yield i, None

    def fingerprint(self) -> str | None:
        """Content hash of the files as read (None if a file was not read to the end)."""
        return files_fingerprint(self.files)


def files_fingerprint(files: list[FileInfo]) -> str | None:
    """``fingerprint.fingerprint`` of these files from the digests taken while they were read (no
    second read); None when one was not read to the end."""
    digests = [f.sha256 for f in files]
    if any(d is None for d in digests):
        return None
    return combine_digests([d for d in digests if d is not None])


class _CallbackFailed(Exception):
    """Wraps an exception raised by on_rows/on_examples so it is not blamed on the file."""


def _as_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def scan(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    on_rows: OnRows | None = None,
    chunk: int = 2000,
    should_stop: ShouldStop | None = None,
    column_map: Mapping[str, str] | None = None,
    on_examples: OnExamples | None = None,
) -> ScanResult:
    """Read every row of every file (appended in order), collecting problems instead of raising.

    ``on_rows(rows)`` gets each chunk of ``chunk`` rows as soon as it is read (the first within
    milliseconds); ``should_stop()`` is polled between chunks and ends the scan early (``stopped``).
    ``on_examples`` gets (row index, Example) chunks of the rows that normalise, for work that
    can start before the scan ends (token counting in another thread).
    """
    t0 = time.perf_counter()
    plist = _as_paths(paths)
    cmap = dict(column_map or {})
    sink = FindingSink()
    files = [FileInfo(path=str(p)) for p in plist]
    store = RowStore([f.path for f in files], chunk=chunk)
    feats = Features()
    pending: list[Row] = []
    pending_examples: list[tuple[int, Example]] = []
    first_rows_at: float | None = None
    stopped = False
    unknown_columns: Counter[str] = Counter()

    def flush() -> None:
        nonlocal pending, pending_examples, first_rows_at
        rows, examples = pending, pending_examples
        pending, pending_examples = [], []
        try:
            if on_rows and rows:
                on_rows(rows)
                if first_rows_at is None:
                    first_rows_at = time.perf_counter() - t0
            if on_examples and examples:
                on_examples(examples)
        except Exception as err:
            raise _CallbackFailed() from err

    for fi, (path, info) in enumerate(zip(plist, files, strict=True)):
        if stopped:
            break
        name = info.path
        info.first_row = len(store)
        fmt_counts: Counter[str] = Counter()
        try:
            kind, st = readers.preflight(path)
            info.kind, info.size = kind, st.st_size
            src: readers.TextSource | None = None
            if kind == "parquet":
                it: Iterator[readers.RawRow] = readers.iter_parquet(path, sink, name, chunk)
                info.encoding = "parquet"
            else:
                src = readers.TextSource(path, sink, name)
                it = readers.TEXT_READERS[kind](src, len(store))
            for raw_row in it:
                check = check_row(raw_row.data, cmap)
                idx = len(store)
                if on_rows is not None:
                    pending.append(Row(name, raw_row.line, raw_row.data))
                if on_examples is not None and check.example is not None:
                    pending_examples.append((idx, check.example))
                if (idx + 1) % chunk == 0:
                    flush()
                raw_json = raw_row.raw if raw_row.raw is not None else _dump(raw_row.data)
                store.append(raw_json, fi, raw_row.line)
                feats.add(check.fmt, check.trainable, check.example, check.pair)
                fmt_counts[check.fmt or "unknown"] += 1
                for code, note in check.problems:
                    sink.add(code, name, line=raw_row.line, row=idx, note=_where(kind, raw_row.line, note))
                if check.fmt is None and isinstance(raw_row.data, Mapping) and len(unknown_columns) < 200:
                    unknown_columns.update(map(str, raw_row.data))
                if (idx + 1) % chunk == 0 and should_stop is not None and should_stop():
                    stopped = True
                    break
            if src is not None:
                info.encoding = src.encoding
                if not stopped:
                    info.sha256 = src.hasher.hexdigest() if src.hasher else None
                    _check_changed(path, st, src.bytes_read, sink, name)
            elif not stopped:
                info.sha256 = file_sha256(path)
        except _CallbackFailed as failed:
            raise failed.__cause__ from None  # the caller's bug, not the file's: let it surface
        except readers.FileFatal as fatal:
            sink.add(fatal.code, name, line=fatal.line, note=fatal.note)
            info.fatal = fatal.code in FATAL_CODES
        except PermissionError:
            sink.add("file.unreadable", name, note="permission denied")
            info.fatal = True
        except OSError as err:
            sink.add("file.unreadable", name, note=err.strerror or str(err))
            info.fatal = True
        except MemoryError:
            sink.add("file.unreadable", name, note="the file is too large for the memory of this machine")
            info.fatal = True
        except Exception as err:  # the last line of defence: a message, never a traceback
            sink.add("file.unreadable", name, note=f"{type(err).__name__}: {str(err)[:200]}")
            info.fatal = True
        info.rows = len(store) - info.first_row
        info.formats = dict(fmt_counts)
        if info.rows == 0 and not info.fatal and not stopped:
            if not sink.has_file(name):
                note = "it has a header but no rows" if info.kind == "csv" else "it holds only blank lines or whitespace"
                sink.add("file.empty", name, note=note)
            else:
                sink.add("file.empty", name, note="no row could be read from it")
            info.fatal = True
    try:
        flush()
    except _CallbackFailed as failed:
        raise failed.__cause__ from None
    store.seal()
    format_counts = Counter()
    for info in files:
        format_counts.update(info.formats)
    _format_findings(files, store, feats, sink)
    overall = overall_format(format_counts)
    columns = sorted(unknown_columns) if format_counts.get("unknown") else []
    return ScanResult(
        files=files, store=store, findings=sink.findings(), features=feats, format=overall,
        format_counts=dict(format_counts), columns=columns, column_map=cmap, stopped=stopped,
        seconds=time.perf_counter() - t0, first_rows_seconds=first_rows_at,
    )


def _dump(data: Any) -> str:
    import json

    try:
        text = json.dumps(data, ensure_ascii=False, default=str)
        # A lone surrogate (from a "\ud800" escape) cannot be stored as UTF-8: keep it escaped.
        return json.dumps(data, default=str) if has_surrogate(text) else text
    except (ValueError, RecursionError, TypeError):
        return json.dumps(repr(data)[:10000])


def _where(kind: str, line: int, note: str | None) -> str | None:
    label = {"json": "element", "parquet": "row"}.get(kind, "line")
    return f"{label} {line}: {note}" if note else f"{label} {line}"


def _check_changed(path: Path, before: os.stat_result, bytes_read: int, sink: FindingSink, name: str) -> None:
    try:
        after = os.stat(path)
    except OSError:
        sink.add("file.changed", name, note="it was removed or renamed while being read")
        return
    if after.st_size != before.st_size or after.st_mtime_ns != before.st_mtime_ns or bytes_read != before.st_size:
        sink.add("file.changed", name, note=f"size was {before.st_size} bytes, now {after.st_size}; {bytes_read} were read")


def overall_format(counts: Mapping[str, int]) -> str:
    """What to call rows with these format counts: one format's name, ``mixed`` or ``unknown``."""
    known = [f for f in FORMATS if counts.get(f)]
    if len(known) > 1:
        return "mixed"
    if len(known) == 1:
        return known[0]
    return "unknown"


def _format_findings(files: list[FileInfo], store: RowStore, feats: Features, sink: FindingSink) -> None:
    """Pairs mixed with single-answer rows anywhere in the dataset (an error pointing at the
    minority kind), then per file a mixed-format warning among the single-answer formats."""
    _mixed_pairs(files, store, feats, sink)
    for info in files:
        known = {f: n for f, n in info.formats.items() if f in SFT_FORMATS}
        if len(known) < 2:
            continue
        main = max(known, key=lambda f: known[f])
        main_code = FORMAT_CODES[main]
        lines, rows = [], []
        for i in range(info.first_row, info.first_row + info.rows):
            c = feats.fmt[i]
            if c >= 0 and c != main_code:
                lines.append(store.lines[i])
                rows.append(i)
        summary = ", ".join(f"{n} {f}" for f, n in sorted(known.items(), key=lambda kv: -kv[1]))
        sink.add_many("format.mixed", info.path, lines, rows, notes=[summary])


def _mixed_pairs(files: list[FileInfo], store: RowStore, feats: Features, sink: FindingSink) -> None:
    """A preference run cannot use single-answer rows and a supervised run cannot use pairs, so a
    dataset holding both is an error on the rows of the smaller kind (pairs on a tie)."""
    pair_code = FORMAT_CODES["preference"]
    pairs = sum(info.formats.get("preference", 0) for info in files)
    singles = sum(n for info in files for f, n in info.formats.items() if f in SFT_FORMATS)
    if not pairs or not singles:
        return
    flag_pairs = pairs <= singles
    lines, rows = [], []
    for i in range(len(store)):
        c = feats.fmt[i]
        if c >= 0 and (c == pair_code) == flag_pairs:
            lines.append(store.lines[i])
            rows.append(i)
    note = f"{pairs} preference pair{'s' * (pairs != 1)}, {singles} single-answer row{'s' * (singles != 1)}"
    by_file: dict[str, tuple[list[int], list[int]]] = {}
    for line, i in zip(lines, rows, strict=True):
        got = by_file.setdefault(store.source(i), ([], []))
        got[0].append(line)
        got[1].append(i)
    for path, (file_lines, file_rows) in by_file.items():
        sink.add_many("format.mixed_pairs", path, file_lines, file_rows, notes=[note])
