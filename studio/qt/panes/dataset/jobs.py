"""The Dataset pane's slow work, run in a TaskRunner worker: read, check, tokenize, render, clean.

Everything here is Qt-free and takes a ``TaskState``-like object (``progress``, ``partial``,
``should_stop``), so the pane only wires results to views. Reading streams its first rows to the
table through ``partial`` while the rest loads; token checks follow as a second phase, so a
person sees rows and read-level findings long before every row is tokenized.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from studio.core.config import RunConfig
from studio.core.datasets.load import Row
from studio.core.datasets.scan import ScanResult, scan
from studio.core.datasets.stopcheck import has_chat_rows, model_findings
from studio.core.datasets.validate import Report, validate
from studio.core.errors import StudioError

# Rows handed to the table while a file is still being read; after that the table reads the scan's
# compact row store on demand, so this only bounds what is copied during loading.
STREAM_ROWS = 5000


class Progress(Protocol):
    def progress(self, frac: float, message: str = "") -> None: ...
    def partial(self, value: Any) -> None: ...
    def should_stop(self) -> bool: ...


@dataclass(frozen=True)
class LoadSpec:
    """The part of the run config the Dataset pane's work depends on."""

    train: tuple[str, ...]
    eval: tuple[str, ...]
    column_map: tuple[tuple[str, str], ...]
    model_path: str
    trust_remote_code: bool
    chat_template: str  # the run config's choice for a model without its own ("" = the model's own)
    max_len: int
    eval_ratio: float
    split_seed: int

    @classmethod
    def from_config(cls, cfg: RunConfig) -> LoadSpec:
        d = cfg.dataset
        return cls(
            train=tuple(d.train), eval=tuple(d.eval), column_map=tuple(sorted(d.column_map.items())),
            model_path=cfg.model.path, trust_remote_code=cfg.model.trust_remote_code,
            chat_template=cfg.model.chat_template, max_len=cfg.training.max_seq_len, eval_ratio=d.eval_ratio, split_seed=d.split_seed,
        )

    @property
    def read_key(self) -> tuple:
        """Change any of these and the files must be read again."""
        return self.train, self.eval, self.column_map

    @property
    def check_key(self) -> tuple:
        """Change any of these and only the checks run again, on rows already read."""
        return (self.model_path, self.trust_remote_code, self.chat_template, self.max_len, self.eval_ratio,
                self.split_seed)

    @property
    def columns(self) -> dict[str, str]:
        return dict(self.column_map)


@dataclass(frozen=True)
class RowsRead:
    """A chunk of the first rows, sent while the file is still being read."""

    rows: list[Row]
    total: int


@dataclass(frozen=True)
class Loaded:
    spec: LoadSpec
    result: ScanResult
    eval_result: ScanResult | None
    report: Report
    tokens_note: str = ""     # why token checks did not run (no model yet …); empty when they did


class TokenizerCache:
    """One loaded tokenizer per (folder, user), kept between jobs.

    The validator's thread and the preview's thread each get their own instance: a fast tokenizer
    may change its truncation settings while it encodes, and two threads sharing one would trip
    over each other.
    """

    def __init__(self) -> None:
        # Loading is serialised too: transformers' lazy imports are not safe to race from two threads.
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, bool, str], Any] = {}

    def get(self, folder: str, user: str, trust_remote_code: bool = False):
        key = (folder, trust_remote_code, user)
        with self._lock:
            tok = self._loaded.get(key)
            if tok is None:
                from studio.core.datasets.tokenizer import load_tokenizer

                tok = self._loaded[key] = load_tokenizer(folder, trust_remote_code=trust_remote_code)
        return tok

    def forget(self) -> None:
        with self._lock:
            self._loaded.clear()


class _EarlyTokens:
    """For big files, token counting that starts while the files are still being read: the scan
    hands each chunk of rows to a worker process, which loads the model's tokenizer itself (this
    process would stall the scan for seconds importing the ML stack), so the complete report
    follows the last row closely instead of after a second pass. Small files keep the simple
    order: read, then count. If the tokenizer cannot load, the checks after the scan say why."""

    def __init__(self, spec: LoadSpec) -> None:
        from studio.core.datasets.tokencheck import worth_a_process

        self.spec = spec
        self.checker = None
        from studio.core.datasets.tokenizer import has_tokenizer

        self._wanted = worth_a_process(paths=spec.train) and has_tokenizer(spec.model_path)

    def feed(self, items: list) -> None:
        if not self._wanted:
            return
        if self.checker is None:
            from studio.core.datasets.tokencheck import TokenChecker

            self.checker = TokenChecker(None, self.spec.max_len, parallel=True,
                                        source=(self.spec.model_path, self.spec.trust_remote_code))
        self.checker.feed(items)

    def close(self) -> None:
        if self.checker is not None:
            self.checker.close()


def read(state: Progress, spec: LoadSpec, tokenizers: TokenizerCache) -> Loaded | None:
    """Read the training (and eval) files, check them, then count tokens. None when stopped."""
    total = shown = 0

    def on_rows(rows: list[Row]) -> None:
        nonlocal total, shown
        total += len(rows)
        if shown < STREAM_ROWS:
            take = rows[: STREAM_ROWS - shown]
            shown += len(take)
            state.partial(RowsRead(take, total))
        state.progress(-1.0, f"Reading… {total:,} rows")

    state.progress(-1.0, "Reading…")
    early = _EarlyTokens(spec)
    try:
        result = scan(spec.train, on_rows=on_rows, should_stop=state.should_stop, column_map=spec.columns or None,
                      on_examples=early.feed)
        if state.should_stop():
            return None
        eval_result = scan(spec.eval, column_map=spec.columns or None, should_stop=state.should_stop) if spec.eval else None
        if state.should_stop():
            return None
        quick = validate(result, eval_result=eval_result, eval_ratio=None if eval_result else spec.eval_ratio,
                         split_seed=spec.split_seed)
        first = Loaded(spec, result, eval_result, quick, tokens_note="Counting tokens…")
        state.partial(first)
        return check(state, first, spec, tokenizers, token_checker=early.checker)
    finally:
        early.close()


def check(state: Progress, loaded: Loaded, spec: LoadSpec, tokenizers: TokenizerCache,
          token_checker=None) -> Loaded | None:
    """Every check on rows already read, token checks included when the model's tokenizer loads
    (``token_checker``: one that was fed while the rows were read)."""
    result = loaded.result
    if not len(result):
        report = validate(result, eval_result=loaded.eval_result,
                          eval_ratio=None if loaded.eval_result else spec.eval_ratio, split_seed=spec.split_seed)
        return replace(loaded, spec=spec, report=report, tokens_note="")
    tokenizer, note, found = None, "", []
    if spec.model_path:
        state.progress(-1.0, "Loading the model's tokenizer…")
        try:
            # A copy: the chat format chosen for this run must not stick to the cached tokenizer.
            tokenizer = copy.copy(tokenizers.get(spec.model_path, "check", spec.trust_remote_code))
            found = model_findings(tokenizer, spec.model_path, spec.chat_template)
        except StudioError as err:
            note = f"Token checks are off: {err.message}" + (f" ({err.path})" if err.path else "")
        if spec.chat_template:
            token_checker = None  # the early worker counts with the model's own format, not the chosen one
        elif token_checker is not None:
            tokenizer = None  # the early worker has the counts already
        if any(f.code == "model.no_chat_template" for f in found):
            tokenizer, token_checker = None, None
            note = "Token checks wait for a chat format: this model has none; pick one in Configure (Chat format)."

    def on_progress(done: int, total: int) -> None:
        state.progress(done / max(1, total), f"Counting tokens… {done:,} of {total:,} rows")

    def run_checks(checker):
        checking = checker is not None or tokenizer is not None
        return validate(
            result, eval_result=loaded.eval_result, eval_ratio=None if loaded.eval_result else spec.eval_ratio,
            split_seed=spec.split_seed, tokenizer=tokenizer, max_len=spec.max_len if checking else None,
            should_stop=state.should_stop, on_progress=on_progress, token_checker=checker,
        )

    try:
        report = run_checks(token_checker)
    except StudioError as err:   # the early checker's tokenizer failed to load here too
        note = f"Token checks are off: {err.message}" + (f" ({err.path})" if err.path else "")
        report = run_checks(None)
    if state.should_stop():
        return None
    if found and has_chat_rows(report):
        report.findings[:0] = found
    return replace(loaded, spec=spec, report=report, tokens_note=note)


def view_row(state: Progress, example, spec: LoadSpec, tokenizers: TokenizerCache):
    """``preview.view_row`` with the configured model's tokenizer (loaded once, in this thread)."""
    from studio.core.datasets.preview import view_row as render

    tokenizer = tokenizers.get(spec.model_path, "preview", spec.trust_remote_code)
    return render(example, tokenizer, spec.max_len)


@dataclass(frozen=True)
class Cleaned:
    path: str
    kept: int
    dropped: dict[str, int]
    stripped: int
    original_fingerprint: str


def clean(state: Progress, result: ScanResult, report: Report, actions: list[str]) -> Cleaned:
    """Write the cleaned copy beside the original; the original's bytes are read, never written."""
    from studio.core.datasets.clean import fingerprint, plan_clean, write_cleaned_copy

    state.progress(-1.0, "Writing the cleaned copy…")
    plan, _lines = plan_clean(result, actions, report)
    path = write_cleaned_copy(result, actions, report=report)
    readable = [f.path for f in result.files if not f.fatal]
    return Cleaned(str(path), len(plan.keep), dict(plan.dropped), plan.stripped, fingerprint(readable))


def file_format(formats: Mapping[str, int]) -> str:
    """What to call a file whose rows have these formats: one name, ``mixed`` or ``unknown``."""
    known = [f for f, n in formats.items() if n and f != "unknown"]
    if len(known) > 1:
        return "mixed"
    return known[0] if known else "unknown"
