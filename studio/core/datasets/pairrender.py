"""One preference pair rendered exactly as preference training feeds it: both sides and the prompt they share.

Each side is rendered as its own chat (prompt + that side) through ``render_example``, so the chat
template, the cut to the max length and a side cut away are judged as for a supervised row. The
trainers then take the tokens both sides share before either side's first trained token as the
prompt, and every token after it as that side's answer: TRL's DPO and ORPO losses cover all of a
side's tokens after the prompt (``labels``), not only the ones a supervised mask would keep. Training
(``training.pair_data``) and the Dataset pane's model view both go through ``render_pair``, so what
the view paints is what the trainer is handed.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.datasets.pairs import SIDES, Pair, Side
from studio.core.datasets.render import IGNORE_INDEX, Rendered, render_example


def _first_trained(labels: list[int]) -> int:
    return next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))


@dataclass(frozen=True)
class RenderedPair:
    chosen: Rendered
    rejected: Rendered
    prompt_tokens: int   # leading tokens both sides share before either side's first trained token

    def side(self, side: Side) -> Rendered:
        return self.chosen if side == "chosen" else self.rejected

    def answer_ids(self, side: Side) -> list[int]:
        """The side's tokens after the shared prompt (kept by the cut): what the trainer scores."""
        return self.side(side).input_ids[self.prompt_tokens:]

    def labels(self, side: Side) -> list[int]:
        """Prompt + side as the preference loss sees it: the prompt masked, every answer token scored
        (the same rule ORPO's ``tokenize_row`` and DPO's completion mask apply to ``feature()``)."""
        return [IGNORE_INDEX] * self.prompt_tokens + self.answer_ids(side)

    @property
    def truncated(self) -> bool:
        return any(self.side(s).truncated for s in SIDES)

    @property
    def usable(self) -> bool:
        """False when a side kept no answer token after the cut: training skips such a pair."""
        return all(self.side(s).trained_tokens > 0 for s in SIDES)

    def feature(self) -> dict[str, list[int]]:
        """The ids TRL's preference collators take as given."""
        return {"prompt_ids": self.chosen.input_ids[:self.prompt_tokens],
                "chosen_ids": self.answer_ids("chosen"), "rejected_ids": self.answer_ids("rejected")}


def render_pair(pair: Pair, tokenizer, max_len: int) -> RenderedPair:
    """Both sides of ``pair`` rendered and cut like supervised rows, and the prompt they share."""
    chosen, rejected = (render_example(pair.side(s), tokenizer, max_len) for s in SIDES)
    start = min(_first_trained(chosen.labels), _first_trained(rejected.labels))
    shared = 0
    while shared < start and chosen.input_ids[shared] == rejected.input_ids[shared]:
        shared += 1
    return RenderedPair(chosen=chosen, rejected=rejected, prompt_tokens=shared)
