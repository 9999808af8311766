"""Token counts for every row of a scan, optionally computed while the scan is still reading.

Counting is Python-heavy once ``piececount`` takes the tokenizer's place, so on a machine with two
or more cores a big check hands chunks to one worker *process* (a thread would wait on the GIL):
during a scan every chunk goes there (``scan(on_examples=checker.feed)``) while the scan parses
JSON; after a scan, this process and the worker take chunks in turn. Identical rows are counted
once. A worker that cannot start or dies mid-way costs time, not results: its chunks are counted
here.

If the template or token-count shortcut is ever found to disagree with ``render_example`` (see
``fastrender``), every count is recomputed the slow, exact way, so a result is never a mix of the two.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from studio.core.datasets.fastrender import ChatRenderer, TokenCounts, token_counts
from studio.core.datasets.formats import Example

Outcome = TokenCounts | str   # counts, or why the row cannot be rendered
Item = tuple[int, Example]
MAX_QUEUED_CHUNKS = 3
MAX_REMOTE_CHUNKS = 40        # chunks (~1 MB pickled each) waiting while the worker starts (~2-3 s)
PARALLEL_MIN_ROWS = 10_000    # below this a worker's start-up (~2 s) costs more than it saves
PARALLEL_MIN_BYTES = 5_000_000


def example_key(ex: Example) -> int:
    """Same value as the scan's ``features.exact`` for this row."""
    return hash(ex.messages) if ex.text is None else hash(("text", ex.text))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worth_a_process(*, rows: int | None = None, paths: Iterable[str | os.PathLike] = ()) -> bool:
    """Whether a check this big (``rows`` read, or files of this size) gains from a worker process here."""
    if usable_cores() < 2:
        return False
    nbytes = 0
    for p in paths:
        with contextlib.suppress(OSError):
            nbytes += os.path.getsize(p)
    return (rows or 0) >= PARALLEL_MIN_ROWS or nbytes >= PARALLEL_MIN_BYTES


# -- the worker process ------------------------------------------------------------------------
_WORKER: dict = {}


def _worker_init(source: str | tuple[str, bool], max_len: int) -> None:
    """``source``: a pickled tokenizer's file, or (model folder, trust_remote_code) to load it here."""
    if isinstance(source, tuple):
        from studio.core.datasets.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(source[0], trust_remote_code=source[1])
    else:
        with open(source, "rb") as fh:
            tokenizer = pickle.load(fh)
    renderer = ChatRenderer(tokenizer)
    _WORKER.update(tokenizer=tokenizer, renderer=renderer, max_len=max_len,
                   start=(renderer.shortcut, renderer.pieces is not None))


def _worker_ready() -> bool:
    return bool(_WORKER)


def _worker_count(payload: bytes) -> bytes:
    """One chunk: pickled (messages, text) pairs in, pickled counts (plain tuples) out — compact
    both ways, so the scanning process spends little time on the hand-over."""
    renderer: ChatRenderer = _WORKER["renderer"]
    by_key: dict[int, Outcome] = _WORKER.setdefault("by_key", {})
    examples = [Example(messages=m, text=t) for m, t in pickle.loads(payload)]
    keys = [example_key(ex) for ex in examples]
    todo = {k: ex for k, ex in zip(keys, examples, strict=True) if k not in by_key}
    if todo:
        got = _outcomes(list(todo.values()), _WORKER["tokenizer"], _WORKER["max_len"], renderer)
        by_key.update(zip(todo, got, strict=True))
    plain = [o if isinstance(o, str) else (o.full_length, o.trained_full, o.trained_kept, o.capped, o.markers)
             for o in map(by_key.get, keys)]
    # Whether a shortcut was caught disagreeing with render_example in this process (then every
    # count must be redone the exact way, those of earlier chunks too).
    disagreed = (renderer.shortcut, renderer.pieces is not None) != _WORKER["start"]
    return pickle.dumps((plain, disagreed), protocol=pickle.HIGHEST_PROTOCOL)


def _payload(items: list[Item]) -> bytes:
    return pickle.dumps([(ex.messages, ex.text) for _, ex in items], protocol=pickle.HIGHEST_PROTOCOL)


def _outcomes(examples: list[Example], tokenizer, max_len: int, renderer: ChatRenderer) -> list[Outcome]:
    errors: dict[int, str] = {}

    def on_error(k: int, err: Exception) -> None:
        errors[k] = str(err)[:160] or type(err).__name__

    counts = token_counts(examples, tokenizer, max_len, renderer=renderer, on_error=on_error)
    return [errors.get(k, "rendering failed") if c is None else c for k, c in enumerate(counts)]


class _Remote:
    """One spawned worker process holding its own copy of the tokenizer."""

    def __init__(self, tokenizer, source: tuple[str, bool] | None, max_len: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._tokenizer_file = None
        if tokenizer is not None:
            # Through a file: as an initializer argument it would be written into the start-up
            # pipe, and the spawning thread would wait seconds for the new process to read it.
            fd, self._tokenizer_file = tempfile.mkstemp(prefix="studio-tokenizer-", suffix=".pkl")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(tokenizer, fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init, initargs=(self._tokenizer_file or source, max_len))
        self.pool.submit(_worker_ready)  # start it now: it boots while the first chunks are counted here
        self._room = threading.Condition()
        self._in_flight = 0

    def submit(self, payload: bytes, *, limit: int, block: bool) -> Future | None:
        """Queue a chunk unless ``limit`` chunks are already waiting (then wait, or give up)."""
        with self._room:
            while self._in_flight >= limit:
                if not block:
                    return None
                self._room.wait()
            self._in_flight += 1
        try:
            fut = self.pool.submit(_worker_count, payload)
        except Exception:
            self._done(None)
            return None
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _fut) -> None:
        with self._room:
            self._in_flight -= 1
            self._room.notify_all()

    def close(self) -> None:
        # Stopping must not wait for chunks in flight: end the process itself.
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            with contextlib.suppress(Exception):
                proc.terminate()
        if self._tokenizer_file:
            with contextlib.suppress(OSError):
                os.unlink(self._tokenizer_file)


class TokenChecker:
    """Counts for the rows of a scan. Give it the tokenizer, or ``source`` = (model folder,
    trust_remote_code) with ``parallel``: then only the worker loads it (importing the ML stack
    takes seconds, which would otherwise stall the scan), and this process loads it only if it must
    count rows itself."""

    def __init__(self, tokenizer, max_len: int, batch: int = 2000, *, parallel: bool = False,
                 source: tuple[str, bool] | None = None) -> None:
        if tokenizer is None and source is None:
            raise ValueError("TokenChecker needs a tokenizer or its source folder")
        self._tokenizer = tokenizer
        self._source = source
        self.max_len = max_len
        self.batch = max(1, batch)
        self._renderer: ChatRenderer | None = None
        self._shortcuts_at_start = (True, True)
        self._disagreed = False
        self.by_key: dict[int, Outcome] = {}
        self.results: dict[int, Outcome] = {}
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(MAX_QUEUED_CHUNKS)
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []
        self._remote: _Remote | None = None
        self._remote_jobs: list[tuple[Future, bytes, list[int]]] = []
        self.worker_used = False
        if parallel:
            try:
                self._remote = _Remote(tokenizer, source, max_len)
            except Exception:
                self._remote = None   # no worker (pickling, spawning): count here

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from studio.core.datasets.tokenizer import load_tokenizer

            folder, trust = self._source  # type: ignore[misc]
            self._tokenizer = load_tokenizer(folder, trust_remote_code=trust)
        return self._tokenizer

    @property
    def renderer(self) -> ChatRenderer:
        if self._renderer is None:
            self._renderer = ChatRenderer(self.tokenizer)
            self._shortcuts_at_start = self._shortcuts()
        return self._renderer

    def _shortcuts(self) -> tuple[bool, bool]:
        if self._renderer is None:
            return self._shortcuts_at_start
        return self._renderer.shortcut, self._renderer.pieces is not None

    # -- while scanning -------------------------------------------------------------------
    def feed(self, items: list[Item]) -> None:
        """``scan(on_examples=...)`` hook: counts these rows in the worker process, or in a
        background thread. Blocks while enough chunks are already waiting, so a fast reader cannot
        pile up every row in memory."""
        if self._remote is not None and self._send(list(items), block=True):
            return
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
        self._collect_remote()

    # -- the work ------------------------------------------------------------------------
    def _select(self, items: list[Item]) -> tuple[list[Item], list[tuple[int, int]]]:
        """Rows still to count (one per distinct content); the rest are answered from known rows."""
        todo: list[Item] = []
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
        return todo, dupes

    def _store(self, todo: list[Item], outcomes: list[Outcome], dupes: list[tuple[int, int]]) -> None:
        with self._lock:
            for (i, ex), got in zip(todo, outcomes, strict=True):
                self.by_key[example_key(ex)] = got
                self.results[i] = got
            for i, key in dupes:
                self.results[i] = self.by_key[key]

    def _count(self, items: list[Item]) -> None:
        todo, dupes = self._select(items)
        outcomes = _outcomes([ex for _, ex in todo], self.tokenizer, self.max_len, self.renderer) if todo else []
        self._store(todo, outcomes, dupes)

    def _send(self, items: list[Item], *, block: bool) -> bool:
        """Give these rows to the worker; False when it has no room (or is gone): count them here."""
        if self._remote is None:
            return False
        if not items:
            return True
        # While scanning, the worker may fall behind as it starts; after it, it gets a share, not a backlog.
        limit = MAX_REMOTE_CHUNKS if block else 2
        payload = _payload(items)
        fut = self._remote.submit(payload, limit=limit, block=block)
        if fut is None:
            return False
        self._remote_jobs.append((fut, payload, [i for i, _ in items]))
        return True

    def _collect_remote(self) -> None:
        jobs, self._remote_jobs = self._remote_jobs, []
        for fut, payload, indices in jobs:
            try:
                plain, disagreed = pickle.loads(fut.result())
                outcomes: list[Outcome] = [o if isinstance(o, str) else TokenCounts(*o) for o in plain]
                self.worker_used = True
            except Exception:
                # The worker died or could not start: count its chunks here, and stop sending it more.
                if self._remote is not None:
                    self._remote.close()
                    self._remote = None
                examples = [Example(messages=m, text=t) for m, t in pickle.loads(payload)]
                self._count(list(zip(indices, examples, strict=True)))
                continue
            self._disagreed = self._disagreed or disagreed
            self.results.update(zip(indices, outcomes, strict=True))

    def _pass(self, result, should_stop, on_progress) -> bool:
        total = len(result)
        buf: list[Item] = []
        for i, ex in result.iter_examples(skip=self.results):
            if ex is None:
                continue
            buf.append((i, ex))
            if len(buf) >= self.batch:
                # The worker takes a chunk whenever it has room; this process counts the others.
                if not self._send(buf, block=False):
                    self._count(buf)
                buf = []
                if on_progress:
                    on_progress(i + 1, total)
                if should_stop and should_stop():
                    return True
        if buf:
            self._count(buf)
        self._collect_remote()
        return False

    def run(self, result, should_stop: Callable[[], bool] | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> tuple[dict[int, Outcome], bool]:
        """Counts for every row of the ScanResult that has an Example (rows already fed are
        reused). Returns (row index → outcome, stopped)."""
        self._finish_feeding()
        stopped = self._pass(result, should_stop, on_progress)
        if self._remote is not None:
            self._remote.close()
            self._remote = None
        if not stopped and (self._disagreed or self._shortcuts_at_start != self._shortcuts()):
            # A shortcut was caught disagreeing with render_example (here or in the worker): redo
            # everything the exact way.
            self.renderer.shortcut = False
            self.renderer.pieces = None
            self.results.clear()
            self.by_key.clear()
            self._disagreed = False
            self._shortcuts_at_start = self._shortcuts()
            stopped = self._pass(result, should_stop, on_progress)
        if on_progress and not stopped:
            on_progress(len(result), len(result))
        return self.results, stopped

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._remote is not None:
            self._remote.close()
            self._remote = None
