"""Exact piece counting for the tokenizer kinds beyond GPT-2's: Llama-3/Qwen2 split regexes and
SentencePiece-style BPE. ``piececount`` holds the shared machinery and the GPT-2 argument.

**Llama-3 / Qwen2** (``Split(regex, Isolated)`` then ``ByteLevel(use_regex=False)``): the regex has
no look-behind and looks ahead one character only (``\\s+(?!\\S)``), and every character starts a
match. So a position where the whole text's pre-tokens meet splits the text into two parts whose
pre-tokens (and so BPE tokens) are those of the whole. Around a run of ASCII whitespace between
``x`` and ``y`` the pattern meets at: the run's start, unless ``x`` is punctuation and the run
starts with newlines (``[^\\s\\p{L}\\p{N}]+[\\r\\n]*`` keeps them: ".\\n\\n"); after the run's last
newline (``\\s*[\\r\\n]+``); and before the run's last character if that is not a newline (the
rest is ``\\s+(?!\\S)``; the last character joins a following letter, "\\tword", or, if a space, a
following punctuation mark). Pieces are cut only there, so whether the last character joins ``y``
never matters: it stays with ``y``'s piece. Letters and digits are told apart only for ASCII; a
non-ASCII neighbour keeps the newlines with its piece. Digits never meet whitespace differently
in the two regexes (``\\p{N}{1,3}`` vs ``\\p{N}``), so one argument covers both. NFC, Qwen's
normaliser, never composes across ASCII whitespace, so pieces cut there normalise alone.

**SentencePiece style** (Metaspace, or ``Replace(" ", "▁")`` with an optional ``Prepend("▁")``
normaliser; BPE with byte fallback): BPE only ever merges into vocabulary tokens, so two
neighbouring characters ``x``, ``y`` that never stand side by side inside any vocabulary token are
never inside one token: the text is additive between them, and both sides' merges run as they
would alone. That set of neighbour pairs is read from the vocabulary once. With ``split`` every
"▁" also starts a pre-token. What a part counts depends on what precedes it (a "▁" is prepended
at the text's start and, by scheme, after added tokens), so parts are counted with that context.
Byte tokens must never be merged (else a pair of characters would hide behind bytes), all 256 must
exist (no unknown token to fuse), and merges must not be skipped for whole words (``ignore_merges``
would treat a part unlike the same characters inside a longer word).

**Digits then GPT-2** (SmolLM's ``Digits(individual_digits)`` + ``ByteLevel``): see ``digitcount``.

Anything else gets no counter (``counter_for_spec`` returns None) and rows are tokenized whole.
"""

from __future__ import annotations

import json
import re
from itertools import pairwise
from typing import Any

from studio.core.datasets import digitcount
from studio.core.datasets.piececount import (
    _WS,
    _WS_SET,
    PieceCounter,
    PlanCounts,
    _Counts,
    edge_cuts,
    span_positions,
)

# The split regexes this argument was made for, exactly as the families' tokenizer.json files hold them.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
_H = "\t\x0b\x0c "   # whitespace that may join a following word
_NL = "\r\n"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_DIGITS = frozenset("0123456789")
# Pieces for the split regexes: [joining whitespace] word [the newlines its pre-token may keep] |
# whitespace through the run's last newline | whitespace before the run's last character.
_SPLIT_PIECE = re.compile(
    f"[{_H}]?[^{_WS}]+(?:(?<=[^\\x00-\\x7f])(?:[{_WS}]*[{_NL}])?|(?<=[^A-Za-z0-9])[{_NL}]*)?"
    f"|[{_WS}]*[{_NL}]|[{_H}]+(?![^{_WS}])")
_META = "▁"
_BYTE_TOKEN = re.compile(r"<0x[0-9A-F]{2}>")
START, SEGMENT, MIDDLE = range(3)   # what precedes a part: nothing, an added token, other text


def _added(spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    tokens = spec.get("added_tokens") or []
    if any(t.get("lstrip") or t.get("rstrip") or t.get("single_word") for t in tokens):
        return None
    return tokens


def _post_ok(spec: dict[str, Any]) -> bool:
    post = spec.get("post_processor")
    posts = (post.get("processors") or []) if post and post.get("type") == "Sequence" else [post]
    return all(p is None or p.get("type") == "TemplateProcessing"
               or (p.get("type") == "ByteLevel" and not p.get("trim_offsets", True)) for p in posts)


def _bpe(spec: dict[str, Any]) -> dict[str, Any] | None:
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("dropout") or model.get("continuing_subword_prefix") \
            or model.get("end_of_word_suffix"):
        return None
    return model


def counter_for_spec(backend, spec: dict[str, Any]) -> PieceCounter | None:
    """A counter for a tokenizer this module's arguments cover, else None."""
    added = _added(spec)
    if added is None or _bpe(spec) is None or not _post_ok(spec):
        return None
    specials = [t["content"] for t in added if t.get("content")]
    if digitcount.eligible(spec):
        return digitcount.DigitPieceCounter(backend, specials)
    if SplitPieceCounter.eligible(spec):
        return SplitPieceCounter(backend, specials)
    shape = SentencePieceCounter.shape(spec)
    if shape is not None:
        counter = SentencePieceCounter(backend, specials, spec, *shape)
        return counter if counter.proven else None
    return None


class SplitPieceCounter(PieceCounter):
    """Byte-level BPE behind the Llama-3 or Qwen2 split regex (see the module docstring)."""

    _piece_re = _SPLIT_PIECE

    @staticmethod
    def eligible(spec: dict[str, Any]) -> bool:
        norm = spec.get("normalizer")
        if norm is not None and norm.get("type") != "NFC":
            return False
        pre = spec.get("pre_tokenizer") or {}
        steps = pre.get("pretokenizers") or [] if pre.get("type") == "Sequence" else []
        if len(steps) != 2:
            return False
        split, byte = steps
        return (split.get("type") == "Split" and (split.get("pattern") or {}).get("Regex") in (LLAMA3_SPLIT, QWEN2_SPLIT)
                and split.get("behavior") == "Isolated" and not split.get("invert")
                and byte.get("type") == "ByteLevel" and not byte.get("add_prefix_space") and not byte.get("use_regex", True))

    @staticmethod
    def pair_ok(x: str, y: str) -> bool:
        """Whether the pre-tokens meet between neighbours ``x`` and ``y`` whatever surrounds them."""
        if x in _WS_SET:
            if y in _WS_SET:
                return False          # inside a run: depends on the whole run
            if x in _NL:
                return True           # the run ends with a newline: its pre-token ends here
            return y in _DIGITS or (x != " " and y.isascii() and y not in _ALNUM)
        if y in _WS_SET:
            return y not in _NL or x in _ALNUM   # punctuation keeps the newlines after it
        return False

    def additive_at(self, text: str, p: int) -> bool:
        if p <= 0 or p >= len(text):
            return True
        if self.pair_ok(text[p - 1], text[p]):
            return True
        return bool(self.specials) and (text.startswith(self.specials, p) or text.endswith(self.specials, 0, p))

    def count_in(self, s: str, where: int) -> int:
        return self.count(s)

    def plan(self, literals, edges):
        return ContextPlan.build(self, literals, edges)


class SentencePieceCounter(PieceCounter):
    """SentencePiece-style BPE (see the module docstring). ``prepend``: "first", "always", "never",
    or "every" for a ``Prepend`` normaliser (every non-empty segment, even one starting with a space)."""

    _odd_space = None   # only " " is special here; other spaces are characters like any other

    @staticmethod
    def shape(spec: dict[str, Any]) -> tuple[str, bool] | None:
        norm, pre = spec.get("normalizer"), spec.get("pre_tokenizer")
        replace = {"type": "Replace", "pattern": {"String": " "}, "content": _META}
        if norm is None and pre is not None and pre.get("type") == "Metaspace" and pre.get("replacement") == _META:
            scheme = pre.get("prepend_scheme") or ("always" if pre.get("add_prefix_space", True) else "never")
            return (scheme, bool(pre.get("split", True))) if scheme in ("first", "always", "never") else None
        if pre is not None or norm is None:
            return None
        steps = norm.get("normalizers") if norm.get("type") == "Sequence" else [norm]
        if steps == [replace]:
            return "never", False
        if steps == [{"type": "Prepend", "prepend": _META}, replace]:
            return "every", False
        return None

    def __init__(self, backend, specials: list[str], spec: dict[str, Any], prepend: str, split: bool) -> None:
        super().__init__(backend, specials)
        self.prepend, self.split = prepend, split
        model = spec["model"]
        vocab = model.get("vocab") or {}
        merges = [m.split(" ") if isinstance(m, str) else m for m in model.get("merges") or []]
        self._pairs = {(a, b) for t in vocab if not _BYTE_TOKEN.fullmatch(t) for a, b in pairwise(t)}
        self.proven = (model.get("byte_fallback") and not model.get("ignore_merges")
                       and all(f"<0x{b:02X}>" in vocab for b in range(256))
                       and not any(_BYTE_TOKEN.fullmatch(part) for m in merges for part in m)
                       and not (spec.get("normalizer") and any(t.get("normalized") for t in spec.get("added_tokens") or [])))
        # Without ``split`` a "▁" after another character must never be inside a token.
        if not split and any(b == _META and a != _META for a, b in self._pairs):
            self.proven = False
        self._spaced = _Counts(self._events, _META)
        self._units = re.compile(f"{_META}*[^{_META}]+|{_META}+")
        bare = json.loads(backend.to_str())   # the model alone: a piece is one word, as in the whole text
        bare.update(normalizer=None, pre_tokenizer=None, post_processor=None, decoder=None, added_tokens=[])
        from tokenizers import Tokenizer

        self._learner = Tokenizer.from_str(json.dumps(bare))

    def pair_ok(self, x: str, y: str) -> bool:
        x = _META if x == " " else x
        y = _META if y == " " else y
        return (self.split and y == _META) or (x, y) not in self._pairs

    def additive_at(self, text: str, p: int) -> bool:
        if p <= 0 or p >= len(text):
            return True
        if self.specials and (text.startswith(self.specials, p) or text.endswith(self.specials, 0, p)):
            return True
        return self.pair_ok(text[p - 1], text[p])

    def _prepends(self, seg: str, where: int) -> bool:
        if where == MIDDLE or not seg or self.prepend == "never":
            return False
        if self.prepend == "every":
            return True
        return (where == START or self.prepend == "always") and seg[0] not in (" ", _META)

    def _seg(self, s: str, where: int) -> int:
        """Tokens of text without added tokens, preceded by ``where``."""
        lead = self._prepends(s, where)
        if _META in s:
            s = s.replace(_META, " ")
        if self.split or ("  " not in s and not (lead and s[:1] == " ")):
            parts = s.split(" ")
            first = self._spaced[parts[0]] if lead else (self._word[parts[0]] if parts[0] else 0)
            return first + sum(map(self._spaced.__getitem__, parts[1:]))
        t = (_META if lead else "") + s.replace(" ", _META)
        return sum(map(self._piece.__getitem__, self._units.findall(t)))

    def count_in(self, s: str, where: int) -> int:
        """Tokens of ``s`` after ``where`` (START: at the text's start)."""
        if self._split is None or not self._may_hold_special(s) or not self._split.search(s):
            return self._seg(s, where)
        n = 0
        for k, part in enumerate(self._split.split(s)):
            if k % 2:
                n += 1
            elif part:
                n += self._seg(part, where if k == 0 else SEGMENT)
        return n

    def count(self, s: str) -> int:
        return self.count_in(s, START)

    def _count_part(self, text: str, a: int, b: int) -> int:
        return self.count_in(text[a:b], self._where(text, a))

    def _where(self, text: str, a: int) -> int:
        if a == 0:
            return START
        return SEGMENT if self.specials and text.endswith(self.specials, 0, a) else MIDDLE

    def plan(self, literals, edges):
        return ContextPlan.build(self, literals, edges)


_ANY = None


class ContextPlan(PlanCounts):
    """Per-row counting for one template shape, for counters whose cuts depend on neighbour pairs
    and whose parts count by what precedes them. A content is counted on its own when the
    characters at both its edges are proven to meet (``pair_ok``). Where they are not, and the
    literal before has an added token with no span edge after it ("[INST] " + content), the text
    after that token is counted with the content ("glued"); else the row goes whole."""

    def __init__(self, counter, left: list[tuple[int, str | None]], right: list[str | None], literal_tokens: int,
                 spans, glue: list[tuple[str, int] | None]) -> None:
        super().__init__(counter, [], [], literal_tokens, spans)
        self.where_left, self.right_char, self.glue = left, right, glue

    @classmethod
    def build(cls, counter, literals: list[str], edges) -> ContextPlan | None:
        n = len(literals) - 1
        if n < 1 or not edges or any(b <= a for a, b, _ in edges):
            return None
        specials = counter.specials or ("\0",)
        left: list[tuple[int, str | None]] = []
        right: list[str | None] = []
        for k in range(n):
            lit, nxt = literals[k], literals[k + 1]
            if k == 0 and not lit:
                left.append((START, _ANY))
            elif lit.endswith(specials):
                left.append((SEGMENT, _ANY))
            elif lit:
                left.append((MIDDLE, lit[-1]))
            else:
                return None
            if (k + 1 == n and not nxt) or nxt.startswith(specials):
                right.append(_ANY)
            elif nxt:
                right.append(nxt[0])
            else:
                return None
        cuts = edge_cuts(literals, edges, counter.additive_at)
        if cuts is None:
            return None
        glue_at: list[int | None] = []
        for k in range(n):
            lit = literals[k]
            after = max((lit.rfind(t) + len(t) for t in counter.specials if t in lit), default=-1)
            edge_after = any(j == k and o > after for a, b, _ in edges for j, o in (a, b))
            ok = left[k][0] == MIDDLE and 0 < after < len(lit) and not edge_after
            glue_at.append(after if ok else None)
            if ok:
                cuts[k].add(after)
        tokens: list[list[int]] = []
        pieces: list[list[str]] = []
        for j, (lit, c) in enumerate(zip(literals, cuts, strict=True)):
            bounds = list(pairwise([0, *sorted(c), len(lit)]))
            pieces.append([lit[x:y] for x, y in bounds])
            # A literal after a content follows other text; the row check refuses contents ending in an added token.
            tokens.append([cls._literal_count(counter, lit, x, y, j) for x, y in bounds])
        literal_tokens, spans = span_positions(pieces, tokens, edges)
        glue = [None if g is None else (literals[k][g:], tokens[k][-1]) for k, g in enumerate(glue_at)]
        return cls(counter, left, right, literal_tokens, spans, glue)

    @staticmethod
    def _literal_count(counter, lit: str, x: int, y: int, j: int) -> int:
        if x == 0:
            where = START if j == 0 else MIDDLE
        else:
            where = SEGMENT if counter.specials and lit.endswith(counter.specials, 0, x) else MIDDLE
        before = counter._events[0]
        got = counter.count_in(lit[x:y], where)
        if counter._events[0] != before:
            counter._learn()
            got = counter.count_in(lit[x:y], where)
        return got

    def count(self, contents: list[str], max_len: int) -> tuple[int, int, int] | None:
        counter = self.counter
        odd = counter._odd_space
        specials = counter.specials
        counts: list[int] = []
        for c, (where, x), y, glue in zip(contents, self.where_left, self.right_char, self.glue, strict=True):
            if not c or (odd is not None and not c.isascii() and odd(c)):
                return None
            if y is not None and not counter.pair_ok(c[-1], y):
                return None
            if specials and c.endswith(specials):
                return None
            if x is not None and not counter.pair_ok(x, c[0]):
                if glue is None:
                    return None
                tail, tail_tokens = glue   # counted in the literal on its own: replaced by the glued count
                counts.append(counter.count_in(tail + c, SEGMENT) - tail_tokens)
                continue
            counts.append(counter.count_in(c, where))
        return self._finish(contents, counts, max_len)


__all__ = ["LLAMA3_SPLIT", "QWEN2_SPLIT", "SentencePieceCounter", "SplitPieceCounter", "counter_for_spec"]
