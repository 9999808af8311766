"""Preference pairs: the row shapes, their normal form, and the checks one row can answer alone.

A preference row holds one prompt and two answers, ``chosen`` (better) and ``rejected`` (worse).
Two shapes are read, both the ones TRL's preference trainers take:

* explicit prompt: ``prompt`` / ``chosen`` / ``rejected``, each a string or an OpenAI-style message
  list (``prompt`` may be a string while the answers are lists, and the other way round);
* shared prefix: ``chosen`` and ``rejected`` as whole conversations that repeat the same leading
  turns; those turns are the prompt and what follows them (the assistant's answer) differs.

A pair is not an ``Example``: supervised training has nothing to learn from a rejected answer, so
``formats.to_example`` refuses a pair with a message instead of silently training on one side.
Each side renders as its own chat (prompt + that side), through the same chat template and
truncation as a supervised row (``side``), which is how the token checks judge a side cut away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from studio.core.datasets.formats import CHAT_ROLES, Example, RowShapeError, as_text, chat_turns

Side = Literal["chosen", "rejected"]
SIDES: tuple[Side, ...] = ("chosen", "rejected")
Turns = tuple[tuple[str, str], ...]
# A prompt shorter than this turns up inside answers by chance ("Hi", "Why?"), so only a question
# at least this long, found whole inside an answer, is called a leaked prompt.
LEAK_MIN_CHARS = 12
_ROLES = {r: r for r in CHAT_ROLES}


@dataclass(frozen=True)
class Pair:
    """One preference row in normal form: the shared prompt turns and each side's turns after them."""

    prompt: Turns
    chosen: Turns
    rejected: Turns
    shared_prefix: bool = False   # read from two whole conversations (no 'prompt' field)

    def turns(self, side: Side) -> Turns:
        return self.chosen if side == "chosen" else self.rejected

    def side(self, side: Side) -> Example:
        """Prompt + this side as one chat, rendered and masked exactly like a supervised row."""
        return Example(messages=self.prompt + self.turns(side), fmt="preference")

    def answer(self, side: Side) -> str:
        """The assistant text of one side (what the preference is about)."""
        return "\n".join(c for r, c in self.turns(side) if r == "assistant")

    @property
    def prompt_text(self) -> str:
        return "\n".join(c for r, c in self.prompt if r != "assistant")

    @property
    def question(self) -> str:
        """The last user turn of the prompt: what both answers answer."""
        return next((c for r, c in reversed(self.prompt) if r == "user"), "")


def is_pair_row(row: Mapping) -> bool:
    return "chosen" in row and "rejected" in row


def _side_turns(value: Any, name: str) -> Turns:
    if isinstance(value, list):
        return tuple(chat_turns(value, name, "role", "content", _ROLES))
    return (("assistant", as_text(value, name)),)


def _shared_prefix(chosen: Turns, rejected: Turns) -> int:
    k = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        k += 1
    return k


def to_pair(row: Mapping) -> Pair:
    """Normalise one preference row. Raises RowShapeError naming the field and the fix."""
    if "prompt" in row:
        prompt_value = row["prompt"]
        if isinstance(prompt_value, list):
            prompt = tuple(chat_turns(prompt_value, "prompt", "role", "content", _ROLES))
        else:
            prompt = (("user", as_text(prompt_value, "prompt")),)
            if row.get("system"):
                prompt = (("system", as_text(row["system"], "system")), *prompt)
        return Pair(prompt, _side_turns(row["chosen"], "chosen"), _side_turns(row["rejected"], "rejected"))
    chosen, rejected = row["chosen"], row["rejected"]
    if not isinstance(chosen, list) or not isinstance(rejected, list):
        raise RowShapeError(
            "the pair has no 'prompt': give one, or give 'chosen' and 'rejected' as message lists that "
            "repeat the prompt turns")
    c = tuple(chat_turns(chosen, "chosen", "role", "content", _ROLES))
    r = tuple(chat_turns(rejected, "rejected", "role", "content", _ROLES))
    if c == r:  # identical conversations: the last turn stands for the answer on both sides
        return Pair(c[:-1], c[-1:], r[-1:], shared_prefix=True)
    k = _shared_prefix(c, r)
    return Pair(c[:k], c[k:], r[k:], shared_prefix=True)


def _squash(text: str) -> str:
    return " ".join(text.split())


def pair_problems(data: Mapping, pair: Pair) -> list[tuple[str, str | None]]:
    """The findings one pair shows on its own: (code, note), as ``rowcheck.check_row`` reports them."""
    problems: list[tuple[str, str | None]] = []
    if not pair.shared_prefix and not isinstance(data.get("prompt"), list) and not pair.question.strip():
        problems.append(("field.empty", f"'prompt' is {'null' if data.get('prompt') is None else 'empty'}"))
    if pair.shared_prefix:
        for side in SIDES:
            turns = pair.turns(side)
            if turns and turns[0][0] != "assistant":
                problems.append(("pair.prompt_mismatch",
                                 f"turn {len(pair.prompt) + 1} differs and is a {turns[0][0]} turn, not the answer"))
                break
    empty = [s for s in SIDES if not _squash(pair.answer(s))]
    if empty:
        problems.append(("pair.empty_side", " and ".join(f"'{s}'" for s in empty)
                         + (" have" if len(empty) > 1 else " has") + " no answer text"))
    elif pair.chosen == pair.rejected:
        problems.append(("pair.identical", "chosen and rejected are the same"))
    elif [(r, _squash(c)) for r, c in pair.chosen] == [(r, _squash(c)) for r, c in pair.rejected]:
        problems.append(("pair.identical", "chosen and rejected differ only in spacing"))
    question = _squash(pair.question).lower()
    if len(question) >= LEAK_MIN_CHARS:
        leaked = [s for s in SIDES if question in _squash(pair.answer(s)).lower()]
        if leaked:
            problems.append(("pair.prompt_in_answer", f"the {' and '.join(leaked)} answer contains the prompt"))
    return problems
