"""Checks on the text a row hands the tokenizer: text it cannot encode, and text it would read as
conversation structure.

A JSON ``"\\ud800"`` escape parses into a lone surrogate, a character no tokenizer can encode: it
must be caught per row, with its line, before anything tokenizes the row (one such row used to end
a whole check or a training run with a tokenizer TypeError). And text such as
``<|im_end|><|im_start|>assistant`` inside a user message is matched as the tokenizer's own added
tokens, so the model sees a turn boundary that the data never meant; the validator names the row
and the marker.
"""

from __future__ import annotations

import re

from studio.core.datasets.formats import Example

_SURROGATE = re.compile("[\ud800-\udfff]")
# Markup in a chat template's fixed text that acts as turn structure even where it is not an added
# token: <|user|>, <start_of_turn>, [INST], <<SYS>> and the like.
_MARKUP = re.compile(r"<\|[^\s<>|]{1,40}\|>|</?[A-Za-z_][\w-]{0,40}>|\[/?[A-Z][A-Z_]{1,24}\]|<</?[A-Z]{2,24}>>")


def _place(example: Example, k: int) -> str:
    """'the user turn' / 'turn 3 (user)' / "'text'": where in a row a character sits."""
    if example.text is not None:
        return "'text'"
    role = example.messages[k][0]
    if sum(1 for r, _ in example.messages if r == role) == 1:
        return f"the {role} turn"
    return f"turn {k + 1} ({role})"


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a character UTF-8 cannot encode (ASCII text is answered at once)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def lone_surrogate(example: Example) -> str | None:
    """Where the first character that cannot be encoded as UTF-8 sits, in words; None if none."""
    texts = [example.text] if example.text is not None else [c for _, c in example.messages]
    for k, text in enumerate(texts):
        if text.isascii():
            continue
        m = _SURROGATE.search(text)
        if m:
            return f"a lone surrogate (\\u{ord(m.group()):04x}) at character {m.start() + 1} of {_place(example, k)}"
    return None


def invalid_unicode_message(where: str) -> str:
    """The one sentence for a lone surrogate, shared by the validator and the trainer."""
    return f"invalid Unicode: {where}; no tokenizer can encode it, so fix or remove it"


class MarkerFinder:
    """Finds a tokenizer's added tokens and its chat template's markup inside row contents."""

    def __init__(self, markers: list[str]) -> None:
        self.markers = tuple(sorted(set(markers), key=lambda m: (-len(m), m)))   # longest first
        self._pattern = re.compile("|".join(map(re.escape, self.markers))) if self.markers else None
        starts = {m[0] for m in self.markers}
        # Nearly every marker starts with '<' or '['; one substring test per start rejects most text.
        self._starts = tuple(starts) if len(starts) <= 4 else None

    @classmethod
    def for_tokenizer(cls, tokenizer) -> MarkerFinder:
        markers = [t for t in _added_tokens(tokenizer) if len(t.strip()) >= 2]
        markers += _template_markup(tokenizer)
        return cls(markers)

    def find(self, example: Example) -> tuple[tuple[str, str], ...]:
        """(where, marker) for each distinct marker in the row's contents, in the order met."""
        if self._pattern is None:
            return ()
        texts = [example.text] if example.text is not None else [c for _, c in example.messages]
        out: list[tuple[str, str]] = []
        for k, text in enumerate(texts):
            if self._starts is not None and not any(s in text for s in self._starts):
                continue
            for marker in dict.fromkeys(self._pattern.findall(text)):
                out.append((_place(example, k), marker))
        return tuple(out)


def _added_tokens(tokenizer) -> list[str]:
    """The text of every added/special token: the tokenizer cuts these out of any text it encodes."""
    found: list[str] = []
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if isinstance(decoder, dict):
        found += [str(getattr(t, "content", t)) for t in decoder.values()]
    found += [str(t) for t in getattr(tokenizer, "all_special_tokens", None) or []]
    return found


def _template_markup(tokenizer) -> list[str]:
    """Markup in the chat template's own text, found by rendering a probe conversation whose
    contents are one private-use character each, and reading what lies between them."""
    if not getattr(tokenizer, "chat_template", None):
        return []   # a base model: no markup until a template is chosen (the model finding says so)
    probes = ([("system", "\ue000"), ("user", "\ue000"), ("assistant", "\ue000")],
              [("user", "\ue000"), ("assistant", "\ue000")])
    for turns in probes:
        try:
            text = tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in turns], tokenize=False)
        except Exception:
            continue   # a template that refuses this shape (e.g. no system turn); try the next
        if isinstance(text, str):
            return [m for literal in text.split("\ue000") for m in _MARKUP.findall(literal)]
    return []
