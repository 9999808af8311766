"""``render_example`` for many rows at once: the same text, spans and mask, a lot less work.

``render_example`` runs the chat template (jinja) three times per single-turn row and tokenizes one
text at a time; over 100k rows that is minutes. Here the template runs once per *role sequence*:
it is rendered with unique placeholder contents, which splits its output into fixed literal pieces
around each content, and every row with those roles is then assembled by string concatenation.
For byte-level BPE tokenizers (GPT-2 family, SmolLM2) the counts need no tokenizer pass at all: the
literals are counted once per plan and each content from cached word counts (``piececount``).
Other rows are tokenized in batches (the Rust tokenizer works on both cores and releases the GIL),
and their loss-mask counts come from a binary search over token offsets, not a loop per token.

Exactness is kept, not assumed: templates that look at content (``split``, ``in content``,
``replace`` …) never take the shortcut; a plan is only used when two different placeholder sets give
identical literals; and a sample of rows is always checked against ``render_example`` itself — on
any mismatch the whole batch is redone the slow way. The one look at content allowed is
``message['content'] | trim`` (Llama-3, Gemma): Jinja's ``trim`` is ``str.strip()``, so the plan
finds which contents come out trimmed (their placeholders lose the whitespace at both ends) and
strips those contents before assembling the row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate

from studio.core.datasets.formats import Example
from studio.core.datasets.piececount import PieceCounter, PlanCounts
from studio.core.datasets.render import (
    Rendered,
    _assistant_spans,
    char_budget,
    content_chars,
    encode_bounded,
    ensure_chat_template,
    masked,
    render_example,
)
from studio.core.datasets.textcheck import MarkerFinder

# Template constructs that make the output depend on what a message says, not only its role.
# (Concatenating a content with text, ``content + '<|im_end|>'``, is not one: the placeholder plan
# reproduces it, and two placeholder sets must agree before a plan is used.)
_CONTENT_SENSITIVE = re.compile(
    r"content\s*(\||\.|\[|\bin\b|==|!=)|\bin\s+(message|m|msg)\s*\[\s*['\"]content|"
    r"\|\s*(trim|replace|split|wordcount|truncate|striptags)\b|\.(strip|split|startswith|endswith|replace)\(|"
    r"reasoning|tool_calls|</think>"
)
# ``message['content'] | trim`` (or ``message.content | trim``) with nothing chained after it: Jinja's
# ``trim`` without arguments is ``str.strip()``, which a plan can apply itself.
_TRIMMED_CONTENT = re.compile(r"""(\.content|\[\s*['"]content['"]\s*\])\s*\|\s*trim\b(?!\s*[(|.\[])""")
VERIFY_EVERY = 500


def _sentinel(k: int, variant: int) -> str:
    # Whitespace at both ends, different in each variant: a template that trims content is seen
    # (only the core survives), and one that strips a single side leaves variant-dependent literals.
    # Letters of both cases: a filter that changes case (``upper``, ``title`` …) cannot keep it intact.
    left, right = ((" \n", "\n "), ("\t \u3000", " \r\n\t"))[variant]
    return f"{left}\ue000{k}Aa{'#' * (variant * 3 + k % 5)}\ue001{right}"


@dataclass
class _Plan:
    literals: list[str]
    sent_lens: list[int]
    # per assistant turn: (before_len, through_len) measured in the placeholder rendering
    spans: list[tuple[int, int]]
    sent_ends: list[int]      # end offset of each placeholder in the placeholder rendering
    trimmed: tuple[bool, ...] = ()   # per content: the template emits it ``| trim``-med

    def fill(self, contents: Sequence[str]) -> list[str] | None:
        """The contents as the template emits them (stripped where it trims), or None when one is
        empty: templates test contents for truth ("{% if system %}"), so an empty one may change
        the literals, and a trimmed one may be empty only after trimming."""
        if not all(contents):
            return None
        if any(self.trimmed):
            contents = [c.strip() if t else c for c, t in zip(contents, self.trimmed, strict=True)]
            if not all(contents):
                return None
        return list(contents)

    def _map(self, pos: int, deltas: list[int]) -> int:
        out = pos
        for end, d in zip(self.sent_ends, deltas, strict=True):
            if end <= pos:
                out += d
            else:
                break
        return out

    def literal_edges(self) -> list[tuple[tuple[int, int], tuple[int, int], bool]] | None:
        """Each loss span's start and end as (literal index, offset in it), the end trimmed as
        ``apply`` trims it; the flag says the trim reached the content before (row-dependent).
        None when an edge falls inside a content."""
        starts, pos = [], 0
        for j, lit in enumerate(self.literals):
            starts.append(pos)
            pos += len(lit) + (self.sent_lens[j] if j < len(self.sent_lens) else 0)

        def locate(p: int) -> tuple[int, int] | None:
            for j, lit in enumerate(self.literals):
                if starts[j] <= p <= starts[j] + len(lit):
                    return j, p - starts[j]
            return None

        out = []
        for before, through in self.spans:
            a, b = locate(before), locate(through)
            if a is None or b is None:
                return None
            j, o = b
            while o > 0 and self.literals[j][o - 1] in "\n ":
                o -= 1
            out.append((a, (j, o), o == 0 and j > 0))
        return out

    def apply(self, contents: Sequence[str]) -> tuple[str, list[tuple[int, int]], list[int]] | None:
        """Text, loss spans, and where each literal/content part ends."""
        filled = self.fill(contents)
        if filled is None:
            return None
        contents = filled
        parts = [self.literals[0]]
        for c, lit in zip(contents, self.literals[1:], strict=True):
            parts.append(c)
            parts.append(lit)
        text = "".join(parts)
        deltas = [len(c) - n for c, n in zip(contents, self.sent_lens, strict=True)]
        out: list[tuple[int, int]] = []
        cursor = 0
        for before, through in self.spans:
            start, end = self._map(before, deltas), self._map(through, deltas)
            if start < cursor:
                return None
            while end > start and text[end - 1] in "\n ":
                end -= 1
            out.append((start, end))
            cursor = end
        return text, out, list(accumulate(map(len, parts)))


class ChatRenderer:
    """Text and loss spans of Examples, exactly as ``render_example`` computes them."""

    def __init__(self, tokenizer) -> None:
        ensure_chat_template(tokenizer)
        self.tokenizer = tokenizer
        template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
        self.shortcut = bool(template) and not _CONTENT_SENSITIVE.search(_TRIMMED_CONTENT.sub(" ", template))
        self._may_trim = bool(_TRIMMED_CONTENT.search(template))
        self._plans: dict[tuple[str, ...], _Plan | None] = {}
        # Counts without a full tokenizer pass, for byte-level BPE tokenizers (see piececount).
        self.pieces = PieceCounter.for_tokenizer(tokenizer)
        self._plan_counts: dict[tuple[str, ...], PlanCounts | None] = {}
        self._markers: MarkerFinder | None = None

    @property
    def markers(self) -> MarkerFinder:
        """The tokenizer's added tokens and its template's markup, to find inside contents."""
        if self._markers is None:
            self._markers = MarkerFinder.for_tokenizer(self.tokenizer)
        return self._markers

    def _render(self, msgs: list[dict], gen: bool = False) -> str:
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    def _build(self, roles: tuple[str, ...]) -> _Plan | None:
        try:
            renders = []
            for variant in (0, 1):
                sents = [_sentinel(k, variant) for k in range(len(roles))]
                msgs = [{"role": r, "content": s} for r, s in zip(roles, sents, strict=True)]
                full = self._render(msgs)
                # Each placeholder appears once, intact or (where the template trims) as its core.
                trimmed = tuple(self._may_trim and s not in full for s in sents)
                sents = [s.strip() if t else s for s, t in zip(sents, trimmed, strict=True)]
                literals, ends, pos = [], [], 0
                for s in sents:
                    at = full.find(s, pos)
                    if at < 0 or full.count(s) != 1:
                        return None
                    literals.append(full[pos:at])
                    pos = at + len(s)
                    ends.append(pos)
                literals.append(full[pos:])
                spans = []
                for i, role in enumerate(roles):
                    if role != "assistant":
                        continue
                    before = self._render(msgs[:i], gen=True) if i else ""
                    through = self._render(msgs[: i + 1])
                    if not (full.startswith(through) and through.startswith(before)):
                        return None
                    if any(e - len(s) < p < e for s, e in zip(sents, ends, strict=True) for p in (len(before), len(through))):
                        return None
                    spans.append((len(before), len(through)))
                renders.append((literals, [len(s) for s in sents], spans, ends, trimmed))
        except Exception:
            return None
        (lit0, lens0, spans0, ends0, trim0), (lit1, lens1, spans1, ends1, trim1) = renders
        if lit0 != lit1 or trim0 != trim1:
            return None
        # The span offsets must move exactly with the placeholder lengths.
        plan = _Plan(lit0, lens0, spans0, ends0, trim0)
        other = _Plan(lit1, lens1, spans1, ends1, trim1)
        probe = [f"c{k}" for k in range(len(roles))]
        if plan.apply(probe) != other.apply(probe):
            return None
        return plan

    def text_and_spans(self, example: Example) -> tuple[str, list[tuple[int, int]]]:
        text, spans, _cuts = self.layout(example)
        return text, spans

    def _plan(self, roles: tuple[str, ...]) -> _Plan | None:
        if roles not in self._plans:
            self._plans[roles] = self._build(roles)
        return self._plans[roles]

    def quick_counts(self, example: Example, max_len: int) -> tuple[int, int, int] | None:
        """(full, trained, trained within max_len) of a chat row from its contents alone, when the
        template plan and the tokenizer allow it (see ``PieceCounter.plan``); else None."""
        if self.pieces is None or not self.shortcut or not example.is_chat:
            return None
        roles = tuple(r for r, _ in example.messages)
        if roles not in self._plan_counts:
            plan = self._plan(roles)
            edges = plan.literal_edges() if plan is not None else None
            self._plan_counts[roles] = self.pieces.plan(plan.literals, edges) if plan is not None and edges else None
        counter = self._plan_counts[roles]
        if counter is None:
            return None
        contents = self._plans[roles].fill([c for _, c in example.messages])  # type: ignore[union-attr]
        return counter.count(contents, max_len) if contents is not None else None

    def layout(self, example: Example) -> tuple[str, list[tuple[int, int]], list[int]]:
        """Text, loss spans, and the template/content boundaries where they are known (else [])."""
        if not example.is_chat:
            text = (example.text or "") + (self.tokenizer.eos_token or "")
            return text, [(0, len(text))], [len(text) - len(self.tokenizer.eos_token or "")]
        if self.shortcut:
            plan = self._plan(tuple(r for r, _ in example.messages))
            if plan is not None:
                done = plan.apply([c for _, c in example.messages])
                if done is not None:
                    return done
        return (*_assistant_spans(example, self.tokenizer), [])


@dataclass(frozen=True)
class TokenCounts:
    """What the validator needs per row, without building label lists."""

    full_length: int
    trained_full: int
    trained_kept: int     # loss-carrying tokens inside the first max_len tokens
    capped: bool = False  # only the start of a very long row was tokenized: the first two are lower bounds
    # (where, marker) of special tokens / template markup found in the contents; not part of the counts
    markers: tuple[tuple[str, str], ...] = field(default=(), compare=False)


def _offsets_at(enc, t: int) -> tuple[int, int]:
    got = enc.token_to_chars(t)
    return (0, 0) if got is None else got


def _first_ending_after(enc, a: int, end_real: int) -> int:
    """Index of the first token whose end offset is > a (offsets never decrease)."""
    t = enc.char_to_token(a) if a >= 0 else None
    if t is not None and t < end_real and _offsets_at(enc, t)[1] > a and (t == 0 or _offsets_at(enc, t - 1)[1] <= a):
        return t
    lo, hi = 0, end_real
    while lo < hi:
        mid = (lo + hi) // 2
        if _offsets_at(enc, mid)[1] > a:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _last_starting_before(enc, b: int, end_real: int) -> int:
    """Index of the last token whose start offset is < b (-1 if none)."""
    t = enc.char_to_token(b - 1) if b > 0 else None
    if t is not None and t < end_real and _offsets_at(enc, t)[0] < b and (t + 1 >= end_real or _offsets_at(enc, t + 1)[0] >= b):
        return t
    lo, hi = 0, end_real
    while lo < hi:
        mid = (lo + hi) // 2
        if _offsets_at(enc, mid)[0] < b:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def _counts(enc, spans: list[tuple[int, int]], max_len: int) -> TokenCounts:
    """Loss-carrying tokens as ``render_example`` marks them (token overlaps a span and is not
    empty), found at the span edges instead of by walking every token."""
    n = len(enc.ids)
    end_real = n
    while end_real > 0:
        s, e = _offsets_at(enc, end_real - 1)
        if s != e:
            break
        end_real -= 1  # tokens a post-processor appends (e.g. EOS) carry empty offsets
    full = kept = 0
    last_hi = -1
    for a, b in spans:
        lo = max(_first_ending_after(enc, a, end_real), last_hi + 1)
        hi = _last_starting_before(enc, b, end_real)
        if hi >= lo:
            full += hi - lo + 1
            kept += max(0, min(hi, max_len - 1) - lo + 1)
            last_hi = hi
    return TokenCounts(n, full, kept)


def _backend(tokenizer):
    if not getattr(tokenizer, "is_fast", False):
        return None
    return getattr(tokenizer, "backend_tokenizer", None)


def _slow_counts(example: Example, tokenizer, max_len: int) -> TokenCounts:
    r = render_example(example, tokenizer, max_len)
    return TokenCounts(r.full_length, r.trained_tokens_full, r.trained_tokens, r.capped)


def _long_row_counts(example: Example, renderer: ChatRenderer, backend, max_len: int) -> TokenCounts:
    """A row beyond ``char_budget``: counted on the same prefix ``render_example`` tokenizes."""
    text, spans, _cuts = renderer.layout(example)
    enc, capped = encode_bounded(example, text, max_len,
                                 lambda t: backend.encode(t, add_special_tokens=not example.is_chat),
                                 lambda e: len(e.ids))
    return replace(_counts(enc, spans, max_len), capped=capped)


def token_counts(
    examples: Sequence[Example],
    tokenizer,
    max_len: int,
    renderer: ChatRenderer | None = None,
    on_error: Callable[[int, Exception], None] | None = None,
) -> list[TokenCounts | None]:
    """Per-example token counts equal to ``render_example``'s; None where rendering fails
    (``on_error(index, exc)`` is told why, e.g. a chat template that refuses the role order).
    Each count also carries the special tokens and template markers found in that row's text."""
    renderer = renderer or ChatRenderer(tokenizer)
    out = _plain_counts(examples, tokenizer, max_len, renderer, on_error)
    finder = renderer.markers
    for i, got in enumerate(out):
        if got is not None:
            found = finder.find(examples[i])
            if found:
                out[i] = replace(got, markers=found)
    return out


def _plain_counts(examples: Sequence[Example], tokenizer, max_len: int, renderer: ChatRenderer,
                  on_error: Callable[[int, Exception], None] | None) -> list[TokenCounts | None]:
    backend = _backend(tokenizer)
    out: list[TokenCounts | None] = [None] * len(examples)
    budget = char_budget(max_len)
    # Very long rows never reach the piece counter or a whole-text batch: they are cut first.
    long_rows = {i for i, ex in enumerate(examples) if content_chars(ex) > budget} if backend is not None else set()
    for i in long_rows:
        try:
            out[i] = _long_row_counts(examples[i], renderer, backend, max_len)
        except Exception as err:
            if on_error:
                on_error(i, err)
    pieces = renderer.pieces if renderer.pieces is not None and renderer.pieces.worthwhile else None
    if backend is not None and pieces is not None:
        def quick(ex: Example | None) -> tuple[int, int, int] | None:
            if ex is None:
                return None
            try:
                return renderer.quick_counts(ex, max_len)
            except Exception:
                return None   # the row takes the general path below, which reports its error

        short = [None if i in long_rows else ex for i, ex in enumerate(examples)]
        for i, got in enumerate(pieces.each(short, quick)):
            if got is not None:
                out[i] = TokenCounts(*got)
    items: list[tuple[int, str, list[tuple[int, int]], list[int], bool]] = []
    for i, ex in enumerate(examples):
        if out[i] is not None or i in long_rows:
            continue
        try:
            if backend is None:
                out[i] = _slow_counts(ex, tokenizer, max_len)
                continue
            items.append((i, *renderer.layout(ex), ex.is_chat))
        except Exception as err:
            if on_error:
                on_error(i, err)
    if backend is None:
        return out
    if pieces is not None:
        counted = pieces.counts([(t, s, c, not chat) for _, t, s, c, chat in items], max_len)
        for (i, *_), got in zip(items, counted, strict=True):
            if got is not None:
                out[i] = TokenCounts(*got)
        items = [it for it, got in zip(items, counted, strict=True) if got is None]
    for is_chat in (True, False):
        batch = [it for it in items if it[4] == is_chat]
        if not batch:
            continue
        encs = backend.encode_batch([t for _, t, _, _, _ in batch], add_special_tokens=not is_chat)
        for (i, _, spans, _, _), enc in zip(batch, encs, strict=True):
            out[i] = _counts(enc, spans, max_len)
    # Trust, but verify: a sample always goes the slow, obviously-right way.
    for i in range(0, len(examples), VERIFY_EVERY):
        for j in (i, i + 1, i + VERIFY_EVERY // 2):
            if j < len(examples) and out[j] is not None and out[j] != _slow_counts(examples[j], tokenizer, max_len):
                renderer.shortcut = False
                renderer.pieces = None
                return [_safe_slow(ex, tokenizer, max_len, k, on_error) for k, ex in enumerate(examples)]
    return out


def _safe_slow(example: Example, tokenizer, max_len: int, index: int, on_error) -> TokenCounts | None:
    try:
        return _slow_counts(example, tokenizer, max_len)
    except Exception as err:
        if on_error:
            on_error(index, err)
        return None


def render_batch(examples: Sequence[Example], tokenizer, max_len: int) -> list[Rendered]:
    """``[render_example(e, tokenizer, max_len) for e in examples]``, with one template run per role
    sequence and one batched tokenizer call. For building training features from many rows."""
    backend = _backend(tokenizer)
    if backend is None:
        return [render_example(e, tokenizer, max_len) for e in examples]
    renderer = ChatRenderer(tokenizer)
    budget = char_budget(max_len)
    # Very long rows are cut before tokenizing, one at a time (see ``render.encode_bounded``).
    out: list[Rendered | None] = [render_example(e, tokenizer, max_len) if content_chars(e) > budget else None
                                  for e in examples]
    prepared = [renderer.text_and_spans(e) if out[i] is None else ("", []) for i, e in enumerate(examples)]
    for is_chat in (True, False):
        idx = [i for i, e in enumerate(examples) if e.is_chat == is_chat and out[i] is None]
        if not idx:
            continue
        encs = backend.encode_batch([prepared[i][0] for i in idx], add_special_tokens=not is_chat)
        for i, enc in zip(idx, encs, strict=True):
            text, spans = prepared[i]
            out[i] = masked(text, list(enc.ids), [tuple(o) for o in enc.offsets], spans, max_len)
    return [r for r in out if r is not None]
