"""Preference features from pair files: rows → ``Pair`` → token ids of the prompt and of each answer.

The preference counterpart of ``training.data``: each side renders as its own chat (prompt + that side)
through the same chat template, masking and truncation as a supervised row (``Pair.side`` →
``render_example``), which is also how the dataset check judges a side cut away. So what the trainer
sees is what ``studio validate`` checked, and a base model without a chat template is refused the same
way. TRL's preference collators then take ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` as given.
One pair's rendering is ``datasets.pairrender.render_pair``, which the Dataset pane's model view shows.
Kept free of torch so tests and the CLI can build exactly what the trainer will see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from studio.core.config import RunConfig
from studio.core.datasets.formats import RowShapeError
from studio.core.datasets.load import Row
from studio.core.datasets.pairrender import render_pair
from studio.core.datasets.pairs import is_pair_row, to_pair
from studio.core.errors import StudioError
from studio.core.training.data import Features, train_eval_rows

PairFeature = dict[str, list[int]]  # prompt_ids, chosen_ids, rejected_ids


@dataclass
class PairFeatures:
    train: list[PairFeature]
    eval: list[PairFeature]
    dropped: int          # pairs where a side kept no answer token after truncation
    truncated: int        # pairs where at least one side was cut at max_seq_len
    # The chosen side of each eval pair as a supervised feature: the end-of-run stop check asks whether
    # the answers the run preferred now end on their own.
    eval_chosen: list[dict[str, list[int]]] = field(default_factory=list)

    def row_lengths(self) -> list[int]:
        """Tokens of each row the trainer forwards: prompt + the longer side (both sides share a batch)."""
        return [len(f["prompt_ids"]) + max(len(f["chosen_ids"]), len(f["rejected_ids"])) for f in self.train]

    def stop_check_view(self) -> Features:
        return Features(train=[], eval=self.eval_chosen, dropped=0, truncated=0,
                        eval_chat=[True] * len(self.eval_chosen))


def build_pair_features(cfg: RunConfig, tokenizer, log: Callable[[str], None] = lambda _m: None) -> PairFeatures:
    train_rows, eval_rows = train_eval_rows(
        cfg, "No training dataset is selected. Pick a preference file (prompt/chosen/rejected) first.")
    max_len = cfg.training.max_seq_len
    objective = cfg.objective.upper()
    dropped = truncated = 0

    def featurize(rows: list[Row], chosen_out: list | None = None) -> list[PairFeature]:
        nonlocal dropped, truncated
        out = []
        for row in rows:
            if not isinstance(row.data, dict) or not is_pair_row(row.data):
                raise StudioError(
                    f"{objective} trains on preference pairs, and this row has no 'chosen' and 'rejected' answers. "
                    "Pick a preference file (prompt/chosen/rejected per row), or train it with objective sft.",
                    path=row.source, line=row.line,
                )
            try:
                pair = to_pair(row.data)
            except RowShapeError as err:
                raise StudioError(
                    f"{err}. Run the dataset check (Dataset pane or `studio validate`) to see every problem.",
                    path=row.source, line=row.line,
                ) from None
            rendered = render_pair(pair, tokenizer, max_len)
            truncated += rendered.truncated
            if not rendered.usable:
                dropped += 1
                continue
            out.append(rendered.feature())
            if chosen_out is not None:
                chosen_out.append({"input_ids": rendered.chosen.input_ids, "labels": rendered.chosen.labels})
        return out

    train = featurize(train_rows)
    eval_chosen: list[dict[str, list[int]]] = []
    evals = featurize(eval_rows, eval_chosen)
    if dropped:
        log(f"{dropped} pair(s) have a side with no answer tokens left after truncation to {max_len} tokens "
            "and were skipped.")
    if truncated:
        log(f"{truncated} pair(s) had a side truncated to {max_len} tokens.")
    if not train:
        raise StudioError(
            f"No preference pair keeps answer tokens on both sides within max_seq_len={max_len}. "
            "Raise max sequence length or shorten prompts."
        )
    return PairFeatures(train=train, eval=evals, dropped=dropped, truncated=truncated, eval_chosen=eval_chosen)
