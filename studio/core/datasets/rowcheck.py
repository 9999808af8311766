"""Per-row checks: which format, can it train, what is wrong with it — and the row's fingerprints.

Runs once per row during the scan, so it is written for speed: one ``to_example`` (the same
normalisation training uses, so the checker and the trainer agree on what a row means) and a handful
of string operations. Dataset-wide checks (duplicates, outliers, style mixes) work on the small
per-row features collected here instead of keeping every parsed row in memory.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from studio.core.datasets.findings import CATALOGUE
from studio.core.datasets.formats import FORMATS, Example, RowShapeError, detect_row_format, to_example
from studio.core.datasets.pairs import SIDES, Pair, pair_problems, to_pair
from studio.core.datasets.textcheck import lone_surrogate

ERROR_CODES = frozenset(c for c, (sev, _, _) in CATALOGUE.items() if sev == "error")
FORMAT_CODES = {name: i for i, name in enumerate(FORMATS)}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Control characters or surrogates: one search per text finds either; the rare hit is then told apart.
_SUSPECT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_ENDING_PUNCT = frozenset(".!?…。！？")
_CLOSERS = "\"')]}”’»*_`"


@dataclass
class RowCheck:
    fmt: str | None
    example: Example | None
    problems: list[tuple[str, str | None]]   # (code, note)
    pair: Pair | None = None                 # a preference row (then ``example`` is None)

    @property
    def trainable(self) -> bool:
        usable = self.example is not None or self.pair is not None
        return usable and not any(c in ERROR_CODES for c, _ in self.problems)


def kind_of(value: Any) -> str:
    """'a list', 'a number' … for messages (not Python type names)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _partial_format(keys: set[str]) -> tuple[str, str] | None:
    """(format, missing field) for a row that has some but not all of a format's required fields."""
    if ("chosen" in keys) != ("rejected" in keys):
        return "preference", "rejected" if "chosen" in keys else "chosen"
    if "instruction" in keys and "output" not in keys:
        return "alpaca", "output"
    if "output" in keys and "instruction" not in keys and "prompt" not in keys:
        return "alpaca", "instruction"
    if "prompt" in keys and "completion" not in keys:
        return "prompt_completion", "completion"
    if "completion" in keys and "prompt" not in keys:
        return "prompt_completion", "prompt"
    return None


def _shape_code(message: str) -> str:
    if "unknown role" in message:
        return "chat.unknown_role"
    if " has no '" in message:
        return "field.missing"
    return "field.wrong_type"


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_row(data: Any, column_map: Mapping[str, str] | None = None) -> RowCheck:
    if type(data) is not dict and not isinstance(data, Mapping):
        return RowCheck(None, None, [("row.not_object", f"it is {kind_of(data)}")])
    fmt = detect_row_format(data, column_map)
    if fmt is None:
        partial = _partial_format({str(k) for k in data})
        if partial:
            return RowCheck(partial[0], None, [("field.missing", f"no '{partial[1]}' ({partial[0]} format)")])
        keys = ", ".join(sorted(map(str, data))[:8]) or "no fields"
        return RowCheck(None, None, [("format.unknown", f"fields: {keys}")])
    if fmt == "preference":
        return _pair_row(data)
    try:
        example = to_example(data, fmt, column_map)
    except RowShapeError as err:
        return RowCheck(fmt, None, [(_shape_code(str(err)), str(err))])
    problems: list[tuple[str, str | None]] = []
    if example.text is not None:
        if not example.text.strip():
            problems.append(("answer.empty", "'text' is empty"))
        elif _SUSPECT.search(example.text):
            return _suspect_row(fmt, example, problems)
        return RowCheck(fmt, example, problems)
    if _chat_problems(data, fmt, example, problems, column_map):
        return _suspect_row(fmt, example, problems)
    return RowCheck(fmt, example, problems)


def _pair_row(data: Mapping) -> RowCheck:
    try:
        pair = to_pair(data)
    except RowShapeError as err:
        return RowCheck("preference", None, [(_shape_code(str(err)), str(err))])
    sides = [pair.side(s) for s in SIDES]
    if any(_SUSPECT.search(c) for ex in sides for _, c in ex.messages):
        for ex in sides:
            where = lone_surrogate(ex)
            if where is not None:   # no Pair kept: nothing downstream hands it to a tokenizer
                return RowCheck("preference", None, [("text.invalid_unicode", where)])
        problems = pair_problems(data, pair)
        if any(_CONTROL.search(c) for ex in sides for _, c in ex.messages):
            problems.append(("text.control_chars", None))
        return RowCheck("preference", None, problems, pair)
    return RowCheck("preference", None, pair_problems(data, pair), pair)


def _suspect_row(fmt: str, example: Example, problems: list[tuple[str, str | None]]) -> RowCheck:
    """A row holding control characters or surrogates. A lone surrogate makes the row unusable: it
    keeps no Example, so nothing downstream (token checks, preview) ever hands it to a tokenizer."""
    where = lone_surrogate(example)
    if where is not None:
        return RowCheck(fmt, None, [("text.invalid_unicode", where)])
    texts = [example.text] if example.text is not None else [c for _, c in example.messages]
    if any(_CONTROL.search(t) for t in texts):
        problems.append(("text.control_chars", None))
    return RowCheck(fmt, example, problems)


def _chat_problems(data: Mapping, fmt: str, example: Example, problems: list, column_map) -> bool:
    """Appends the row's chat problems; True when a turn holds a control character or surrogate."""
    msgs = example.messages
    roles = [r for r, _ in msgs]
    is_conversation = fmt in ("messages", "sharegpt") or (
        fmt == "prompt_completion" and isinstance(data.get("prompt"), list)
    )
    if not is_conversation:
        if column_map and column_map.get("prompt") in data:
            prompt_field = column_map["prompt"]
        else:
            prompt_field = "instruction" if fmt == "alpaca" else "prompt"
        if _is_blank(data.get(prompt_field)):
            problems.append(("field.empty", f"'{prompt_field}' is {'null' if data.get(prompt_field) is None else 'empty'}"))
    # One pass over the turns (this runs for every row of every scan).
    any_blank = control = answered = False
    for role, content in msgs:
        if not content or content.isspace():
            any_blank = True
        elif role == "assistant":
            answered = True
        if not control and _SUSPECT.search(content):
            control = True
    if "assistant" not in roles:
        problems.append(("chat.no_assistant", f"roles: {', '.join(roles) or 'none'}"))
    elif not answered:
        answer_field = {"alpaca": "output", "prompt_completion": "completion"}.get(fmt, "assistant turn")
        if column_map and column_map.get("answer") in data:
            answer_field = column_map["answer"]
        problems.append(("answer.empty", f"'{answer_field}' is empty"))
    if is_conversation:
        if any_blank:
            problems.append(("chat.empty_turn", None))
        if ("system" in roles[1:]) or (roles and roles[0] != "system" and roles[0] == "assistant") or (
            len(roles) > 1 and roles[0] == "system" and roles[1] == "assistant"
        ):
            problems.append(("chat.role_order", f"roles: {', '.join(roles)}"))
        if any(a == b for a, b in itertools.pairwise(roles)):
            problems.append(("chat.consecutive_role", f"roles: {', '.join(roles)}"))
        if "assistant" in roles and roles[-1] != "assistant":
            problems.append(("chat.last_not_assistant", f"ends with {roles[-1]}"))
    return control


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def ends_with_punctuation(answer: str) -> bool:
    tail = answer.rstrip().rstrip(_CLOSERS)
    return bool(tail) and tail[-1] in _ENDING_PUNCT


class RowFeature(NamedTuple):
    """What the dataset-wide checks need from one row (kept for every row; small). A named tuple:
    it is built for every row of every scan, and a tuple is the cheapest thing to build."""

    exact: int
    normalized: int
    prompt: int
    answer_chars: int
    total_chars: int
    turns: int
    trailing_ws: bool
    ends_punct: bool


def pair_feature(pair: Pair) -> RowFeature:
    """A pair's features: duplicates are keyed on the whole pair (prompt and both answers), leakage
    on the prompt (hashed as a supervised row's prompt is, so an eval row of either kind matches)."""
    base = row_feature(pair.side("chosen"))
    squashed = tuple(tuple(normalise(c) for _, c in part) for part in (pair.prompt, pair.chosen, pair.rejected))
    return base._replace(exact=hash(("pair", pair.prompt, pair.chosen, pair.rejected)),
                         normalized=hash(("pair", *squashed)), answer_chars=len(pair.answer("chosen")))


def row_feature(example: Example) -> RowFeature:
    if example.text is not None:
        text = example.text
        norm = normalise(text)
        return RowFeature(hash(("text", text)), hash(("text", norm)), hash(norm), len(text), len(text), 0,
                          text[-1:].isspace(), ends_with_punctuation(text))
    msgs = example.messages
    norms = []
    prompt_parts = []
    answer = ""
    answer_chars = total = turns = 0
    for role, content in msgs:
        norm = " ".join(content.lower().split())
        norms.append(norm)
        n = len(content)
        total += n
        if role == "assistant":
            answer_chars += n
            answer = content
            turns += 1
        else:
            prompt_parts.append(norm)
            turns += role != "system"
    return RowFeature(hash(msgs), hash((tuple(r for r, _ in msgs), *norms)), hash(" ".join(prompt_parts)),
                      answer_chars, total, turns, answer[-1:].isspace(), ends_with_punctuation(answer))
