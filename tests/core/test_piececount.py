"""Token counting without tokenizing every row must give exactly the tokenizer's own counts and loss
masks; tokenizers it cannot reason about get no shortcut; the worker process changes nothing but time."""

from __future__ import annotations

import json
import random

import datasets_helpers
import pytest
from datasets_helpers import write_jsonl

from studio.core.datasets.fastrender import ChatRenderer, TokenCounts, token_counts
from studio.core.datasets.formats import Example
from studio.core.datasets.piececount import PieceCounter
from studio.core.datasets.render import render_example
from studio.core.datasets.scan import scan
from studio.core.datasets.tokencheck import TokenChecker

smol_tokenizer = datasets_helpers.smol_tokenizer
smol_tokenizer_dir = datasets_helpers.smol_tokenizer_dir

# Words, punctuation, contractions, digits, every kind of ASCII whitespace run, added tokens,
# non-ASCII letters and spaces: the places where pre-tokenization could join or split differently.
ATOMS = ["hello", "world", "Don't", "it's", "I'M", "we'll", "123", "4567", "3.14", "foo_bar", "x", "(", ")",
         ",", ".", "...", "!!", " ", "  ", "   ", "\n", "\n\n", "\t", " \n", "\n ", "\r\n", "<|im_start|>",
         "<|im_end|>", "<|endoftext|>", "é", "日本", "naïve", "—", "😀", "\u00a0", "'s", "''", "'", "ABC",
         "def(x):", "    return", "#", "--", "a-b", "\x0b", "\x0c"]


def _random_text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(ATOMS) + rnd.choice(["", " ", "", "\n"]) for _ in range(rnd.randint(0, n)))


def _masked(enc, spans, max_len):
    """What render_example computes: tokens overlapping a span, with non-empty offsets."""
    def trained(t, s, e):
        return e > s and any(s < b and e > a for a, b in spans)
    full = sum(1 for t, (s, e) in enumerate(enc.offsets) if trained(t, s, e))
    kept = sum(1 for t, (s, e) in enumerate(enc.offsets) if t < max_len and trained(t, s, e))
    return len(enc.ids), full, kept


def test_piece_counts_equal_the_tokenizer_on_hostile_text(smol_tokenizer):
    counter = PieceCounter.for_tokenizer(smol_tokenizer)
    assert counter is not None
    backend = smol_tokenizer.backend_tokenizer
    rnd = random.Random(7)
    items, want = [], []
    for _ in range(1500):
        text = _random_text(rnd, 25)
        a = rnd.randint(0, len(text))
        b = rnd.randint(a, len(text))
        spans = [(a, b)] if rnd.random() < 0.5 else [(0, len(text))]
        cuts = sorted(rnd.sample(range(len(text) + 1), min(len(text) + 1, 4)))
        items.append((text, spans, cuts, False))
        want.append(_masked(backend.encode(text, add_special_tokens=False), spans, 7))
    got = counter.counts(items, 7)
    proven = [(g, w) for g, w in zip(got, want, strict=True) if g is not None]
    assert all(g == w for g, w in proven)
    assert len(proven) > 500   # the shortcut does prove most rows, not only the trivial ones


def _random_chat(rnd: random.Random) -> Example:
    roles = rnd.choice([("user", "assistant"), ("system", "user", "assistant"),
                        ("user", "assistant", "user", "assistant")])
    contents = []
    for _ in roles:
        if rnd.random() < 0.6:   # mostly prose, as datasets are
            contents.append(" ".join(rnd.choice(["the", "cat", "sat.", "Don't", "42", "(x)", "naïve"])
                                     for _ in range(rnd.randint(1, 30))))
        else:
            contents.append(_random_text(rnd, 12))
    return Example(messages=tuple(zip(roles, contents, strict=True)), fmt="messages")


@pytest.mark.parametrize("max_len", [7, 64, 512])
def test_chat_rows_count_exactly_as_render_example(smol_tokenizer, max_len):
    rnd = random.Random(max_len)
    examples = [_random_chat(rnd) for _ in range(300)] + [Example(text=_random_text(rnd, 20), fmt="text")
                                                          for _ in range(60)]
    renderer = ChatRenderer(smol_tokenizer)
    got = token_counts(examples, smol_tokenizer, max_len, renderer=renderer)
    for ex, g in zip(examples, got, strict=True):
        r = render_example(ex, smol_tokenizer, max_len)
        assert g == TokenCounts(r.full_length, r.trained_tokens_full, r.trained_tokens), ex
    assert renderer.pieces is not None and renderer.shortcut   # nothing disagreed, so nothing was switched off
    quick = sum(renderer.quick_counts(ex, max_len) is not None for ex in examples)
    assert quick > 150   # the per-template path carries most prose rows


def _variant(tokenizer_dir, edit) -> object:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    edit(spec)
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)))


@pytest.mark.parametrize("edit", [
    lambda s: s.update(normalizer={"type": "NFC"}),
    lambda s: s.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}),
    lambda s: s["added_tokens"][0].update(lstrip=True),
    lambda s: s.update(post_processor={"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                       "use_regex": True}),
    lambda s: s["model"].update(dropout=0.1),
], ids=["normalizer", "other-pre-tokenizer", "lstrip-added-token", "trimmed-offsets", "bpe-dropout"])
def test_tokenizers_outside_the_argument_get_no_shortcut(smol_tokenizer_dir, edit):
    assert PieceCounter.for_tokenizer(_variant(smol_tokenizer_dir, edit)) is None


def test_a_wrong_piece_count_is_caught_and_everything_redone(smol_tokenizer, tmp_path, monkeypatch):
    rows = [{"instruction": f"question {i} " * 3, "output": f"answer {i}."} for i in range(1200)]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    result = scan(path)
    monkeypatch.setattr(PieceCounter, "count", lambda self, s: len(s) // 3)   # a broken shortcut
    checker = TokenChecker(smol_tokenizer, 64)
    outcomes, stopped = checker.run(result)
    assert not stopped and checker.renderer.pieces is None
    for i, ex in result.iter_examples():
        r = render_example(ex, smol_tokenizer, 64)
        assert outcomes[i] == TokenCounts(r.full_length, r.trained_tokens_full, r.trained_tokens)


def _serial_and_parallel(tokenizer, path, **kw):
    serial = TokenChecker(tokenizer, 40)
    want, _ = serial.run(scan(path))
    parallel = TokenChecker(tokenizer, 40, parallel=True, **kw)
    return want, parallel


def test_worker_process_gives_the_same_counts(smol_tokenizer, tmp_path):
    rows = [{"instruction": "long " * (i % 60), "output": f"answer {i % 500}."} for i in range(6000)]
    path = write_jsonl(tmp_path / "w.jsonl", rows)
    want, checker = _serial_and_parallel(smol_tokenizer, path)
    try:
        result = scan(path, on_examples=checker.feed)   # counted in the worker while scanning
        got, stopped = checker.run(result)
    finally:
        checker.close()
    assert not stopped and checker.worker_used
    assert got == want


def test_a_dead_worker_costs_time_not_results(smol_tokenizer, tmp_path):
    rows = [{"instruction": f"q{i}", "output": f"answer {i}."} for i in range(5000)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    want, checker = _serial_and_parallel(smol_tokenizer, path)
    try:
        for proc in list(checker._remote.pool._processes.values()):
            proc.kill()   # the worker dies (OOM killer, a crash) before it counted anything
        result = scan(path, on_examples=checker.feed)
        got, stopped = checker.run(result)
    finally:
        checker.close()
    assert not stopped and not checker.worker_used
    assert got == want


def test_counts_stay_exact_when_the_cache_is_cleared_between_batches(smol_tokenizer, monkeypatch):
    from studio.core.datasets import piececount

    monkeypatch.setattr(piececount, "MAX_CACHED", 40)   # clears before nearly every batch
    rnd = random.Random(3)
    examples = [_random_chat(rnd) for _ in range(240)]
    renderer = ChatRenderer(smol_tokenizer)
    for k in range(0, len(examples), 40):
        batch = examples[k:k + 40]
        got = token_counts(batch, smol_tokenizer, 64, renderer=renderer)
        assert got == [_slow(ex, smol_tokenizer, 64) for ex in batch]
    assert renderer.pieces is not None


def _slow(ex: Example, tok, max_len: int) -> TokenCounts:
    r = render_example(ex, tok, max_len)
    return TokenCounts(r.full_length, r.trained_tokens_full, r.trained_tokens)
