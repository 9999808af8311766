"""Which ``tokenizer.ggml.pre`` llama.cpp needs for a byte-level BPE tokenizer, found by behaviour.

llama.cpp does not read a tokenizer's pre-tokenizer from the file: it keeps a fixed set of split rules
per name (``gpt-2``, ``smollm``, ``llama-bpe``, ``qwen2``…) and refuses names it does not know. Its own
converter picks the name from a hash of one model's token ids, so it knows only the exact tokenizers
it has seen. We pick the name whose split rules cut text exactly where this tokenizer's pre-tokenizer
does, on a probe text made to tell the rules apart (digits runs, contractions, newlines after
punctuation, emoji, CJK, spaces). Same cuts on the probe = llama.cpp tokenizes like the studio trained;
no candidate matches = refuse, rather than write a file that tokenizes differently.

The rule sets are llama.cpp's own (``llm_tokenizer_bpe`` in ``src/llama-vocab.cpp``), applied the way
its ``unicode_regex_split`` applies them: each regex in turn cuts every piece so far into matches and
the text between them.
"""

from __future__ import annotations

from typing import Any

_CONTRACTIONS_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d"
_GPT2 = _CONTRACTIONS_GPT2 + r"| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_CONTRACTIONS_CI = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_LLAMA3 = _CONTRACTIONS_CI + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2 = _CONTRACTIONS_CI + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# (name written to the GGUF, split rules llama.cpp applies for it), most common first.
CANDIDATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gpt-2", (_GPT2,)),
    ("smollm", (r"\p{N}", _GPT2)),
    ("llama-bpe", (_LLAMA3,)),
    ("qwen2", (_QWEN2,)),
)

# Every name llama.cpp (``llama_vocab::impl::load``) maps onto one of the rule sets above, as the
# candidate name whose rules it applies. A GGUF may carry any of them; other names have rules of
# their own, which the studio does not rebuild.
SAME_RULES: dict[str, str] = {
    **dict.fromkeys(("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de",
                     "jina-v2-code", "roberta-bpe", "a.x-4.0", "mellum", "modern-bert", "exaone4", "mpt", "olmo",
                     "jais", "trillion", "granite-docling"), "gpt-2"),
    **dict.fromkeys(("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2"),
                    "smollm"),
    **dict.fromkeys(("llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                     "dbrx", "smaug-bpe", "chatglm-bpe", "glm4"), "llama-bpe"),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "megrez", "kormo", "stablelm2", "hunyuan"), "qwen2"),
}

# Text that separates the candidates: llama.cpp's converter probe plus cases where the rules differ.
PROBE = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 "
    "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, "
    "'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL\n"
    "x=1;\n\ny = [a,b]:\r\n\tdef f():\n        return {\"k\": 12345}\n!!\n\nThe END.  ok   "
)


def _split(text: str, rules: tuple[str, ...]) -> list[tuple[int, int]]:
    import regex

    pieces = [(0, len(text))]
    for rule in rules:
        pattern = regex.compile(rule)
        out: list[tuple[int, int]] = []
        for start, end in pieces:
            pos = start
            for m in pattern.finditer(text, start, end):
                if m.start() == m.end():
                    continue
                if m.start() > pos:
                    out.append((pos, m.start()))
                out.append((m.start(), m.end()))
                pos = m.end()
            if pos < end:
                out.append((pos, end))
        pieces = out
    return pieces


def hf_split(backend: Any, text: str) -> list[tuple[int, int]] | None:
    """Where the HF (``tokenizers``) pre-tokenizer cuts ``text``, as character offsets; None without one."""
    pre = backend.pre_tokenizer
    if pre is None:
        return None
    if backend.normalizer is not None and backend.normalizer.normalize_str(text) != text:
        # A normaliser that changes the text (lowercasing, stripping…) does something llama.cpp never
        # does. One that leaves it alone (Qwen's NFC on already-composed text) changes nothing here.
        return None
    return [span for _piece, span in pre.pre_tokenize_str(text)]


def llamacpp_pre_name(backend: Any, probe: str = PROBE) -> str | None:
    """The llama.cpp pre-tokenizer name whose rules split ``probe`` exactly like ``backend`` (a
    ``tokenizers.Tokenizer``), or None when none does."""
    want = hf_split(backend, probe)
    if want is None:
        return None
    for name, rules in CANDIDATES:
        if _split(probe, rules) == want:
            return name
    return None


def rules_for(name: str | None) -> tuple[str, ...] | None:
    """The split rules llama.cpp applies for ``tokenizer.ggml.pre`` = ``name``; None for a name whose
    rules are not among ``CANDIDATES``."""
    canonical = SAME_RULES.get(name or "")
    return next((rules for cand, rules in CANDIDATES if cand == canonical), None)


def splits_like(backend: Any, name: str | None, probe: str = PROBE) -> bool:
    """Whether ``backend`` cuts ``probe`` exactly where llama.cpp's rules for ``name`` do."""
    rules = rules_for(name)
    return rules is not None and hf_split(backend, probe) == _split(probe, rules)
