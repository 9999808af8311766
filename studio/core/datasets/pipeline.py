"""The dataset check, end to end: read → scan → check → (tokens) → report, for the CLI and the Dataset pane.

One pipeline so ``studio validate`` and the Dataset pane cannot disagree: both scan the training and
eval files with the same column mapping, check leakage against the eval files or the seeded split,
count tokens with the rendering training uses, and put the model's chat-format findings first
when the data has chat rows. The pane runs ``read`` (rows stream to the table through
``state.partial``; a quick report without token counts follows, then the complete one) and
``check`` (only the checks again, on rows already read); the CLI runs ``check_files``. Everything
takes a ``TaskProgress`` state (``progress``, ``partial``, ``should_stop``) and stays Qt-free.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio.core.config import RunConfig
from studio.core.datasets.findings import Finding
from studio.core.datasets.load import Row
from studio.core.datasets.scan import OnExamples, OnRows, ScanResult, scan
from studio.core.datasets.stopcheck import has_chat_rows, model_findings
from studio.core.datasets.validate import Report, validate
from studio.core.errors import StudioError
from studio.core.progress import TaskProgress

# Rows handed to the table while a file is still being read; after that the table reads the scan's
# compact row store on demand, so this only bounds what is copied during loading.
STREAM_ROWS = 5000


class _Headless:
    """The state of a check nobody watches (the CLI): no progress, never stopped."""

    def progress(self, frac: float, message: str = "") -> None:
        pass

    def partial(self, value: Any) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@dataclass(frozen=True)
class LoadSpec:
    """The part of the run config the dataset check depends on."""

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
            chat_template=cfg.model.chat_template, max_len=cfg.training.max_seq_len, eval_ratio=d.eval_ratio,
            split_seed=d.split_seed,
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
    """Token counting that starts while the files are still being read, so the complete report
    follows the last row closely instead of after a second pass.

    With a loaded ``tokenizer`` (the CLI) the scan always feeds it, to a worker process when the
    files are big enough to be worth one. With only the spec's model folder (the pane) it does so
    only for big files, and the worker loads the tokenizer itself: this process would stall the
    scan for seconds importing the ML stack. Small files then keep the simple order: read, then
    count. If the tokenizer cannot load, the checks after the scan say why."""

    def __init__(self, spec: LoadSpec, tokenizer=None) -> None:
        from studio.core.datasets.tokencheck import worth_a_process
        from studio.core.datasets.tokenizer import has_tokenizer

        self.spec = spec
        self.tokenizer = tokenizer
        self.checker = None
        self._parallel = worth_a_process(paths=spec.train)
        usable = tokenizer is not None or (
            self._parallel and bool(spec.model_path) and has_tokenizer(spec.model_path))
        self._wanted = bool(spec.max_len) and usable

    def feed(self, items: list) -> None:
        if not self._wanted:
            return
        if self.checker is None:
            from studio.core.datasets.tokencheck import TokenChecker

            source = None if self.tokenizer is not None else (self.spec.model_path, self.spec.trust_remote_code)
            self.checker = TokenChecker(self.tokenizer, self.spec.max_len, parallel=self._parallel, source=source)
        self.checker.feed(items)

    def close(self) -> None:
        if self.checker is not None:
            self.checker.close()


def scan_files(state: TaskProgress, spec: LoadSpec, *, on_rows: OnRows | None = None,
               on_examples: OnExamples | None = None) -> tuple[ScanResult, ScanResult | None]:
    """The training files (streamed through ``on_rows``/``on_examples``), then the eval files unless
    ``state`` asked to stop meanwhile (callers ask it again before using the results)."""
    columns = spec.columns or None
    result = scan(spec.train, on_rows=on_rows, should_stop=state.should_stop, column_map=columns,
                  on_examples=on_examples)
    if not spec.eval or state.should_stop():
        return result, None
    return result, scan(spec.eval, column_map=columns, should_stop=state.should_stop)


def report(state: TaskProgress, spec: LoadSpec, result: ScanResult, eval_result: ScanResult | None, *,
           tokenizer=None, token_checker=None, found: Sequence[Finding] = ()) -> Report:
    """Every check on rows already read: leakage against the eval files or else the seeded split,
    token checks when given a tokenizer or a checker fed during the scan, and the model's
    chat-format findings (``found``) first when the rows include chat rows."""

    def on_progress(done: int, total: int) -> None:
        state.progress(done / max(1, total), f"Counting tokens… {done:,} of {total:,} rows")

    counting = tokenizer is not None or token_checker is not None
    checked = validate(
        result, eval_result=eval_result, eval_ratio=None if eval_result else spec.eval_ratio,
        split_seed=spec.split_seed, tokenizer=tokenizer, max_len=spec.max_len if counting else None,
        should_stop=state.should_stop, on_progress=on_progress, token_checker=token_checker,
    )
    if found and has_chat_rows(checked):
        checked.findings[:0] = found   # only chat rows need a chat format
    return checked


def _no_chat_format(found: Iterable[Finding]) -> bool:
    return any(f.code == "model.no_chat_template" for f in found)


def read(state: TaskProgress, spec: LoadSpec, tokenizers: TokenizerCache) -> Loaded | None:
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
        result, eval_result = scan_files(state, spec, on_rows=on_rows, on_examples=early.feed)
        if state.should_stop():
            return None
        first = Loaded(spec, result, eval_result, report(state, spec, result, eval_result),
                       tokens_note="Counting tokens…")
        state.partial(first)
        return check(state, first, spec, tokenizers, token_checker=early.checker)
    finally:
        early.close()


def check(state: TaskProgress, loaded: Loaded, spec: LoadSpec, tokenizers: TokenizerCache,
          token_checker=None) -> Loaded | None:
    """Every check on rows already read, token checks included when the model's tokenizer loads
    (``token_checker``: one that was fed while the rows were read)."""
    result = loaded.result
    if not len(result):
        return replace(loaded, spec=spec, report=report(state, spec, result, loaded.eval_result), tokens_note="")
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
        if _no_chat_format(found):
            tokenizer, token_checker = None, None
            note = "Token checks wait for a chat format: this model has none; pick one in Configure (Chat format)."
    try:
        checked = report(state, spec, result, loaded.eval_result, tokenizer=tokenizer, token_checker=token_checker,
                         found=found)
    except StudioError as err:   # the early checker's tokenizer failed to load here too
        note = f"Token checks are off: {err.message}" + (f" ({err.path})" if err.path else "")
        checked = report(state, spec, result, loaded.eval_result, found=found)
    if state.should_stop():
        return None
    return replace(loaded, spec=spec, report=checked, tokens_note=note)


def check_files(
    paths: str | Path | Iterable[str | Path],
    *,
    eval_paths: Iterable[str | Path] | None = None,
    tokenizer=None,
    max_len: int | None = None,
    column_map: Mapping[str, str] | None = None,
    eval_ratio: float | None = None,
    split_seed: int = 42,
    model_dir: str | Path | None = None,
    chat_template: str = "",
) -> Report:
    """Scan and check in one call (``studio validate``; tests), through the pane's pipeline.

    With ``model_dir`` the tokenizer's chat format is checked too (``chat_template`` is the chosen
    format for a model without its own); a model with no chat format holds the token checks, as
    in the pane. Unlike the pane, a tokenizer that cannot load is the caller's error to raise.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    spec = LoadSpec(
        train=tuple(map(str, paths)), eval=tuple(map(str, eval_paths or ())),
        column_map=tuple(sorted((column_map or {}).items())), model_path=str(model_dir or ""),
        trust_remote_code=False, chat_template=chat_template, max_len=max_len or 0, eval_ratio=eval_ratio or 0.0,
        split_seed=split_seed,
    )
    found = model_findings(tokenizer, model_dir, chat_template) if tokenizer is not None and model_dir else []
    if _no_chat_format(found):
        tokenizer = None   # chat rows cannot be rendered until a format is chosen; the finding says so
    state = _Headless()
    early = _EarlyTokens(spec, tokenizer) if tokenizer is not None else None
    try:
        result, eval_result = scan_files(state, spec, on_examples=early.feed if early else None)
        checker = early.checker if early else None
        return report(state, spec, result, eval_result, tokenizer=None if checker else tokenizer,
                      token_checker=checker, found=found)
    finally:
        if early is not None:
            early.close()
