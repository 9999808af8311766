"""Row storage for datasets of any size: each row's JSON text in Arrow string chunks.

Keeping the text rather than parsed dicts costs about the file's size (a 50 MB JSONL is ~50 MB
here, where Python dicts would be several times that), and any row is parsed again on demand in
microseconds. The table view, the validator's second pass and the cleaned copy all read from it, so
the file on disk may change or vanish after the scan without the scan's rows changing under them.
"""

from __future__ import annotations

import bisect
import json
from array import array
from collections.abc import Iterator
from typing import Any

from studio.core.datasets.load import Row


class RowStore:
    def __init__(self, files: list[str] | None = None, chunk: int = 2000) -> None:
        self.files: list[str] = files if files is not None else []
        self._chunk = max(1, chunk)
        self._arrays: list[Any] = []          # pyarrow LargeStringArray per sealed chunk
        self._starts: list[int] = []          # first row index of each sealed chunk
        self._pending: list[str] = []
        self._pending_start = 0
        self.file_index = array("i")
        self.lines = array("q")

    def __len__(self) -> int:
        return len(self.file_index)

    def append(self, raw_json: str, file_index: int, line: int) -> int:
        if not self._pending:
            self._pending_start = len(self)
        self._pending.append(raw_json)
        self.file_index.append(file_index)
        self.lines.append(line)
        if len(self._pending) >= self._chunk:
            self.seal()
        return len(self) - 1

    def seal(self) -> None:
        """Move pending rows into a compact Arrow chunk."""
        if not self._pending:
            return
        import pyarrow as pa

        self._arrays.append(pa.array(self._pending, type=pa.large_string()))
        self._starts.append(self._pending_start)
        self._pending = []

    def raw(self, i: int) -> str:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self._pending and i >= self._pending_start:
            return self._pending[i - self._pending_start]
        c = bisect.bisect_right(self._starts, i) - 1
        return self._arrays[c][i - self._starts[c]].as_py()

    def data(self, i: int) -> Any:
        return json.loads(self.raw(i))

    def source(self, i: int) -> str:
        return self.files[self.file_index[i]]

    def line(self, i: int) -> int:
        return self.lines[i]

    def row(self, i: int) -> Row:
        return Row(self.source(i), self.lines[i], self.data(i))

    def rows(self, start: int, stop: int) -> list[Row]:
        return [self.row(i) for i in range(max(0, start), min(stop, len(self)))]

    def iter_raw(self) -> Iterator[tuple[int, str]]:
        """(index, JSON text) in order, a chunk at a time (fast sequential pass)."""
        i = 0
        for arr in self._arrays:
            for value in arr.to_pylist():
                yield i, value
                i += 1
        for value in self._pending:
            yield i, value
            i += 1

    def to_arrow(self):
        """A pyarrow Table (source, line, json) for tools that want columns, e.g. ``datasets.Dataset(table)``."""
        import pyarrow as pa

        self.seal()
        text = pa.chunked_array(self._arrays, type=pa.large_string()) if self._arrays else pa.array([], pa.large_string())
        return pa.table({
            "source": pa.array([self.files[i] for i in self.file_index], pa.string()),
            "line": pa.array(self.lines, pa.int64()),
            "json": text,
        })

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays) + sum(len(s) for s in self._pending) + len(self) * 12
