""""What the model sees" for one row: the rendered text cut into token pieces that carry loss or not.

``render_example`` gives the text after the chat template, each kept token's character span and
its label. A view wants the opposite direction: for every character of the text, is it trained,
masked, or lost to truncation? ``segments`` answers that once, covering the text end to end, so
the GUI only paints and the tests can check the answer without looking at pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from studio.core.datasets.formats import Example
from studio.core.datasets.render import IGNORE_INDEX, Rendered, render_example

Kind = Literal["trained", "masked", "cut"]


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    kind: Kind
    token: int | None     # index of the token this text belongs to; None for text no kept token covers


@dataclass(frozen=True)
class RowView:
    """One row as the trainer sees it, ready to paint."""

    text: str
    segments: list[Segment]
    total_tokens: int      # before truncation
    kept_tokens: int       # after truncation to max_len
    trained_tokens: int    # loss-carrying tokens that survive truncation
    trained_full: int      # loss-carrying tokens before truncation
    max_len: int

    @property
    def masked_tokens(self) -> int:
        return self.kept_tokens - self.trained_tokens

    @property
    def cut_tokens(self) -> int:
        return self.total_tokens - self.kept_tokens

    def text_of(self, kind: Kind) -> str:
        return "".join(self.text[s.start:s.end] for s in self.segments if s.kind == kind)


def segments(rendered: Rendered) -> list[Segment]:
    """Consecutive, non-overlapping pieces covering ``rendered.text``.

    Byte-level tokenizers can give two tokens the same character (a multi-byte character split
    in two); the character goes to the first. Text between tokens (nothing maps to it) belongs
    to the token before it. Text after the last kept token is ``cut`` when the row was truncated.
    """
    text = rendered.text
    out: list[Segment] = []
    cursor = 0
    for t, ((s, e), label) in enumerate(zip(rendered.offsets, rendered.labels, strict=True)):
        if e <= s:
            continue  # special tokens appended by a post-processor cover no text
        s = max(s, cursor)
        if e <= s:
            continue
        kind: Kind = "trained" if label != IGNORE_INDEX else "masked"
        if s > cursor:
            if out:
                prev = out[-1]
                out[-1] = Segment(prev.start, s, prev.kind, prev.token)
            else:
                out.append(Segment(0, s, "masked", None))
        out.append(Segment(s, e, kind, t))
        cursor = e
    if cursor < len(text):
        tail: Kind = "cut" if rendered.truncated else (out[-1].kind if out else "masked")
        out.append(Segment(cursor, len(text), tail, None))
    return out


def view_row(example: Example, tokenizer, max_len: int) -> RowView:
    """Render ``example`` exactly as training will and describe every character of it."""
    rendered = render_example(example, tokenizer, max_len)
    return RowView(
        text=rendered.text,
        segments=segments(rendered),
        total_tokens=rendered.full_length,
        kept_tokens=len(rendered.input_ids),
        trained_tokens=rendered.trained_tokens,
        trained_full=rendered.trained_tokens_full,
        max_len=max_len,
    )


@dataclass(frozen=True)
class PairView:
    """A preference row as preference training sees it: the shared prompt once, then each side's answer.

    Each part is a ``RowView`` of its own slice of the rendered text; a side's tokens all carry the
    loss (``RenderedPair.labels``), and text the max length cuts off is ``cut`` on that side."""

    prompt: RowView
    chosen: RowView
    rejected: RowView
    usable: bool   # False when a side kept no answer token: training skips the pair

    def side(self, side: str) -> RowView:
        return self.chosen if side == "chosen" else self.rejected


def _slice(rendered: Rendered, segs: list[Segment], first: int, last: int, shift: int, *,
           total: int, kept: int, trained: int, trained_full: int, max_len: int) -> RowView:
    """Segments ``first:last`` as a view of their own text, token indexes counted from ``shift``."""
    part = segs[first:last]
    start = part[0].start if part else 0
    end = part[-1].end if part else start
    return RowView(
        text=rendered.text[start:end],
        segments=[Segment(s.start - start, s.end - start, s.kind, None if s.token is None else s.token - shift)
                  for s in part],
        total_tokens=total, kept_tokens=kept, trained_tokens=trained, trained_full=trained_full, max_len=max_len,
    )


def view_pair(pair, tokenizer, max_len: int) -> PairView:
    """Render a ``Pair`` exactly as preference training will and describe every character of it."""
    from dataclasses import replace

    from studio.core.datasets.pairrender import render_pair

    rp = render_pair(pair, tokenizer, max_len)
    n = rp.prompt_tokens
    sides: dict[str, RowView] = {}
    prompt: RowView | None = None
    for side in ("chosen", "rejected"):
        rendered = replace(rp.side(side), labels=rp.labels(side))
        segs = segments(rendered)
        # The prompt ends at the first piece of a side token (or of the text the cut lost).
        split = next((i for i, s in enumerate(segs)
                      if (s.token is not None and s.token >= n) or (s.token is None and s.kind == "cut")), len(segs))
        kept = len(rendered.input_ids) - n
        total = max(kept, rendered.full_length - n)
        sides[side] = _slice(rendered, segs, split, len(segs), n, total=total, kept=kept, trained=kept,
                             trained_full=total, max_len=max_len)
        if prompt is None:
            prompt = _slice(rendered, segs, 0, split, 0, total=n, kept=n, trained=0, trained_full=0, max_len=max_len)
    assert prompt is not None
    return PairView(prompt=prompt, chosen=sides["chosen"], rejected=sides["rejected"], usable=rp.usable)
