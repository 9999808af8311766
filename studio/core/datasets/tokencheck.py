"""Token counts for every row of a scan, optionally computed while the scan is still reading.

The Rust tokenizer releases the GIL, so feeding it chunks from the scan's ``on_rows`` lets both
cores work while Python parses JSON (``scan(on_examples=checker.feed)``). Identical rows are tokenized once.
If the template shortcut is ever found to disagree with ``render_example`` (see ``fastrender``),
every count is recomputed the slow, exact way, so a result is never a mix of the two.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from studio.core.datasets.fastrender import ChatRenderer, TokenCounts, token_counts
from studio.core.datasets.formats import Example

Outcome = TokenCounts | str   # counts, or why the row cannot be rendered
MAX_QUEUED_CHUNKS = 3


def example_key(ex: Example) -> int:
    """Same value as the scan's ``features.exact`` for this row."""
    return hash(ex.messages) if ex.text is None else hash(("text", ex.text))


class TokenChecker:
    def __init__(self, tokenizer, max_len: int, batch: int = 2000) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.batch = max(1, batch)
        self.renderer = ChatRenderer(tokenizer)
        self._shortcut_at_start = self.renderer.shortcut
        self.by_key: dict[int, Outcome] = {}
        self.results: dict[int, Outcome] = {}
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(MAX_QUEUED_CHUNKS)
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []

    # -- while scanning -------------------------------------------------------------------
    def feed(self, items: list[tuple[int, Example]]) -> None:
        """``scan(on_examples=...)`` hook: counts these rows in a background thread. Blocks while
        a few chunks are already waiting, so a fast reader cannot pile up every row in memory."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-check")
        self._slots.acquire()
        fut = self._executor.submit(self._count, list(items))
        fut.add_done_callback(lambda _f: self._slots.release())
        self._futures.append(fut)

    def _finish_feeding(self) -> None:
        for fut in self._futures:
            fut.result()
        self._futures.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- the work ------------------------------------------------------------------------
    def _count(self, items: list[tuple[int, Example]]) -> None:
        todo: list[tuple[int, Example]] = []
        dupes: list[tuple[int, int]] = []
        keys_in_batch: set[int] = set()
        for i, ex in items:
            key = example_key(ex)
            with self._lock:
                known = self.by_key.get(key)
            if known is not None:
                self.results[i] = known
            elif key in keys_in_batch:
                dupes.append((i, key))
            else:
                keys_in_batch.add(key)
                todo.append((i, ex))
        errors: dict[int, str] = {}

        def on_error(k: int, err: Exception) -> None:
            errors[k] = str(err)[:160] or type(err).__name__

        counts = token_counts([ex for _, ex in todo], self.tokenizer, self.max_len, renderer=self.renderer,
                              on_error=on_error)
        with self._lock:
            for k, ((i, ex), c) in enumerate(zip(todo, counts, strict=True)):
                got: Outcome = errors.get(k, "rendering failed") if c is None else c
                self.by_key[example_key(ex)] = got
                self.results[i] = got
            for i, key in dupes:
                self.results[i] = self.by_key[key]

    def _pass(self, result, should_stop, on_progress) -> bool:
        total = len(result)
        buf: list[tuple[int, Example]] = []
        for i, ex in result.iter_examples(skip=self.results):
            if ex is None:
                continue
            buf.append((i, ex))
            if len(buf) >= self.batch:
                self._count(buf)
                buf = []
                if on_progress:
                    on_progress(i + 1, total)
                if should_stop and should_stop():
                    return True
        if buf:
            self._count(buf)
        return False

    def run(self, result, should_stop: Callable[[], bool] | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> tuple[dict[int, Outcome], bool]:
        """Counts for every row of the ScanResult that has an Example (rows already fed are
        reused). Returns (row index → outcome, stopped)."""
        self._finish_feeding()
        stopped = self._pass(result, should_stop, on_progress)
        if not stopped and self._shortcut_at_start and not self.renderer.shortcut:
            # The shortcut was caught disagreeing with render_example: redo everything the exact way.
            self.results.clear()
            self.by_key.clear()
            self._shortcut_at_start = False
            stopped = self._pass(result, should_stop, on_progress)
        if on_progress and not stopped:
            on_progress(len(result), len(result))
        return self.results, stopped

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
