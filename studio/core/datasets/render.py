"""Turn an Example into exactly the tokens the model trains on, with the loss mask.

Loss is only on what the model should learn to say: assistant turns of a chat (including the
end-of-turn token, so it learns to stop), everything for raw text. The assistant spans are found by
rendering growing prefixes of the conversation with the model's own chat template, so the mask is
right for any template, not only ChatML. The same function feeds training, the validator's
truncation checks, and the "what the model sees" preview, so all three agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from studio.core.datasets.formats import Example
from studio.core.errors import StudioError

IGNORE_INDEX = -100
# A row with more content characters than ``char_budget(max_len)`` is tokenized only as far as
# needed: its first max_len tokens (all that training keeps) come from a prefix. Tokenizing a whole
# 50 MB row to keep 512 tokens took 10 GB of memory; a token covers at least one character, so a
# prefix of this many characters already holds far more than max_len tokens in any real text.
EXACT_MIN_CHARS = 100_000
CHARS_PER_KEPT_TOKEN = 64
TOKEN_MARGIN = 16            # tokens beyond max_len that a prefix must hold, so the cut cannot move them
_Enc = TypeVar("_Enc")

@dataclass(frozen=True)
class Rendered:
    text: str                     # the full text after the chat template, before truncation
    input_ids: list[int]          # after truncation to max_len
    labels: list[int]             # IGNORE_INDEX where no loss
    offsets: list[tuple[int, int]]  # character span of each kept token in ``text``
    full_length: int              # tokens before truncation
    trained_tokens_full: int      # loss-carrying tokens before truncation
    capped: bool = False          # a very long row: only its start was tokenized, so the two
                                  # counts above are lower bounds (the kept tokens are exact)

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)

    @property
    def trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


def char_budget(max_len: int) -> int:
    return max(EXACT_MIN_CHARS, CHARS_PER_KEPT_TOKEN * max_len)


def content_chars(example: Example) -> int:
    return len(example.text) if example.text is not None else sum(len(c) for _, c in example.messages)


def encode_bounded(example: Example, text: str, max_len: int, encode: Callable[[str], _Enc],
                   size: Callable[[_Enc], int]) -> tuple[_Enc, bool]:
    """``encode(text)``, or for a very long row ``encode`` of a prefix holding more than max_len
    tokens; True when the row was cut. Training, the token checks and the preview all go through
    here, so they cut the same rows at the same place and agree on every count."""
    if content_chars(example) <= char_budget(max_len):
        return encode(text), False
    cut = char_budget(max_len)
    while True:
        enc = encode(text[:cut])
        if cut >= len(text):
            return enc, False
        if size(enc) >= max_len + TOKEN_MARGIN:
            return enc, True
        cut *= 2   # tokens longer than the budget assumed (long runs of one character): take more


def ensure_chat_template(tokenizer) -> None:
    """Refuse to render chat without a template: a base model's format is the user's choice
    (``model.chat_template``, see templates.py), never a silent default."""
    if not getattr(tokenizer, "chat_template", None):
        from studio.core.datasets.templates import missing_template_message

        raise StudioError(missing_template_message(getattr(tokenizer, "name_or_path", None) or None))


def _assistant_spans(example: Example, tokenizer) -> tuple[str, list[tuple[int, int]]]:
    msgs = example.as_message_dicts()
    text = tokenizer.apply_chat_template(msgs, tokenize=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, (role, content) in enumerate(example.messages):
        if role != "assistant":
            continue
        before = tokenizer.apply_chat_template(msgs[:i], tokenize=False, add_generation_prompt=True) if i else ""
        through = tokenizer.apply_chat_template(msgs[: i + 1], tokenize=False)
        if text.startswith(through) and through.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(through)
        else:
            # Templates that rewrite earlier turns (e.g. drop reasoning): fall back to finding the content.
            start = text.find(content, cursor)
            if start < 0:
                continue
            end = start + len(content)
            eos = getattr(tokenizer, "eos_token", None)
            if eos and text.startswith(eos, end):
                end += len(eos)
        # Trailing newlines after the end-of-turn token teach nothing; keep the loss on content + EOS.
        while end > start and text[end - 1] in "\n ":
            end -= 1
        spans.append((start, end))
        cursor = end
    return text, spans


def render_example(example: Example, tokenizer, max_len: int) -> Rendered:
    if example.is_chat:
        ensure_chat_template(tokenizer)
        text, spans = _assistant_spans(example, tokenizer)
    else:
        eos = tokenizer.eos_token or ""
        text = (example.text or "") + eos
        spans = [(0, len(text))]
    enc, capped = encode_bounded(
        example, text, max_len,
        lambda t: tokenizer(t, add_special_tokens=not example.is_chat, return_offsets_mapping=True),
        lambda e: len(e["input_ids"]),
    )
    return masked(text, list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], spans, max_len,
                  capped=capped)


def masked(text: str, ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]],
           max_len: int, *, capped: bool = False) -> Rendered:
    """The loss mask over tokens of ``text``, then the cut to ``max_len``: a token carries loss when
    its characters overlap a trained span. The one place the mask is made, so a row rendered alone
    (``render_example``) and in a batch (``fastrender.render_batch``) trains on the same tokens."""
    labels = [IGNORE_INDEX] * len(ids)
    si = 0
    for t, (s, e) in enumerate(offsets):
        while si < len(spans) and spans[si][1] <= s:
            si += 1
        if si < len(spans) and e > spans[si][0] and s < spans[si][1] and e > s:
            labels[t] = ids[t]
    return Rendered(
        text=text,
        input_ids=ids[:max_len],
        labels=labels[:max_len],
        offsets=offsets[:max_len],
        full_length=len(ids),
        trained_tokens_full=sum(1 for x in labels if x != IGNORE_INDEX),
        capped=capped,
    )
