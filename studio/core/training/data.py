"""Training features from dataset files: rows → Examples → tokens with the loss mask.

Kept apart from the engine so the CLI, the validator and tests can build exactly what the trainer
will see without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.config import RunConfig
from studio.core.datasets.formats import RowShapeError, to_example
from studio.core.datasets.load import Row, read_rows
from studio.core.datasets.render import IGNORE_INDEX, render_example
from studio.core.datasets.split import split_indices
from studio.core.datasets.textcheck import invalid_unicode_message, lone_surrogate
from studio.core.errors import StudioError


@dataclass
class Features:
    train: list[dict[str, list[int]]]
    eval: list[dict[str, list[int]]]
    dropped: int          # rows that would teach nothing after truncation
    truncated: int
    # Whether each eval feature is a chat (it has a prompt to answer): the end-of-run stop check uses those.
    eval_chat: list[bool] = field(default_factory=list)


def _rows(files: list[str]) -> list[Row]:
    rows: list[Row] = []
    for f in files:
        rows.extend(read_rows(Path(f)))
    return rows


def train_eval_rows(cfg: RunConfig, none_selected: str) -> tuple[list[Row], list[Row]]:
    """The rows the run trains and evaluates on: the eval files, or the held-out split the dataset
    check reports (``split_indices``); ``none_selected`` is what to say when there is no training file."""
    if not cfg.dataset.train:
        raise StudioError(none_selected)
    train_rows = _rows(cfg.dataset.train)
    if cfg.dataset.eval:
        return train_rows, _rows(cfg.dataset.eval)
    keep, held = split_indices(len(train_rows), cfg.dataset.eval_ratio, cfg.dataset.split_seed)
    return [train_rows[i] for i in keep], [train_rows[i] for i in held]


def build_features(cfg: RunConfig, tokenizer, log: Callable[[str], None] = lambda _m: None) -> Features:
    train_rows, eval_rows = train_eval_rows(cfg, "No training dataset is selected. Pick a dataset file first.")
    max_len = cfg.training.max_seq_len
    dropped = truncated = 0

    def featurize(rows: list[Row], chat: list[bool] | None = None) -> list[dict[str, list[int]]]:
        nonlocal dropped, truncated
        out = []
        for row in rows:
            try:
                example = to_example(row.data, column_map=cfg.dataset.column_map or None)
            except RowShapeError as err:
                raise StudioError(
                    f"{err}. Run the dataset check (Dataset pane or `studio validate`) to see every problem.",
                    path=row.source, line=row.line,
                ) from None
            # Refused like a malformed row (the trainer stops at the first bad row; the dataset
            # check lists them all): the tokenizer could not encode it and would fail with a TypeError.
            where = lone_surrogate(example)
            if where is not None:
                raise StudioError(
                    f"{invalid_unicode_message(where).capitalize()}. Run the dataset check (Dataset pane or "
                    "`studio validate`) to see every problem.", path=row.source, line=row.line,
                )
            rendered = render_example(example, tokenizer, max_len)
            truncated += rendered.truncated
            if rendered.trained_tokens == 0:
                dropped += 1
                continue
            out.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
            if chat is not None:
                chat.append(example.is_chat)
        return out

    train = featurize(train_rows)
    eval_chat: list[bool] = []
    evals = featurize(eval_rows, eval_chat)
    if dropped:
        log(f"{dropped} row(s) have no answer tokens left after truncation to {max_len} tokens and were skipped.")
    if truncated:
        log(f"{truncated} row(s) were truncated to {max_len} tokens.")
    if not train:
        raise StudioError(
            f"No training row has answer tokens within max_seq_len={max_len}. Raise max sequence length or shorten prompts."
        )
    if cfg.training.packing:
        before = len(train)
        train = pack(train, max_len)
        log(f"Packed {before} examples into {len(train)} rows of up to {max_len} tokens.")
    return Features(train=train, eval=evals, dropped=dropped, truncated=truncated, eval_chat=eval_chat)


def pack(features: list[dict[str, list[int]]], max_len: int) -> list[dict[str, list[int]]]:
    """Best-fit-decreasing packing of examples into rows of at most ``max_len`` tokens.

    Each packed row carries ``position_ids`` that restart at 0 for every example; transformers
    turns that into a block-diagonal attention mask (no attention across examples) when no
    attention_mask is passed, so packing changes speed, not what each example learns. The first
    label of every example is masked so no token is trained to predict across a boundary.
    """
    import bisect

    order = sorted(features, key=lambda f: len(f["input_ids"]), reverse=True)
    bins: list[dict[str, list[int]]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, bin index), kept sorted
    for f in order:
        n = len(f["input_ids"])
        i = bisect.bisect_left(free, (n, -1))
        if i < len(free):
            cap, b = free.pop(i)
        else:
            b, cap = len(bins), max_len
            bins.append({"input_ids": [], "labels": [], "position_ids": []})
        row = bins[b]
        row["input_ids"] += f["input_ids"]
        row["labels"] += [IGNORE_INDEX, *f["labels"][1:]]
        row["position_ids"] += list(range(n))
        bisect.insort(free, (cap - n, b))
    return bins


class PadCollator:
    """Right-pads a batch and counts the real tokens it carried (for honest tokens/s).

    Packed rows (with ``position_ids``) get no attention mask, which is what makes transformers
    isolate the packed examples from each other.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id
        self.tokens_seen = 0

    def __call__(self, batch: list[dict[str, list[int]]]):
        import torch

        packed = "position_ids" in batch[0]
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        pos = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
            if packed:
                pos[i, :n] = torch.tensor(b["position_ids"])
                # Padding continues the last example's positions: it sits after it causally, carries no loss.
                start = int(pos[i, n - 1]) + 1 if n else 0
                pos[i, n:] = torch.arange(start, start + width - n)
            self.tokens_seen += n
        if packed:
            return {"input_ids": ids, "labels": labels, "position_ids": pos}
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
