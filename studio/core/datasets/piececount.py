"""Exact token counts for GPT-2-style byte-level BPE tokenizers without tokenizing every row.

Such a tokenizer cuts the text at its added tokens (``<|im_start|>`` …), splits each remaining
segment into pre-tokens with the GPT-2 pattern, and runs BPE on each pre-token on its own. That
pattern looks across a whitespace boundary in one way only: a single space before a word belongs
to that word, and a run of whitespace before a word gives its last character to the word (if it
is a space) or keeps it as a pre-token of its own. So a text splits into *pieces* — `` ?\\S+`` and
whitespace runs, cut exactly where the pattern cuts — whose token counts add up, and each distinct
piece needs the real tokenizer only once (in a batch, for all pieces a chunk of rows has not seen).
Text with single spaces only, the common case, is split with ``str.split(" ")``.

A row is cut at its template/content boundaries and at its loss-span edges, and each part is
counted on its own, when ``additive_at`` proves the cut cannot change the pre-tokens around it. A
span edge that cannot be proven (or whitespace beyond ASCII, which the GPT-2 pattern may treat
differently) makes the row None, and the caller tokenizes it for real. Tokenizers this argument
does not cover (another pre-tokenizer or normaliser, added tokens that strip whitespace, offset
trimming, BPE dropout) get no ``PieceCounter`` at all. Callers also keep checking a sample of
rows against ``render_example`` itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate, islice, pairwise
from typing import Any

_WS = "\t\n\x0b\x0c\r "
_WS_SET = frozenset(_WS)
_PIECE = re.compile(f" ?[^{_WS}]+|[{_WS}]+(?![^{_WS}])|[{_WS}]+")
# Whitespace (or whitespace-like) characters beyond ASCII: the GPT-2 pattern's \s may count them,
# the piece pattern above does not, so rows containing one are tokenized for real.
_OTHER_SPACE = re.compile("[\x1c-\x1f\x85\xa0\u1680\u180e\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]")
MAX_CACHED = 2_000_000
MAX_MEMO = 20_000
WORTH_CHECKING_AFTER = 200_000   # tokens counted before judging whether pieces repeat enough
# New pieces per token counted above which whole rows are tokenized instead. Learning a piece is one
# short encode (~10-14 µs) against ~2 µs of CPU per token for whole rows, which the Rust tokenizer
# also spreads over both cores: measured on a 100k-row file where 7 % of pieces were new, pieces
# took 46 s against ~30 s for whole rows; on ordinary text (0.05 % new) they take a fifth.
MAX_NEW_SHARE = 0.04


def _eligible(spec: dict[str, Any]) -> bool:
    if spec.get("normalizer") is not None:
        return False
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or not pre.get("use_regex", True):
        return False
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("dropout"):
        return False
    post = spec.get("post_processor")
    posts = (post.get("processors") or []) if post and post.get("type") == "Sequence" else [post]
    for p in posts:
        if p is None or p.get("type") == "TemplateProcessing":
            continue
        if p.get("type") == "ByteLevel" and not p.get("trim_offsets", True):
            continue
        return False  # offset trimming empties whitespace tokens, which changes the loss mask
    return all(not (t.get("lstrip") or t.get("rstrip") or t.get("single_word"))
               for t in spec.get("added_tokens") or [])


class _Counts(dict):
    """Piece → token count; an unknown piece counts 0 and is noted, to be learnt in a batch."""

    def __init__(self, events: list[int], prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix   # the counted string is prefix + key (saves building " " + word)
        self.missing: set[str] = set()
        self.events = events   # shared tally of lookups that missed (a row with any is counted again)

    def __missing__(self, key: str) -> int:
        self.missing.add(key)
        self.events[0] += 1
        return 0


class PieceCounter:
    """Token counts of texts for one tokenizer; ``counts`` is exact or None for a row.

    This class holds the GPT-2 argument; ``piecekinds`` extends it to other tokenizer kinds by
    overriding where a text may be cut (``additive_at``, ``_piece_re``) and how a template is planned."""

    _piece_re = _PIECE
    _odd_space: Callable[[str], Any] | None = _OTHER_SPACE.search   # rows holding such a space go whole

    def __init__(self, backend, specials: list[str]) -> None:
        self.backend = backend
        self._learner = backend   # what tokenizes the pieces noted missing
        self.specials = tuple(sorted(specials, key=len, reverse=True))  # leftmost-longest, like the tokenizer
        alternatives = "|".join(map(re.escape, self.specials))
        self._split = re.compile(f"({alternatives})") if specials else None
        starts = sorted({t[0] for t in specials})
        # A cheap "could hold an added token" test: one substring check when they share a first
        # character (<|im_start|>, <|im_end|> …), else a character-class search.
        if len(starts) == 1:
            self._may_hold_special = lambda s, c=starts[0]: c in s
        else:
            self._may_hold_special = re.compile("[" + "".join(map(re.escape, starts)) + "]").search
        self._events = [0]
        self._word, self._spaced, self._piece = _Counts(self._events), _Counts(self._events, " "), _Counts(self._events)
        self._memo: dict[str, int] = {}   # parts holding added tokens: the template's literals, mostly
        self._seen_tokens = self._learnt = 0
        with_special = backend.encode("a", add_special_tokens=True).ids
        plain = backend.encode("a", add_special_tokens=False).ids
        at = next((i for i in range(len(with_special)) if with_special[i:i + len(plain)] == plain), 0)
        self.extra = {False: (0, 0), True: (at, len(with_special) - at - len(plain))}

    @classmethod
    def for_tokenizer(cls, tokenizer) -> PieceCounter | None:
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        if backend is None:
            return None
        try:
            spec = json.loads(backend.to_str())
        except Exception:
            return None
        if cls is PieceCounter and not _eligible(spec):
            from studio.core.datasets.piecekinds import counter_for_spec  # the kinds build on this class

            return counter_for_spec(backend, spec)
        return cls(backend, [t["content"] for t in spec.get("added_tokens") or [] if t.get("content")])

    # -- one string -------------------------------------------------------------------------
    def _simple(self, s: str) -> int:
        """Tokens of text whose only whitespace is single spaces."""
        parts = s.split(" ")
        first = self._word[parts[0]] if parts[0] else 0
        return first + sum(map(self._spaced.__getitem__, islice(parts, 1, None)))

    def _segment(self, s: str) -> int:
        """Tokens of text without added tokens. Written out, not looped: this runs for every
        message of every row, and substring tests run at memchr speed."""
        if "\n" in s or "  " in s or "\t" in s or "\r" in s or "\x0b" in s or "\x0c" in s:
            return sum(map(self._piece.__getitem__, self._piece_re.findall(s)))
        return self._simple(s)

    def count(self, s: str) -> int:
        """Tokens of ``s`` on its own (no post-processor tokens). Unknown pieces count 0 until learnt."""
        if self._split is None or not self._may_hold_special(s) or not self._split.search(s):
            return self._segment(s)
        got = self._memo.get(s)
        if got is not None:
            return got
        missed = self._events[0]
        n = 0
        for k, part in enumerate(self._split.split(s)):
            if k % 2:
                n += 1
            elif part:
                n += self._segment(part)
        if self._events[0] == missed:
            if len(self._memo) >= MAX_MEMO:
                self._memo.clear()
            self._memo[s] = n
        return n

    def additive_at(self, text: str, p: int) -> bool:
        """Whether tokens(text[:p]) + tokens(text[p:]) == tokens(text)."""
        if p <= 0 or p >= len(text):
            return True
        x_ws, y_ws = text[p - 1] in _WS_SET, text[p] in _WS_SET
        if y_ws and not x_ws:
            return True               # a word ends, whitespace begins: nothing joins across
        if x_ws and not y_ws and text[p - 1] != " " and (p == 1 or text[p - 2] not in _WS_SET):
            return True               # one newline/tab before a word is a pre-token of its own
        return bool(self.specials) and (text.startswith(self.specials, p) or text.endswith(self.specials, 0, p))

    # -- rows --------------------------------------------------------------------------------
    def _misses(self) -> int:
        return self._events[0]

    def _learn(self) -> int:
        """Tokenize every piece noted missing, in one batch. Never clears (see ``_trim``)."""
        texts: list[str] = []
        owners: list[tuple[_Counts, str]] = []
        for cache in (self._word, self._spaced, self._piece):
            for key in cache.missing:
                texts.append(cache.prefix + key)
                owners.append((cache, key))
            cache.missing = set()
        if texts:
            for (cache, key), enc in zip(owners, self._learner.encode_batch(texts, add_special_tokens=False), strict=True):
                cache[key] = len(enc.ids)
        return len(texts)

    def _trim(self) -> None:
        """Bound the caches' memory — only between batches: a row counted again after ``_learn``
        must find every piece it found the first time."""
        if len(self._word) + len(self._spaced) + len(self._piece) > MAX_CACHED:
            for cache in (self._word, self._spaced, self._piece):
                cache.clear()
            self._memo.clear()

    def _row(self, text: str, spans: list[tuple[int, int]], cuts: list[int], specials: bool,
             max_len: int) -> tuple[int, int, int] | None:
        if self._odd_space is not None and not text.isascii() and self._odd_space(text):
            return None
        if any(b <= a for a, b in spans):
            return None  # an empty span still marks a token that straddles it; leave that to the tokenizer
        edges = {e for span in spans for e in span}
        if not all(self.additive_at(text, e) for e in edges):
            return None
        points = sorted({0, len(text), *edges, *(c for c in cuts if 0 < c < len(text) and self.additive_at(text, c))})
        upto = {0: 0}
        n = 0
        for a, b in pairwise(points):
            n += self._count_part(text, a, b)
            upto[b] = n
        head, tail = self.extra[specials]
        full = kept = 0
        for a, b in spans:
            before, through = upto[a], upto[b]
            full += through - before
            kept += max(0, min(through, max_len - head) - before)
        return head + n + tail, full, kept

    def _count_part(self, text: str, a: int, b: int) -> int:
        """Tokens of ``text[a:b]`` inside ``text`` (kinds whose counts depend on what precedes override it)."""
        return self.count(text[a:b])

    @property
    def worthwhile(self) -> bool:
        """False once most pieces turn out to be new (ids, hashes, base64 …): then every piece is
        tokenized anyway, and tokenizing whole rows is cheaper than this bookkeeping."""
        return self._seen_tokens < WORTH_CHECKING_AFTER or self._learnt < MAX_NEW_SHARE * self._seen_tokens

    def each(self, rows: list, fn: Callable[[Any], tuple[int, int, int] | None]) -> list[tuple[int, int, int] | None]:
        """``fn`` over rows; rows that met unknown pieces are counted again once those are learnt."""
        self._trim()
        out: list[tuple[int, int, int] | None] = []
        redo: list[int] = []
        for k, row in enumerate(rows):
            before = self._events[0]
            out.append(fn(row))
            if self._events[0] != before:
                redo.append(k)
        if redo:
            self._learnt += self._learn()
            for k in redo:
                before = self._events[0]
                out[k] = fn(rows[k])
                if self._events[0] != before:   # cannot happen without a clear; never trust a 0 guess
                    out[k] = None
        self._seen_tokens += sum(r[0] for r in out if r is not None)
        return out

    def counts(self, items: list[tuple[str, list[tuple[int, int]], list[int], bool]],
               max_len: int) -> list[tuple[int, int, int] | None]:
        """(full length, loss tokens, loss tokens within max_len) per (text, loss spans, template
        cuts, post-processor tokens on), exactly as tokenizing the text and masking by offsets gives;
        None where that cannot be proven without tokenizing."""
        return self.each(items, lambda item: self._row(*item, max_len))

    # -- chat rows by template plan ------------------------------------------------------------
    def plan(self, literals: list[str], edges: list[tuple[tuple[int, int], tuple[int, int], bool]]) -> PlanCounts | None:
        """Counts for rows rendered as ``literals[0] + content0 + literals[1] + …``, whose loss spans
        run between the given (literal index, offset) edges. None if the template's shape does
        not allow counting the parts on their own."""
        n = len(literals) - 1
        if n < 1 or not edges:
            return None
        left: list[int] = []
        right: list[int] = []
        for k in range(n):
            lit, nxt = literals[k], literals[k + 1]
            if (k == 0 and not lit) or (lit and lit.endswith(self.specials or ("\0",))):
                left.append(_ANY)
            elif lit and lit[-1] not in _WS_SET:
                left.append(_FIRST_SPACE)
            elif lit and lit[-1] != " " and len(lit) >= 2 and lit[-2] not in _WS_SET:
                left.append(_FIRST_WORD)
            else:
                return None
            if (k + 1 == n and not nxt) or (nxt and nxt.startswith(self.specials or ("\0",))):
                right.append(_ANY)
            elif nxt and nxt[0] in _WS_SET:
                right.append(_LAST_WORD)
            elif nxt:
                right.append(_LAST_NEWLINE)
            else:
                return None
        cuts = edge_cuts(literals, edges, self._additive_inside)
        if cuts is None or any(b <= a for a, b, _ in edges):
            return None
        pieces = [[lit[x:y] for x, y in pairwise([0, *sorted(c), len(lit)])] for lit, c in zip(literals, cuts, strict=True)]
        tokens = self._literal_tokens(pieces)
        literal_tokens, spans = span_positions(pieces, tokens, edges)
        return PlanCounts(self, left, right, literal_tokens, spans)

    def _additive_inside(self, lit: str, o: int) -> bool:
        """A cut inside a literal whose neighbourhood lies wholly in the literal."""
        if self.specials and (lit.startswith(self.specials, o) or lit.endswith(self.specials, 0, o)):
            return True
        return 2 <= o <= len(lit) - 1 and self.additive_at(lit, o)

    def _literal_tokens(self, pieces: list[list[str]]) -> list[list[int]]:
        before = self._events[0]
        tokens = [[self.count(p) for p in row] for row in pieces]
        if self._events[0] != before:
            self._learn()
            tokens = [[self.count(p) for p in row] for row in pieces]
        return tokens


_ANY, _FIRST_SPACE, _FIRST_WORD, _LAST_WORD, _LAST_NEWLINE = range(5)


def edge_cuts(literals: list[str], edges: list[tuple[tuple[int, int], tuple[int, int], bool]],
              additive: Callable[[str, int], bool]) -> list[set[int]] | None:
    """Where each literal must be cut so loss-span edges inside it fall between counted parts; None
    when a cut could change the tokens around it (``additive`` is the counter kind's rule)."""
    cuts: list[set[int]] = [set() for _ in literals]
    for a, b, _trim in edges:
        for j, o in (a, b):
            if 0 < o < len(literals[j]):
                if not additive(literals[j], o):
                    return None
                cuts[j].add(o)
    return cuts


def span_positions(pieces: list[list[str]], tokens: list[list[int]],
                   edges: list[tuple[tuple[int, int], tuple[int, int], bool]],
                   ) -> tuple[int, list[tuple[tuple[int, int], tuple[int, int], int]]]:
    """(tokens in all literals, loss spans as (content index, tokens before)) for a template plan.

    ``pieces[j]`` cut literal ``j`` where the plan counts it in parts and ``tokens[j]`` are their
    counts; an edge (literal index, character offset) becomes the tokens of all literals before
    it plus those of its own literal's pieces before the offset. Shared by every counter kind:
    where the counts come from differs, how a span edge is placed does not.
    """
    lit_before = [0, *accumulate(sum(t) for t in tokens)]

    def at(edge: tuple[int, int]) -> tuple[int, int]:
        j, o = edge
        inside, pos = 0, 0
        for piece, t in zip(pieces[j], tokens[j], strict=True):
            if pos >= o:
                break
            inside += t
            pos += len(piece)
        return j, lit_before[j] + inside

    return lit_before[-1], [(at(a), at(b), b[0] - 1 if trim else -1) for a, b, trim in edges]


class PlanCounts:
    """Per-row counting for one template shape: literals are counted once, contents per row."""

    def __init__(self, counter: PieceCounter, left: list[int], right: list[int], literal_tokens: int,
                 spans: list[tuple[tuple[int, int], tuple[int, int], int]]) -> None:
        self.counter, self.left, self.right = counter, left, right
        self.literal_tokens, self.spans = literal_tokens, spans

    def count(self, contents: list[str], max_len: int) -> tuple[int, int, int] | None:
        counts: list[int] = []
        for k, c in enumerate(contents):
            if not c or (not c.isascii() and _OTHER_SPACE.search(c)):
                return None
            need = self.left[k]
            if need and (c[0] in _WS_SET) != (need == _FIRST_SPACE):
                return None
            need = self.right[k]
            if need == _LAST_WORD and c[-1] in _WS_SET:
                return None
            if need == _LAST_NEWLINE and not (c[-1] in _WS_SET and c[-1] != " " and len(c) >= 2 and c[-2] not in _WS_SET):
                return None
            counts.append(self.counter.count(c))
        return self._finish(contents, counts, max_len)

    def _finish(self, contents: list[str], counts: list[int], max_len: int) -> tuple[int, int, int] | None:
        """The row's counts from its contents' token counts and the plan's span edges."""
        upto = [0, *accumulate(counts)]
        full = kept = 0
        for (ja, ta), (jb, tb), trim in self.spans:
            if trim >= 0 and contents[trim][-1] in "\n ":
                return None   # the span end would be trimmed into the content: not this shape
            before, through = ta + upto[ja], tb + upto[jb]
            full += through - before
            kept += max(0, min(through, max_len) - before)
        return self.literal_tokens + upto[-1], full, kept


__all__ = ["PieceCounter", "PlanCounts"]
