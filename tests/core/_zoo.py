"""A model zoo for the tests: one tiny random model per family a workstation user brings.

Each family keeps what makes it different from the Llama shape the rest of the suite uses, so a
studio path that only holds for Llama breaks here: Qwen2's q/k/v biases, Qwen3's q/k norms,
Gemma's tied embeddings, norm offsets, soft-capping and sliding-window layer types, Phi-3's fused
qkv and gate_up projections, Mistral's sliding window. The tokenizer is of the family's real kind,
built locally with ``tokenizers`` from a small built-in corpus: byte-level BPE behind the family's
own split regex (Llama-3, Qwen2/3), or SentencePiece-style BPE with byte fallback (Mistral, Gemma,
Phi-3, which ships the Llama-2 tokenizer). Special tokens and the chat template have the shape of
the family's official ones. Everything is seeded, so two builds are byte-identical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

FAMILIES = ("llama3", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")
BYTE_LEVEL = ("llama3", "qwen2", "qwen3")

# The split regexes exactly as in the real tokenizer.json files.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")

_CORPUS = """\
How many meters are in a kilometer? A kilometer has one thousand meters.
The answer is given as JSON: {"answer": 42, "category": "math", "confidence": "high"}.
What is the capital of France? Paris is the capital of France, and Berlin is the capital of Germany.
A bee has six legs, a spider has eight legs, and a bird has two legs and two wings.
Water boils at 100 degrees Celsius at sea level; it freezes at 0 degrees.
You are a helpful assistant. Answer the question in one short sentence, then stop.
Translate the sentence into French. Summarize the paragraph. Write a haiku about the sea.
The quick brown fox jumps over the lazy dog while the cat sleeps on the warm window sill.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 34 56 78 90 100 250 1000 2024 31415 27182.
Code: def add(a, b): return a + b  # adds two numbers\nfor i in range(10): print(i)
Questions and answers, instructions and responses, users and assistants, systems and models.
She said: "It's fine, we'll go tomorrow." He replied, 'I'd rather not, they're late.'
"""


@dataclass(frozen=True)
class Family:
    """What tells one family's tokenizer and chat format apart."""

    name: str
    bos: str | None
    eos: str
    pad: str
    unk: str | None
    specials: tuple[str, ...]  # every special/added token, in id order after the byte tokens
    end_of_turn: str  # the token an assistant turn ends with (what generation must stop on)
    template: str
    add_bos: bool  # whether encoding adds bos (the post-processor of the real tokenizer.json)
    prepend_space: bool  # SentencePiece-style: a "▁" before the first word


_LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
_QWEN2_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' %}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set first_user_prefix = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + message['content'] | trim"
    " + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{%- endif %}"
)
_MISTRAL_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.first and system %}{{- '[INST] ' + system + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- else %}{{ raise_exception('Only user and assistant roles are supported after the system message') }}"
    "{%- endif %}{%- endfor %}"
)
_PHI3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] in ['system', 'user', 'assistant'] %}"
    "{{ '<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}{%- else %}{{ eos_token }}{%- endif %}"
)

_LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                    "<|eot_id|>", "<|finetune_right_pad_id|>")
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_GEMMA_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")

SPECS: dict[str, Family] = {
    "llama3": Family("llama3", "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>", None,
                     _LLAMA3_SPECIALS, "<|eot_id|>", _LLAMA3_TEMPLATE, add_bos=True, prepend_space=False),
    "qwen2": Family("qwen2", None, "<|im_end|>", "<|endoftext|>", None, _QWEN_SPECIALS, "<|im_end|>",
                    _QWEN2_TEMPLATE, add_bos=False, prepend_space=False),
    "qwen3": Family("qwen3", None, "<|im_end|>", "<|endoftext|>", None, _QWEN_SPECIALS, "<|im_end|>",
                    _QWEN3_TEMPLATE, add_bos=False, prepend_space=False),
    "mistral": Family("mistral", "<s>", "</s>", "</s>", "<unk>", ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
                      "</s>", _MISTRAL_TEMPLATE, add_bos=True, prepend_space=True),
    "gemma2": Family("gemma2", "<bos>", "<eos>", "<pad>", "<unk>", _GEMMA_SPECIALS, "<end_of_turn>",
                     _GEMMA_TEMPLATE, add_bos=True, prepend_space=False),
    "gemma3": Family("gemma3", "<bos>", "<eos>", "<pad>", "<unk>", _GEMMA_SPECIALS, "<end_of_turn>",
                     _GEMMA_TEMPLATE, add_bos=True, prepend_space=False),
    "phi3": Family("phi3", "<s>", "<|endoftext|>", "<|endoftext|>", "<unk>",
                   ("<unk>", "<s>", "</s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
                   "<|end|>", _PHI3_TEMPLATE, add_bos=True, prepend_space=True),
}

_VOCAB = 400  # learned pieces on top of the specials (and, for SentencePiece style, the 256 byte tokens)


def _corpus() -> list[str]:
    return _CORPUS.splitlines() * 3


def _byte_level(spec: Family):
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    split = LLAMA3_SPLIT if spec.name == "llama3" else QWEN2_SPLIT
    tok = Tokenizer(models.BPE(byte_fallback=False, ignore_merges=spec.name == "llama3"))
    if spec.name != "llama3":
        tok.normalizer = normalizers.NFC()  # Qwen's tokenizer.json normalises to NFC first
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=256 + _VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec.specials])
    if spec.add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos}:0 $A:0", pair=f"{spec.bos}:0 $A:0 {spec.bos}:1 $B:1",
            special_tokens=[(spec.bos, tok.token_to_id(spec.bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _sentencepiece_style(spec: Family):
    """Metaspace + BPE with byte fallback, ids laid out like the real files: specials, <0x00>..<0xFF>, pieces."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    meta = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first" if spec.prepend_space else "never",
                                    split=True)
    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = meta
    learner.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=_VOCAB, show_progress=False))
    learned = json.loads(learner.to_str())["model"]
    vocab: dict[str, int] = {t: i for i, t in enumerate(spec.specials)}
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=spec.unk, byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = meta
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
                                    + ([decoders.Strip(" ", 1, 0)] if spec.prepend_space else []))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec.specials])
    if spec.add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos}:0 $A:0", pair=f"{spec.bos}:0 $A:0 {spec.bos}:1 $B:1",
            special_tokens=[(spec.bos, tok.token_to_id(spec.bos))])
    return tok


def make_tokenizer(family: str, out: Path):
    """The family's tokenizer saved in ``out`` as a PreTrainedTokenizerFast folder; returns it loaded."""
    from transformers import PreTrainedTokenizerFast

    spec = SPECS[family]
    raw = _byte_level(spec) if family in BYTE_LEVEL else _sentencepiece_style(spec)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token=spec.bos, eos_token=spec.eos, pad_token=spec.pad, unk_token=spec.unk,
        model_max_length=2048, clean_up_tokenization_spaces=False,
    )
    tok.chat_template = spec.template
    tok.save_pretrained(out)
    return tok


def _config(family: str, tok, spec: Family):
    """A 2-layer, hidden-64 config of the family's own class, with its distinguishing features on."""
    from transformers import (
        Gemma2Config,
        Gemma3TextConfig,
        LlamaConfig,
        MistralConfig,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    ids = {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "eos_token_id": tok.convert_tokens_to_ids(spec.eos),
           "bos_token_id": tok.bos_token_id if spec.bos else None, "max_position_embeddings": 512}
    shape = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2}
    if family == "llama3":  # Llama-3.2 1B/3B: tied embeddings, rope theta 500k
        return LlamaConfig(**shape, **ids, tie_word_embeddings=True, rope_parameters={"rope_type": "default",
                                                                                      "rope_theta": 500000.0})
    if family == "mistral":
        return MistralConfig(**shape, **ids, head_dim=16, sliding_window=16, tie_word_embeddings=False)
    if family == "qwen2":  # q/k/v biases are built into the Qwen2 attention
        return Qwen2Config(**shape, **ids, tie_word_embeddings=True)
    if family == "qwen3":  # q_norm / k_norm per head
        return Qwen3Config(**shape, **ids, head_dim=16, tie_word_embeddings=True)
    if family == "gemma2":
        return Gemma2Config(**shape, **ids, head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                            layer_types=["sliding_attention", "full_attention"], final_logit_softcapping=30.0,
                            attn_logit_softcapping=50.0, tie_word_embeddings=True)
    if family == "gemma3":
        return Gemma3TextConfig(**shape, **ids, head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                                layer_types=["sliding_attention", "full_attention"], tie_word_embeddings=True)
    if family == "phi3":  # fused qkv_proj and gate_up_proj
        return Phi3Config(**shape, **ids, tie_word_embeddings=False)
    raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")


def make_family(family: str, out: Path, *, seed: int = 0) -> Path:
    """A tiny random ``family`` model with its tokenizer and chat template, saved as a plain HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    spec = SPECS[family]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(family, out)
    cfg = _config(family, tok, spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    stops = sorted({tok.convert_tokens_to_ids(spec.eos), tok.convert_tokens_to_ids(spec.end_of_turn)})
    model.generation_config = GenerationConfig(bos_token_id=cfg.bos_token_id, pad_token_id=tok.pad_token_id,
                                               eos_token_id=stops if len(stops) > 1 else stops[0])
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """``zoo(family)``: the family's tiny model folder, built on first use (import this fixture into a
    test module; each module that imports it builds the families it uses once)."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = make_family(family, tmp_path_factory.mktemp(f"zoo-{family}") / family)
        return built[family]

    return get
