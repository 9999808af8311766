"""A dataset's token lengths, as the memory estimate needs them: the widest batch the trainer forms.

The trainer batches with ``group_by_length`` (``hf_trainer.EpochSeededLengthSampler``): each batch
holds rows of similar length and the batch with the longest row comes first. ``PadCollator`` pads a
batch to its longest row, so the widest batch is ``batch_size`` rows x the longest row's length
(truncated to ``max_seq_len``). With packing, rows are best-fit packed up to ``max_seq_len`` first,
so a batch row is as long as ``max_seq_len`` whenever the dataset holds that many tokens.

The lengths are the dataset check's token counts (``datasets.tokencheck.TokenChecker``: the same
chat-template rendering and tokenizer as training), never a second tokenization of another kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.config import PREFERENCE_OBJECTIVES, RunConfig


@dataclass(frozen=True)
class DatasetLengths:
    """Token lengths of the training rows.

    ``final`` says the lengths are already the rows the trainer batches (truncated and, with
    packing, packed: what the engine builds); otherwise they are each example's full rendered
    length, before truncation (a very long row's count may be a lower bound, which is still above
    any max_seq_len).
    """

    lengths: tuple[int, ...]
    final: bool = False
    source: str = ""  # what the lengths were counted from, for messages

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)

    def plan_fields(self, cfg: RunConfig) -> dict[str, Any]:
        """The Plan fields (data_width, data_rows, packing) these lengths give for ``cfg``."""
        if self.final:
            return {"data_width": self.longest, "data_rows": len(self.lengths), "packing": False}
        max_len = cfg.training.max_seq_len
        if cfg.training.packing:
            total = sum(min(n, max_len) for n in self.lengths)
            return {"data_width": total, "data_rows": len(self.lengths), "packing": True}
        return {"data_width": self.longest, "data_rows": len(self.lengths), "packing": False}


def widest_batch(lengths: DatasetLengths, cfg: RunConfig) -> tuple[int, int]:
    """(rows, tokens per row) of the widest batch the trainer forms for ``cfg`` on these lengths."""
    from studio.core.memory.plan import Plan

    fields = lengths.plan_fields(cfg)
    plan = Plan(device="cpu", method=cfg.method, dtype="float32", batch=cfg.training.batch_size,
                seq=cfg.training.max_seq_len, grad_ckpt=False, optimizer="adamw", targets=(), r=1, dropout=0.0,
                dora=False, double_quant=False, compute_dtype="float32", **fields)
    return plan.rows, plan.width


def train_row_indices(n: int, cfg: RunConfig) -> list[int]:
    """The rows of the train files the trainer trains on: all of them, or those the seeded split keeps."""
    from studio.core.datasets.split import split_indices

    if cfg.dataset.eval or cfg.dataset.eval_ratio <= 0:
        return list(range(n))
    train, _held = split_indices(n, cfg.dataset.eval_ratio, cfg.dataset.split_seed)
    return train


def count_lengths(cfg: RunConfig, tokenizer=None, *, files: Iterable[str | Path] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> DatasetLengths | None:
    """Count the training rows' tokens with the dataset check's counter; None when stopped.

    ``files`` replaces the config's training files (``studio estimate --dataset``). Rows that
    cannot be rendered are left out (the dataset check reports them; training refuses them).
    """
    from studio.core.datasets.fastrender import TokenCounts
    from studio.core.datasets.scan import scan
    from studio.core.datasets.tokencheck import TokenChecker, worth_a_process
    from studio.core.errors import StudioError

    paths = [str(f) for f in (files if files is not None else cfg.dataset.train)]
    if not paths:
        raise StudioError("No training dataset is selected: give a dataset to estimate from.")
    if tokenizer is None:
        from studio.core.datasets.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(cfg.model.path)
    max_len = cfg.training.max_seq_len
    if cfg.objective in PREFERENCE_OBJECTIVES:
        return _pair_lengths(cfg, tokenizer, paths, files is None, should_stop)
    checker = TokenChecker(tokenizer, max_len, parallel=worth_a_process(paths=paths))
    try:
        result = scan(paths, column_map=cfg.dataset.column_map or None, on_examples=checker.feed,
                      should_stop=should_stop)
        outcomes, stopped = checker.run(result, should_stop)
    finally:
        checker.close()
    if stopped or result.stopped:
        return None
    keep = train_row_indices(len(result), cfg) if files is None else range(len(result))
    lengths = []
    for i in keep:
        got = outcomes.get(i)
        if isinstance(got, TokenCounts) and got.trained_kept > 0:  # rows without answer tokens are skipped
            lengths.append(got.full_length)
    return DatasetLengths(tuple(lengths), final=False, source=", ".join(Path(p).name for p in paths))


def _pair_lengths(cfg: RunConfig, tokenizer, paths: list[str], split: bool,
                  should_stop: Callable[[], bool] | None) -> DatasetLengths | None:
    """A preference dataset's rows as the trainers batch them: prompt + the longer answer of each pair
    (both answers are padded to it), counted by the dataset check's side counter."""
    from studio.core.datasets.paircheck import pair_lengths, side_checker
    from studio.core.datasets.scan import scan

    result = scan(paths, column_map=cfg.dataset.column_map or None, should_stop=should_stop)
    if result.stopped:
        return None
    per_pair, stopped = pair_lengths(result, side_checker(tokenizer, cfg.training.max_seq_len, len(result)),
                                     should_stop)
    if stopped:
        return None
    keep = train_row_indices(len(result), cfg) if split else range(len(result))
    lengths = tuple(per_pair[i] for i in keep if i in per_pair)
    return DatasetLengths(lengths, final=False, source=", ".join(Path(p).name for p in paths))
