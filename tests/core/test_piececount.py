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


# -- the other tokenizer kinds: Llama-3/Qwen2 split regexes and SentencePiece style ----------------

# Everything where pre-tokenization or BPE could join or split differently across a cut: whitespace
# runs of every kind before words, digits and punctuation, unicode spaces, digit runs, contractions,
# CJK, emoji, combining marks (NFC-unstable too), literal "▁", and (added per family) added tokens.
HOSTILE = ["hello", "World", "Don't", "it's", "I'M", "we'll", "'S", "'ll", "'d", "123", "4567", "1234567", "3.14",
           "foo_bar", "x", "(", ")", ",", ".", "...", "!!", "?\n", ".\n\n", " ", "  ", "   ", "\n", "\n\n", "\t",
           "\t\t", " \n", "\n ", " \n ", "\r\n", "\r", "\n\t", "\x0b", "\x0c", "é", "日本語", "naïve", "—", "😀",
           "👍🏽", "\u00a0", "\u3000", "\u2003", "\u200b", "e\u0301", "\u0301", "Å", "ﬁ", "'", "''", "ABC",
           "def(x):", "    return", "#", "--", "a-b", "▁", "▁▁", "x▁y", "<", ">", "|"]


def _zoo_specials(tok) -> list[str]:
    return [t.content for t in tok.backend_tokenizer.get_added_tokens_decoder().values()]


@pytest.fixture(scope="module")
def zoo_tokenizers(tmp_path_factory) -> dict:
    from _zoo import FAMILIES, make_tokenizer

    root = tmp_path_factory.mktemp("zoo_tok")
    return {family: make_tokenizer(family, root / family) for family in FAMILIES}


def _hostile_texts(rnd: random.Random, atoms: list[str], n: int, longest: int) -> list[str]:
    fixed = ["", *atoms, *(a + b for a in (" ", "\n", "\t", "  ", "\n\n", " \n") for b in atoms),
             *(a + b for a in atoms for b in (" ", "\n", "\n\n", "\t", "  "))]
    mixes = ["".join(rnd.choice(atoms) + rnd.choice(["", " ", "", "\n", "  ", "\t"])
                     for _ in range(rnd.randint(0, longest))) for _ in range(n)]
    return fixed + mixes


def _row_items(rnd: random.Random, texts: list[str]):
    items, want_spans = [], []
    for text in texts:
        a = rnd.randint(0, len(text))
        b = rnd.randint(a, len(text))
        spans = [(a, b)] if rnd.random() < 0.5 else [(0, len(text))]
        cuts = sorted(rnd.sample(range(len(text) + 1), min(len(text) + 1, 4)))
        items.append((text, spans, cuts, False))
        want_spans.append(spans)
    return items


def _check_counter(tok, counter, seed: int, n: int = 3000, extra: tuple[str, ...] = (), gpt2: bool = False) -> int:
    """Plain counts and row counts against the tokenizer on hostile text; returns rows proven. The GPT-2
    argument (``gpt2``) leaves whitespace beyond ASCII to the row check, which sends such rows whole."""
    backend = tok.backend_tokenizer
    rnd = random.Random(seed)
    texts = _hostile_texts(rnd, HOSTILE + list(extra) + _zoo_specials(tok), n, 30)
    counter.each(texts, lambda t: (counter.count(t), 0, 0))   # learn every piece, then count again
    plain = [t for t in texts if not (gpt2 and counter._odd_space(t))]
    wrong = [(t, counter.count(t), len(backend.encode(t, add_special_tokens=False).ids)) for t in plain
             if counter.count(t) != len(backend.encode(t, add_special_tokens=False).ids)]
    assert not wrong, wrong[:5]
    items = _row_items(rnd, texts)
    got = counter.counts(items, 7)
    want = [_masked(backend.encode(t, add_special_tokens=False), s, 7) for t, s, _, _ in items]
    bad = [(it[0], it[1], g, w) for it, g, w in zip(items, got, want, strict=True) if g is not None and g != w]
    assert not bad, bad[:5]
    with_bos = counter.counts([(t, [(0, len(t))], [], True) for t in texts[:300]], 7)
    for t, g in zip(texts[:300], with_bos, strict=True):
        if g is not None:
            assert g == _masked(backend.encode(t, add_special_tokens=True), [(0, len(t))], 7), t
    return sum(g is not None for g in got)


FAMILY_IDS = ["llama3", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_every_zoo_family_counts_exactly_on_hostile_text(zoo_tokenizers, family):
    from studio.core.datasets.piecekinds import SentencePieceCounter, SplitPieceCounter

    tok = zoo_tokenizers[family]
    counter = PieceCounter.for_tokenizer(tok)
    kind = SplitPieceCounter if family in ("llama3", "qwen2", "qwen3") else SentencePieceCounter
    assert type(counter) is kind
    proven = _check_counter(tok, counter, seed=FAMILY_IDS.index(family))
    assert proven > 1000   # most rows are proven, not only the trivial ones


def _sp_variant(tok, edit):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(tok.backend_tokenizer.to_str())
    edit(spec)
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)))


def _metaspace(scheme: str, split: bool):
    return lambda s: s.update(pre_tokenizer={"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme,
                                             "split": split})


_REPLACE = {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
SP_VARIANTS = {   # the shapes real SentencePiece-style tokenizer.json files come in
    "metaspace-first-nosplit": _metaspace("first", False),     # Mistral, Llama-2 (legacy=False)
    "metaspace-always": _metaspace("always", True),
    "metaspace-always-nosplit": _metaspace("always", False),
    "metaspace-never-nosplit": _metaspace("never", False),
    "replace-normalizer": lambda s: s.update(pre_tokenizer=None, normalizer=_REPLACE),        # Gemma
    "prepend-replace-normalizer": lambda s: s.update(pre_tokenizer=None, normalizer={         # Llama-2 legacy
        "type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, _REPLACE]}),
}


@pytest.mark.parametrize("variant", list(SP_VARIANTS))
def test_sentencepiece_shapes_count_exactly(zoo_tokenizers, variant):
    tok = _sp_variant(zoo_tokenizers["mistral"], SP_VARIANTS[variant])
    counter = PieceCounter.for_tokenizer(tok)
    assert counter is not None
    assert _check_counter(tok, counter, seed=len(variant), n=1500) > 500


def _merge_across_space(s):
    s["model"]["vocab"]["a▁"] = len(s["model"]["vocab"])
    s["model"]["merges"].append(["a", "▁"])


@pytest.mark.parametrize(("family", "edit"), [
    ("llama3", lambda s: s.update(normalizer={"type": "NFKC"})),
    ("qwen2", lambda s: s.update(normalizer={"type": "Lowercase"})),
    ("llama3", lambda s: s["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex=r"\s+|\S+")),
    ("llama3", lambda s: s["pre_tokenizer"]["pretokenizers"][0].update(behavior="MergedWithPrevious")),
    ("qwen2", lambda s: s["model"].update(dropout=0.1)),
    ("llama3", lambda s: s["added_tokens"][0].update(lstrip=True)),
    ("mistral", lambda s: s["added_tokens"][3].update(rstrip=True)),
    ("mistral", lambda s: s["model"].update(dropout=0.2)),
    ("mistral", lambda s: s["model"].update(byte_fallback=False)),
    ("mistral", lambda s: s["model"].update(ignore_merges=True)),
    ("mistral", lambda s: s["model"]["vocab"].pop("<0x0A>")),
    ("gemma2", lambda s: s.update(normalizer={"type": "NFKC"})),
    ("gemma2", lambda s: s.update(pre_tokenizer={"type": "Metaspace", "replacement": "_", "prepend_scheme": "never",
                                                 "split": True})),
    ("mistral", lambda s: (_metaspace("first", False)(s), _merge_across_space(s))),
], ids=["nfkc", "lowercase", "other-regex", "other-behavior", "bpe-dropout", "lstrip-added-token",
        "sp-rstrip-added-token", "sp-dropout", "no-byte-fallback", "ignore-merges", "missing-byte-token",
        "sp-nfkc", "other-replacement", "token-across-space"])
def test_zoo_tokenizers_outside_the_argument_get_no_shortcut(zoo_tokenizers, family, edit):
    assert PieceCounter.for_tokenizer(_sp_variant(zoo_tokenizers[family], edit)) is None


def _random_zoo_chat(rnd: random.Random, family: str, specials: list[str]) -> Example:
    if family in ("gemma2", "gemma3", "mistral"):   # these templates want strict alternation
        roles = rnd.choice([("user", "assistant"), ("system", "user", "assistant"),
                            ("user", "assistant", "user", "assistant")])
    else:
        roles = rnd.choice([("user", "assistant"), ("system", "user", "assistant"),
                            ("user", "assistant", "user", "assistant")])
    atoms = HOSTILE + specials
    contents = []
    for _ in roles:
        r = rnd.random()
        if r < 0.55:   # mostly prose, as datasets are
            contents.append(" ".join(rnd.choice(["the", "cat", "sat.", "Don't", "42", "(x)", "naïve", "日本"])
                                     for _ in range(rnd.randint(1, 30))))
        elif r < 0.75:
            contents.append("\n".join(rnd.choice(["- item one", "Step 2: add", "```py\nx = 1\n```", "Ok.", "  indented"])
                                      for _ in range(rnd.randint(1, 6))))
        else:
            contents.append("".join(rnd.choice(atoms) + rnd.choice(["", " ", "\n"]) for _ in range(rnd.randint(0, 12))))
    return Example(messages=tuple(zip(roles, contents, strict=True)), fmt="messages")


@pytest.mark.parametrize("family", FAMILY_IDS)
@pytest.mark.parametrize("max_len", [9, 512])
def test_zoo_chat_rows_count_exactly_as_render_example(zoo_tokenizers, family, max_len):
    tok = zoo_tokenizers[family]
    rnd = random.Random(max_len + FAMILY_IDS.index(family))
    specials = _zoo_specials(tok)
    examples = [_random_zoo_chat(rnd, family, specials) for _ in range(250)]
    examples += [Example(text="".join(rnd.choice(HOSTILE) for _ in range(rnd.randint(0, 20))), fmt="text")
                 for _ in range(60)]
    renderer = ChatRenderer(tok)
    # Every zoo template is rendered by plan, the trimming ones (Llama-3, Gemma) too.
    planned = renderer.shortcut
    assert planned
    got = token_counts(examples, tok, max_len, renderer=renderer)
    for ex, g in zip(examples, got, strict=True):
        try:
            want = _slow(ex, tok, max_len)
        except Exception:
            assert g is None
            continue
        assert g == want, ex
    assert renderer.pieces is not None and renderer.shortcut == planned   # nothing disagreed, nothing switched off
    proven = renderer.pieces.counts([(*renderer.layout(ex), not ex.is_chat) for ex in examples], max_len)
    assert sum(p is not None for p in proven) > 200   # whole rendered rows: most are counted by pieces
    if planned:
        quick = sum(renderer.quick_counts(ex, max_len) is not None for ex in examples)
        assert quick > 100, quick   # the per-template path carries most prose rows


# -- digits split one by one before GPT-2's pattern (the bundled SmolLM2's own tokenizer) ------------

# Numbers of every shape, whitespace runs before and between them, and numeric characters beyond ASCII
# (superscripts, Arabic-Indic, circled, Roman, fullwidth, mathematical) including ones ``regex`` calls
# \p{N} but ``tokenizers`` does not (U+1246F, a cuneiform sign).
DIGIT_ATOMS = ("0", "7", "42", "2024", "3.50", "1e-9", "v1.2.3", "0x1F", "-7", "+8", "1st", "  42", "\n  7",
               " 1 2  3", "\t9", "²", "٣٤٥", "①②", "Ⅷ", "１２", "𝟙", "\U0001246f", "1\u00a02")


def test_digit_splitting_tokenizer_counts_exactly_on_hostile_text(smol_tokenizer):
    from studio.core.datasets.digitcount import DigitPieceCounter

    spec = json.loads(smol_tokenizer.backend_tokenizer.to_str())
    assert spec["pre_tokenizer"]["pretokenizers"][0] == {"type": "Digits", "individual_digits": True}
    counter = PieceCounter.for_tokenizer(smol_tokenizer)
    assert type(counter) is DigitPieceCounter
    assert _check_counter(smol_tokenizer, counter, seed=21, extra=DIGIT_ATOMS, gpt2=True) > 1000


def test_plain_gpt2_split_keeps_its_own_counter(smol_tokenizer_dir):
    """The same vocabulary behind GPT-2's pattern alone (what earlier imports saved) is still counted exactly."""
    tok = _variant(smol_tokenizer_dir, lambda s: s.update(pre_tokenizer=s["pre_tokenizer"]["pretokenizers"][1]))
    counter = PieceCounter.for_tokenizer(tok)
    assert type(counter) is PieceCounter
    assert _check_counter(tok, counter, seed=22, extra=DIGIT_ATOMS, gpt2=True) > 1000


def test_numeric_characters_are_exactly_what_tokenizers_cuts_out():
    from tokenizers import pre_tokenizers

    from studio.core.datasets.digitcount import numeric_split

    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    want = [p for p, _ in pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str(every)]
    assert [p for p in numeric_split().split(every) if p] == want
