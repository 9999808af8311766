"""Forgiving readers: every dataset file type yields what it can and reports the rest.

These never stop at the first bad spot: a broken line is reported and skipped, a Latin-1 file is
decoded anyway and flagged, a truncated JSON array gives back the elements before the cut. Only a
file that yields nothing at all raises ``FileFatal``. Training reads through the same readers in a
strict mode (``load.read_rows`` hands them a sink that raises at the first error).
Reading is streamed line by line so the first rows reach the table while the rest still loads.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.datasets.findings import FindingSink

SUPPORTED_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
SNIFF_BYTES = 8192
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
_CHAT_COLUMNS = ("messages", "conversations", "prompt", "completion")


class FileFatal(Exception):
    """Nothing can be read from this file; ``code`` is a fatal finding code."""

    def __init__(self, code: str, note: str | None = None, line: int | None = None) -> None:
        super().__init__(note or code)
        self.code = code
        self.note = note
        self.line = line


@dataclass
class RawRow:
    line: int                # 1-based line (JSONL, CSV), element index (JSON array), 1-based row (Parquet)
    data: Any
    raw: str | None = None   # the row's own JSON text when the file has it (JSONL); saves re-encoding


class _Decoder:
    """One JSON decoder that also notices duplicate keys and NaN/Infinity, at plain ``json.loads`` speed."""

    def __init__(self) -> None:
        self.duplicate_key = False
        self.non_standard = False
        self._dec = json.JSONDecoder(object_pairs_hook=self._pairs, parse_constant=self._constant)

    def _pairs(self, pairs: list[tuple[str, Any]]) -> dict:
        d = dict(pairs)
        if len(d) != len(pairs):
            self.duplicate_key = True
        return d

    def _constant(self, name: str) -> float:
        self.non_standard = True
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]

    def reset(self) -> None:
        self.duplicate_key = False
        self.non_standard = False

    def report(self, sink: FindingSink, file: str, line: int, where: str) -> None:
        """The warnings about the value just decoded (a repeated key, NaN), at ``line``."""
        if self.duplicate_key:
            sink.add("json.duplicate_key", file, line=line, note=where)
        if self.non_standard:
            sink.add("json.non_standard", file, line=line, note=where)

    def decode(self, text: str) -> Any:
        return self._dec.decode(text)

    def raw_decode(self, text: str, idx: int) -> tuple[Any, int]:
        return self._dec.raw_decode(text, idx)


def _snippet(text: str, col: int, width: int = 24) -> str:
    piece = text[max(0, col - width): col + width].replace("\n", "⏎").replace("\t", " ")
    return repr(piece)[1:-1]


def _decode_line_forgiving(raw: bytes) -> str:
    # A stray bad byte in a UTF-8 file keeps the rest readable; a Latin-1/Windows-1252 line
    # (no valid UTF-8 sequence at all) is read as such, so the cleaned copy gets the right characters.
    if _UTF8_MULTIBYTE.search(raw):
        return raw.decode("utf-8", errors="replace")
    return raw.decode("cp1252", errors="replace")


# Files that are certainly not text, by their first bytes (a renamed archive, image or table).
_MAGIC = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"), (b"PK\x03\x04", "a zip archive (or .xlsx/.docx)"),
    (b"BZh", "a bzip2 archive"), (b"\xfd7zXZ\x00", "an xz archive"), (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"), (b"PAR1", "a Parquet table"), (b"ARROW1", "an Arrow table"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\x7fELF", "a program"), (b"\x93NUMPY", "a NumPy array"),
)
# C0 controls other than tab, line feed, form feed, carriage return (and NUL, judged per line):
# text has next to none, binary data has about one byte in ten.
_BINARY_BYTES = bytes([*range(1, 9), 11, *range(14, 32), 127])
BINARY_SHARE = 0.05


def preflight(path: Path) -> tuple[str, os.stat_result]:
    """The file kind (jsonl, json, csv, parquet), or FileFatal for anything that is not a readable
    regular dataset file; asked before a byte is read, by the scan and by the strict reader alike."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        note = "it is a broken symbolic link" if os.path.islink(path) else None
        raise FileFatal("file.missing", note) from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise FileFatal("file.unreadable", "it is a symbolic link loop") from None
        raise FileFatal("file.unreadable", err.strerror or str(err)) from None
    if stat.S_ISDIR(st.st_mode):
        raise FileFatal("file.is_directory")
    if not stat.S_ISREG(st.st_mode):
        raise FileFatal("file.unreadable", "it is not a regular file (a device, pipe or socket)")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise FileFatal("file.unsupported_type", f"'{suffix or '(no extension)'}'")
    if st.st_size == 0:
        raise FileFatal("file.empty", "the file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise FileFatal("file.unreadable", "permission denied")
    return suffix.lstrip("."), st


def binary_reason(head: bytes) -> str | None:
    """Why the first bytes of a file say it is not text, or None. Only real binary is refused: a
    text file with a few stray NUL or control bytes is read, and its bad lines are reported."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return f"it is {kind}"
    controls = len(head) - len(head.translate(None, _BINARY_BYTES))
    if controls > BINARY_SHARE * len(head):
        return f"{controls * 100 // len(head)}% of its first {len(head):,} bytes are control codes"
    return None


def sniff_text_encoding(head: bytes) -> str | None:
    """'utf-16'/'utf-32' when the head says so (BOM or NUL pattern), None for byte-oriented text;
    FileFatal("file.binary") for real binary."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    reason = binary_reason(head)
    if reason:
        raise FileFatal("file.binary", reason)
    if b"\x00" in head:
        sample = head[:4096]
        even_nuls = sample[0::2].count(0)
        odd_nuls = sample[1::2].count(0)
        half = max(1, len(sample) // 2)
        # ASCII text in UTF-16 has a NUL in nearly every other byte; binary data does not.
        if odd_nuls > 0.4 * half and even_nuls < 0.05 * half:
            return "utf-16-le"
        if even_nuls > 0.4 * half and odd_nuls < 0.05 * half:
            return "utf-16-be"
    return None


def _drop_nuls(line: str, lineno: int, sink: FindingSink, file: str) -> str:
    """A line without its NUL characters, reported with where they were (text never holds them;
    a crash while a file was written often leaves a run of them)."""
    if "\x00" not in line:
        return line
    n = line.count("\x00")
    note = f"line {lineno}: {n} NUL byte{'s' if n > 1 else ''}, the first at character {line.index(chr(0)) + 1}"
    sink.add("encoding.nul_bytes", file, line=lineno, note=note)
    return line.replace("\x00", "")


class TextSource:
    """The lines of a text file as str, with encoding problems reported once per file."""

    def __init__(self, path: Path, sink: FindingSink, file: str) -> None:
        self.path = path
        self.sink = sink
        self.file = file
        self.encoding = "utf-8"
        self.bytes_read = 0
        self.hasher = None

    def _start(self, fh) -> str | None:
        head = fh.read(SNIFF_BYTES)
        fh.seek(0)
        if not head:
            raise FileFatal("file.empty", "the file is empty (0 bytes)")
        wide = sniff_text_encoding(head)
        if wide:
            self.encoding = wide
            self.sink.add("encoding.not_utf8", self.file, line=1, note=f"it is {wide.upper()}")
        elif head.startswith(b"\xef\xbb\xbf"):
            self.encoding = "utf-8-sig"
            self.sink.add("encoding.bom", self.file, line=1)
        return wide

    def lines(self) -> Iterator[tuple[int, str]]:
        """(1-based line number, text without the line ending). Splits on \\n only, as JSON Lines does."""
        import hashlib

        self.hasher = hashlib.sha256()
        with open(self.path, "rb") as fh:
            wide = self._start(fh)
            if wide:
                data = fh.read()
                self.hasher.update(data)
                self.bytes_read = len(data)
                text = data.decode(wide, errors="replace").removeprefix("\ufeff")
                for lineno, line in enumerate(text.split("\n"), start=1):
                    yield lineno, _drop_nuls(line.removesuffix("\r"), lineno, self.sink, self.file)
                return
            bad_lines = 0
            for lineno, raw in enumerate(fh, start=1):
                self.hasher.update(raw)
                self.bytes_read += len(raw)
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    bad_lines += 1
                    if bad_lines == 1:
                        self.encoding = "cp1252" if not _UTF8_MULTIBYTE.search(raw) else "utf-8 (with bad bytes)"
                    note = f"line {lineno}, byte {err.start + 1}: 0x{raw[err.start]:02x}"
                    self.sink.add("encoding.not_utf8", self.file, line=lineno, note=note)
                    line = _decode_line_forgiving(raw)
                if line.endswith("\n"):
                    line = line[:-1]
                if line.endswith("\r"):
                    line = line[:-1]
                yield lineno, _drop_nuls(line, lineno, self.sink, self.file)

    def whole_text(self) -> str:
        """All of it at once (JSON documents and CSV need the whole text)."""
        return "\n".join(line for _, line in self.lines())


def iter_jsonl(src: TextSource, first_row_index: int) -> Iterator[RawRow]:
    """Every line that parses; bad lines are reported with column and snippet."""
    sink, file = src.sink, src.file
    dec = _Decoder()
    for lineno, line in src.lines():
        if not line or line.isspace():
            continue
        dec.reset()
        try:
            data = dec.decode(line)
        except json.JSONDecodeError as err:
            sink.add("json.unparseable", file, line=lineno,
                     note=f"line {lineno}, column {err.colno}: {err.msg}: “{_snippet(line, err.pos)}”")
            continue
        except RecursionError:
            sink.add("json.too_deep", file, line=lineno, note=f"line {lineno}")
            continue
        dec.report(sink, file, lineno, f"line {lineno}")
        yield RawRow(lineno, data, line)


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def iter_json_document(src: TextSource, first_row_index: int) -> Iterator[RawRow]:
    """A JSON array (or an object holding one list), element by element so a truncated file
    still gives every element before the cut. A ``.json`` that is really JSON Lines is read as such."""
    sink, file = src.sink, src.file
    text = src.whole_text()
    start = _skip_ws(text, 0)
    if start >= len(text):
        raise FileFatal("file.empty", "the file holds only whitespace")
    dec = _Decoder()
    if text[start] == "{":
        try:
            doc = dec.decode(text)
        except json.JSONDecodeError as err:
            if err.msg == "Extra data":
                # Many ".json" datasets are JSON Lines: one object per line.
                src2 = _ReplaySource(src, text)
                yield from iter_jsonl(src2, first_row_index)
                return
            line, col = err.lineno, err.colno
            raise FileFatal("json.not_a_list", f"not valid JSON: {err.msg} at line {line}, column {col}", line) from None
        except RecursionError:
            raise FileFatal("json.not_a_list", "the JSON is nested too deeply to read") from None
        lists = {k: v for k, v in doc.items() if isinstance(v, list)}
        if len(lists) != 1:
            if not lists:
                raise FileFatal("json.not_a_list", "the object holds no list of examples")
            names = ", ".join(f"'{k}' ({len(v)} items)" for k, v in lists.items())
            raise FileFatal("json.ambiguous_lists", f"lists: {names}")
        for i, item in enumerate(next(iter(lists.values()))):
            yield RawRow(i, item)
        return
    if text[start] != "[":
        try:
            doc = dec.decode(text)
            kind = type(doc).__name__
            note = f"it holds a single {kind} value"
        except (json.JSONDecodeError, RecursionError) as err:
            note = f"not valid JSON: {getattr(err, 'msg', 'too deep')}"
        raise FileFatal("json.not_a_list", note)
    i = _skip_ws(text, start + 1)
    index = 0
    if i < len(text) and text[i] == "]":
        raise FileFatal("file.empty", "the array is empty")
    while True:
        dec.reset()
        try:
            item, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as err:
            line, col = _line_col(text, err.pos)
            sink.add("json.unparseable", file, line=index,
                     note=f"element {index} (line {line}, column {col}): {err.msg}: “{_snippet(text, err.pos)}”; "
                     "nothing after it could be read")
            return
        except RecursionError:
            sink.add("json.too_deep", file, line=index, note=f"element {index}; nothing after it could be read")
            return
        dec.report(sink, file, index, f"element {index}")
        yield RawRow(index, item)
        index += 1
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if i < len(text) and text[i] == "]":
            rest = _skip_ws(text, i + 1)
            if rest < len(text):
                line, col = _line_col(text, rest)
                sink.add("json.unparseable", file, line=index,
                         note=f"line {line}, column {col}: extra text after the array: “{_snippet(text, rest)}”")
            return
        line, col = _line_col(text, i)
        what = "the file ends before the array is closed" if i >= len(text) else "expected ',' or ']'"
        sink.add("json.unparseable", file, line=index,
                 note=f"after element {index - 1} (line {line}, column {col}): {what}; nothing after it could be read")
        return


class _ReplaySource(TextSource):
    """Lines of text already read (a .json file that turned out to be JSON Lines)."""

    def __init__(self, src: TextSource, text: str) -> None:
        super().__init__(src.path, src.sink, src.file)
        self._text = text

    def lines(self) -> Iterator[tuple[int, str]]:
        yield from enumerate(self._text.split("\n"), start=1)


def _cell(value: str, column: str) -> Any:
    # Chat columns in a CSV hold JSON text; read it so the row can be a conversation.
    if column in _CHAT_COLUMNS and value[:1] == "[":
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def iter_csv(src: TextSource, first_row_index: int) -> Iterator[RawRow]:
    sink, file = src.sink, src.file
    text = src.whole_text()
    if not text.strip():
        raise FileFatal("file.empty", "the file holds only whitespace")
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as err:
        raise FileFatal("file.empty", f"no header row ({err})" if str(err) else "no header row") from None
    header = [h.strip() or f"column_{i + 1}" for i, h in enumerate(header)]
    if len(set(header)) != len(header):
        sink.add("csv.ragged", file, line=1, note="the header repeats a column name; later columns win")
    prev_end = reader.line_num
    while True:
        start_line = prev_end + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            sink.add("csv.unparseable", file, line=start_line, note=f"line {start_line}: {err}")
            return
        prev_end = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != len(header):
            sink.add("csv.ragged", file, line=start_line,
                     note=f"line {start_line}: {len(record)} cells, header has {len(header)}")
            record = (record + [""] * len(header))[: len(header)]
        yield RawRow(start_line, {h: _cell(v, h) for h, v in zip(header, record, strict=True)})


def iter_parquet(path: Path, sink: FindingSink, file: str, batch_rows: int) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        if pf.metadata.num_rows == 0:
            raise FileFatal("file.empty", "the table has no rows")
        batches = pf.iter_batches(batch_size=batch_rows)
        line = 1
        for batch in batches:
            for item in batch.to_pylist():
                yield RawRow(line, item)
                line += 1
    except FileFatal:
        raise
    except Exception as err:  # pyarrow raises many types for garbage; all mean "not readable"
        raise FileFatal("parquet.unreadable", f"{type(err).__name__}: {str(err)[:200]}") from None


# The text readers by file kind (Parquet is read by ``iter_parquet``, from the path).
TEXT_READERS: dict[str, Callable[[TextSource, int], Iterator[RawRow]]] = {
    "jsonl": iter_jsonl, "json": iter_json_document, "csv": iter_csv,
}
