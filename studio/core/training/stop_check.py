""""Will it stop?" measured on eval prompts: the share the model answers and then ends, rather than
rambling on to the token limit, and (from the same greedy answers) how many short answers it gets exactly.

Before training the dataset check can only say whether the end-of-turn token carries loss and is one
generation stops on (datasets/stopcheck.py); whether the model actually learned to emit it shows only
in generation, and the eval loss hides it (a model can get every answer token right and never stop).
So before the first step and after the last (training.before_after) a few eval prompts are answered
greedily and the answers that end on a stop id are counted; answers whose reference is short are also
compared with it word for word (exact match: long answers almost never match token for token, so they
would only pull the figure to zero). The end-of-run figures are journaled on RunFinished and kept in the
Library entry's metrics.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from studio.core.datasets.render import IGNORE_INDEX

# A handful of prompts tells a model that stops from one that rambles; every extra one costs a few
# seconds of CPU at the end of every run (the demo run must not get noticeably slower).
MAX_PROMPTS = 8
# An answer may run to this many times the longest reference answer before it counts as not stopping:
# room for a longer phrasing, while a rambling model is cut off after a bounded number of tokens.
LIMIT_FACTOR = 2
MIN_NEW_TOKENS = 16     # short references (one word) still leave room for a sentence
MAX_NEW_TOKENS = 256    # long references: the limit, not the reference, bounds the CPU time
# Exact match is scored only where the reference answer (with its end-of-turn) is at most this many
# tokens: a label, a number, a one-line JSON object.
SHORT_ANSWER_TOKENS = 64


class EvalPrompt(NamedTuple):
    ids: list[int]     # the prompt with the assistant turn opened, in the run's template
    answer: list[int]  # the reference answer as trained, with its end-of-turn token


@dataclass(frozen=True)
class StopCheck:
    share: float  # of the checked answers, those that ended on a stop id before the limit
    checked: int
    limit: int    # max_new_tokens each answer had
    exact_match: float | None = None  # share of the short-reference answers equal to their reference
    exact_checked: int = 0            # how many answers had a short reference

    def fields(self) -> dict[str, Any]:
        """The RunFinished fields and Library metrics this check fills."""
        return {"eos_share": self.share, "eos_checked": self.checked, "eos_limit": self.limit}


def eval_prompts(features: Sequence[dict[str, list[int]]], chat: Sequence[bool],
                 n: int = MAX_PROMPTS) -> list[EvalPrompt]:
    """Prompt and reference answer ids for the first ``n`` chat eval rows.

    The rendered row already holds both: the last run of loss-carrying tokens is the final answer (with
    its end-of-turn token) and everything before it is the prompt with the assistant turn opened, in the
    run's own template. Plain-text rows have no prompt to answer and are left out.
    """
    out: list[EvalPrompt] = []
    for feat, is_chat in zip(features, chat, strict=False):
        if not is_chat:
            continue
        labels = feat["labels"]
        end = max((i for i, x in enumerate(labels) if x != IGNORE_INDEX), default=-1) + 1
        start = end
        while start > 0 and labels[start - 1] != IGNORE_INDEX:
            start -= 1
        if start > 0 and end > start:
            out.append(EvalPrompt(list(feat["input_ids"][:start]), list(feat["input_ids"][start:end])))
        if len(out) == n:
            break
    return out


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token the chat template closes an assistant turn with; None when it adds none."""
    from studio.core.datasets.stopcheck import end_of_turn

    eot = end_of_turn(tokenizer)
    return eot[0] if eot else None


def stop_ids(tokenizer: Any, model_dir: str | Path | None) -> set[int]:
    """What counts as stopping: the ids generation stops on (``generation_config`` eos) and the
    template's end-of-turn token."""
    from studio.core.datasets.stopcheck import generation_eos_ids

    ids = set(generation_eos_ids(model_dir, tokenizer))
    eot = end_of_turn_id(tokenizer)
    if eot is not None:
        ids.add(eot)
    return ids


def token_limit(prompts: Sequence[EvalPrompt]) -> int:
    longest = max(len(p.answer) for p in prompts)
    return max(MIN_NEW_TOKENS, min(MAX_NEW_TOKENS, LIMIT_FACTOR * longest))


def measure(model: Any, tokenizer: Any, prompts: Sequence[EvalPrompt], stops: set[int],
            should_stop: Callable[[], bool] = lambda: False) -> StopCheck | None:
    """Answer ``prompts`` greedily in one left-padded batch; count the answers that end on ``stops``
    and the short ones equal to their reference. None when there is nothing to check or
    ``should_stop`` turned true (the user stopped the run)."""
    if not prompts or not stops:
        return None
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _UserStop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), bool(should_stop()), dtype=torch.bool, device=input_ids.device)

    limit = token_limit(prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stops)
    width = max(len(p.ids) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, (p, _) in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    gen = copy.deepcopy(model.generation_config)
    gen.max_new_tokens, gen.min_new_tokens, gen.max_length = limit, None, None
    gen.do_sample, gen.num_beams, gen.temperature, gen.top_p, gen.top_k = False, 1, None, None, None
    gen.eos_token_id, gen.pad_token_id, gen.use_cache = sorted(stops), pad, True
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen,
                                 stopping_criteria=StoppingCriteriaList([_UserStop()]))
    finally:
        model.train(was_training)
    if should_stop():
        return None
    answers = out[:, width:].tolist()
    ended = sum(any(t in stops for t in row) for row in answers)
    matches, scored = exact_matches(tokenizer, prompts, answers, stops)
    return StopCheck(share=ended / len(prompts), checked=len(prompts), limit=limit,
                     exact_match=matches / scored if scored else None, exact_checked=scored)


def _until_stop(ids: Sequence[int], stops: set[int]) -> list[int]:
    return list(next(([*ids[:i]] for i, t in enumerate(ids) if t in stops), ids))


def exact_matches(tokenizer: Any, prompts: Sequence[EvalPrompt], answers: Sequence[Sequence[int]],
                  stops: set[int]) -> tuple[int, int]:
    """(matches, scored): answers equal to their short reference as text, surrounding whitespace ignored
    (the rule of ``studio compare``), each cut at its first stop id."""
    from studio.core.library.prompt_set import exact_match

    matches = scored = 0
    for prompt, answer in zip(prompts, answers, strict=True):
        if len(prompt.answer) > SHORT_ANSWER_TOKENS:
            continue
        scored += 1
        said = tokenizer.decode(_until_stop(answer, stops), skip_special_tokens=True)
        expected = tokenizer.decode(_until_stop(prompt.answer, stops), skip_special_tokens=True)
        matches += exact_match(said, expected)
    return matches, scored


def summary_line(share: float | None, checked: int, limit: int = 0) -> str | None:
    """The end-of-run line the CLI and the Train pane print; None when nothing was checked."""
    if share is None or not checked:
        return None
    within = f"{limit}-token limit" if limit else "token limit"
    line = (f"stops on its own: {round(share * checked)} of {checked} eval answers ended with EOS before the "
            f"{within} ({share:.0%})")
    if share < 0.5:
        line += ("; most ran on to the limit, so the model may not have learned to end its answer (train longer, "
                 "or see the stop findings of `studio validate --model`)")
    return line
