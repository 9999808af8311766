"""Exact piece counting for byte-level BPE that splits every digit off first: ``Digits(individual_digits)``
then GPT-2's ``ByteLevel`` (SmolLM's tokenizer.json, and llama.cpp's "smollm" rules).

``Digits`` cuts each numeric character out as a pre-token of its own, and GPT-2's pattern then runs
on each stretch between them as if it were a whole text. So a text is counted as: numeric
characters one piece each, and each stretch between them by the GPT-2 argument of ``piececount``
(its end acts as a text's end: a whitespace run before a digit stays whole, "a  1" is "a", "  ",
"1", never "a", " ", " 1"). A cut next to a numeric character is always additive; any cut the GPT-2
argument proves inside a stretch still is, since ``Digits`` only adds cuts.

"Numeric" is what ``tokenizers`` decides (Rust's ``char::is_numeric`` with its own Unicode tables),
which differs from Python's and the ``regex`` module's for a few hundred characters. For ASCII it is
0-9; beyond ASCII the set is asked of ``tokenizers`` itself, once per process, among the characters
``regex`` calls ``\\p{N}`` (a superset, proven over every code point by the tests).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from studio.core.datasets.piececount import PieceCounter, _eligible

_ASCII_DIGIT = re.compile("[0-9]")
_ASCII_SPLIT = re.compile("([0-9])")
_LOCK = threading.Lock()
_NUMERIC: list[re.Pattern[str]] = []   # the split pattern for all numeric characters, built on first need


def numeric_split() -> re.Pattern[str]:
    """``([…])`` over every character ``tokenizers``' ``Digits`` cuts out (built once, ~0.4 s)."""
    with _LOCK:
        if not _NUMERIC:
            import regex
            from tokenizers import pre_tokenizers

            every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
            candidates = regex.findall(r"\p{N}", every)
            cut = pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str("a".join(candidates))
            numeric = sorted({p for p, _ in cut if p != "a" and len(p) == 1})
            _NUMERIC.append(re.compile("([" + "".join(map(re.escape, numeric)) + "])"))
        return _NUMERIC[0]


def eligible(spec: dict[str, Any]) -> bool:
    """``Digits(individual_digits=True)`` then a ByteLevel the GPT-2 argument covers, nothing else."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") or [] if pre.get("type") == "Sequence" else []
    if len(steps) != 2 or steps[0] != {"type": "Digits", "individual_digits": True}:
        return False
    return _eligible({**spec, "pre_tokenizer": steps[1]})


class DigitPieceCounter(PieceCounter):
    """GPT-2 piece counting on the stretches between numeric characters (see the module docstring)."""

    def _parts(self, s: str) -> list[str] | None:
        """``s`` cut around its numeric characters (odd indices), or None when it has none."""
        if s.isascii():
            return _ASCII_SPLIT.split(s) if _ASCII_DIGIT.search(s) else None
        parts = numeric_split().split(s)
        return parts if len(parts) > 1 else None

    def _segment(self, s: str) -> int:
        parts = self._parts(s)
        if parts is None:
            return super()._segment(s)
        n = 0
        for k, part in enumerate(parts):
            if k % 2:
                n += self._piece[part]   # a numeric character: its own pre-token (1 token, or its bytes)
            elif part:
                n += super()._segment(part)
        return n

    def _numeric(self, c: str) -> bool:
        return "0" <= c <= "9" if c.isascii() else numeric_split().fullmatch(c) is not None

    def additive_at(self, text: str, p: int) -> bool:
        if 0 < p < len(text) and (self._numeric(text[p - 1]) or self._numeric(text[p])):
            return True
        return super().additive_at(text, p)
