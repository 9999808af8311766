"""Make an imported GGUF compute what llama.cpp computes from the same file, or say why it cannot.

transformers' GGUF reader rebuilds the HF config from a fixed key map per architecture and fills the
rest with class defaults. For several families those defaults are not what the file says: Qwen3 gets
a head size of 128 whatever ``attention.key_length`` holds, Gemma 2/3 get an attention scale of
1/sqrt(256) and Gemma 3 every layer sliding, SentencePiece tokenizers get a "▁" after every special
token even when the file says ``add_space_prefix = false``. A model imported that way loads without
error and answers differently, so the config is corrected here from the file's own keys before any
weight is read, and a file whose meaning this module cannot carry over is refused with what would
be lost. The rules mirror llama.cpp's loader (``src/llama-model.cpp``), the reference for what a
GGUF means.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError

# Keys holding one entry per token (or merge); read lazily elsewhere, never copied into the header dict.
_BULK_KEYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges")
# RoPE scaling llama.cpp names that transformers computes the same way (type -> rope_type).
_ROPE_TYPES = {"none": "default", "linear": "linear"}


def read_header(path: Path) -> dict[str, Any]:
    """Every key/value of the GGUF except the per-token tables, as plain Python values."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        out: dict[str, Any] = {}
        for key, field in reader.fields.items():
            if key in _BULK_KEYS or key.startswith("GGUF."):
                continue
            value = field.contents()
            out[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return out
    except Exception as err:
        raise StudioError(
            "This file is not a readable GGUF model (it may be truncated or another format).", path=path,
            detail=str(err),
        ) from None


def _arch_key(header: dict, arch: str, key: str) -> Any:
    return header.get(f"{arch}.{key}")


def fix_config(config: Any, header: dict, path: Path) -> list[str]:
    """Correct ``config`` (a transformers config built by the GGUF reader) in place from the file's own
    keys; the corrections, in words, for the import report. Refuses what cannot be carried over."""
    arch = str(header.get("general.architecture", ""))
    fixes: list[str] = []

    def put(attr: str, value: Any, why: str) -> None:
        if getattr(config, attr, None) != value:
            fixes.append(f"{attr} {getattr(config, attr, None)!r} -> {value!r} ({why})")
            setattr(config, attr, value)

    key_length = _arch_key(header, arch, "attention.key_length")
    if key_length is not None and hasattr(config, "head_dim"):
        put("head_dim", int(key_length), "attention.key_length")
    _check_rope_scaling(header, arch, path)
    if arch in ("gemma2", "gemma3"):
        _fix_gemma(config, header, arch, put)
    return fixes


def _check_rope_scaling(header: dict, arch: str, path: Path) -> None:
    kind = _arch_key(header, arch, "rope.scaling.type")
    factor = _arch_key(header, arch, "rope.scaling.factor")
    if kind is None or kind == "none" or (kind == "linear" and factor in (None, 1.0)):
        return
    # transformers' reader maps no RoPE scaling at all: a scaled file would lose it silently.
    raise StudioError(
        f"This '{arch}' GGUF uses RoPE scaling '{kind}' (factor {factor}), which transformers' GGUF reader "
        "drops, so the imported model would handle long prompts differently. Import the original safetensors "
        "model folder instead.", path=path,
    )


def _fix_gemma(config: Any, header: dict, arch: str, put: Any) -> None:
    """Gemma's attention scale, sliding layers and soft-capping as llama.cpp reads them from the file."""
    n_layers = int(config.num_hidden_layers)
    hd = int(config.head_dim)
    # llama.cpp scales queries by 1/sqrt(head_dim), except for the 27B shapes it knows by layer count.
    big = n_layers == (46 if arch == "gemma2" else 62)
    scalar = int(config.hidden_size) // int(config.num_attention_heads) if big else hd
    put("query_pre_attn_scalar", scalar, "llama.cpp's attention scale for this shape")
    window = _arch_key(header, arch, "attention.sliding_window")
    if window:
        put("sliding_window", int(window), "attention.sliding_window")
    pattern = _arch_key(header, arch, "attention.sliding_window_pattern")
    if isinstance(pattern, list) and len(pattern) >= n_layers:
        sliding = [bool(p) for p in pattern[:n_layers]]
    else:  # llama.cpp's defaults: every other layer (Gemma 2), five of every six (Gemma 3)
        every = 2 if arch == "gemma2" else 6
        sliding = [(i + 1) % every != 0 for i in range(n_layers)]
    put("layer_types", ["sliding_attention" if s else "full_attention" for s in sliding],
        "attention.sliding_window_pattern")
    final = _arch_key(header, arch, "final_logit_softcapping")
    attn = _arch_key(header, arch, "attn_logit_softcapping")
    if arch == "gemma2":  # llama.cpp's Gemma 2 defaults when the keys are absent
        put("final_logit_softcapping", float(final) if final is not None else 30.0, "final_logit_softcapping")
        put("attn_logit_softcapping", float(attn) if attn is not None else 50.0, "attn_logit_softcapping")
    else:  # llama.cpp's Gemma 3 has no attention soft-capping at all
        put("final_logit_softcapping", float(final) if final else None, "final_logit_softcapping")
        put("attn_logit_softcapping", None, "llama.cpp's Gemma 3 has none")
        local = _arch_key(header, arch, "rope.freq_base_swa")
        params = getattr(config, "rope_parameters", None)
        if local and isinstance(params, dict) and isinstance(params.get("sliding_attention"), dict):
            current = params["sliding_attention"].get("rope_theta")
            if current is None or not math.isclose(float(current), float(local)):
                new = {**params, "sliding_attention": {**params["sliding_attention"], "rope_theta": float(local)}}
                put("rope_parameters", new, "rope.freq_base_swa")


def fix_tokenizer(tokenizer: Any, header: dict) -> list[str]:
    """A SentencePiece-style file that says ``add_space_prefix = false`` is tokenized by llama.cpp without
    any "▁" prefix; the reader always adds one (after every special token too), so drop it."""
    if header.get("tokenizer.ggml.model") != "llama" or header.get("tokenizer.ggml.add_space_prefix") is not False:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        return []
    from tokenizers import normalizers

    backend.normalizer = normalizers.Replace(" ", "▁")
    return ["tokenizer: no '▁' prefix before text (add_space_prefix = false)"]


# What each rule set does, for the import report.
_RULE_WORDS = {"gpt-2": "GPT-2's rules, digits grouped", "smollm": "digits one by one, then GPT-2's rules",
               "llama-bpe": "Llama 3's rules, digits in threes", "qwen2": "Qwen2's rules, digits one by one"}


def _hf_pre_tokenizer(canonical: str) -> Any:
    """The ``tokenizers`` pre-tokenizer that applies llama.cpp's rule set ``canonical``, in the shape the
    model's own tokenizer.json has (SmolLM's: ``Digits(individual_digits)`` then ``ByteLevel``), so the
    token-counting fast paths recognise it."""
    from tokenizers import Regex, pre_tokenizers

    from studio.core.datasets.piecekinds import LLAMA3_SPLIT, QWEN2_SPLIT

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    if canonical == "gpt-2":
        return byte_level
    if canonical == "smollm":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    split = {"llama-bpe": LLAMA3_SPLIT, "qwen2": QWEN2_SPLIT}[canonical]
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                             use_regex=False)])


def rebuild_pre_tokenizer(backend: Any, name: str | None) -> str | None:
    """Give ``backend`` (a ``tokenizers.Tokenizer``) the split rules llama.cpp applies for the GGUF's
    ``tokenizer.ggml.pre`` = ``name`` when it splits otherwise; the change in words, or None when none
    was needed or the rules are not ones the studio knows (the tokenizer is then left as it was).

    transformers' GGUF reader knows the rules of some names and gives every other byte-level file
    GPT-2's. SmolLM's "smollm" is one it misses: its digits came out grouped ("2024" one pre-token)
    where the model was trained, and llama.cpp runs it, with every digit on its own."""
    from studio.core.library.gguf_pretokenizer import SAME_RULES, rules_for, splits_like

    if rules_for(name) is None or splits_like(backend, name):
        return None
    canonical = SAME_RULES[str(name)]
    before = backend.pre_tokenizer
    backend.pre_tokenizer = _hf_pre_tokenizer(canonical)
    if not splits_like(backend, name):   # a normaliser that rewrites text: cannot be made to agree here
        backend.pre_tokenizer = before
        return None
    return f"tokenizer: text split by llama.cpp's '{name}' rules ({_RULE_WORDS[canonical]}), as the file asks"


def fix_pre_tokenizer(tokenizer: Any, header: dict) -> list[str]:
    """For a byte-level BPE file: the split rules its ``tokenizer.ggml.pre`` names (see ``rebuild_pre_tokenizer``)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if header.get("tokenizer.ggml.model") != "gpt2" or backend is None:
        return []
    fix = rebuild_pre_tokenizer(backend, header.get("tokenizer.ggml.pre"))
    return [fix] if fix else []


def pre_tokenizer_check(tokenizer: Any, header: dict) -> dict[str, Any] | None:
    """For a byte-level BPE file: does the imported tokenizer split text the way llama.cpp does for the
    file's ``tokenizer.ggml.pre``? None for other tokenizer kinds (their split is not named)."""
    from studio.core.library.gguf_pretokenizer import llamacpp_pre_name, splits_like

    if header.get("tokenizer.ggml.model") != "gpt2":
        return None
    recorded = header.get("tokenizer.ggml.pre")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    imported = None if backend is None else llamacpp_pre_name(backend)
    # By rules, not by name: "starcoder" and "smollm" are two names for the same split.
    matches = recorded is not None and (imported == recorded or (backend is not None and splits_like(backend, recorded)))
    out: dict[str, Any] = {"gguf": recorded, "imported": imported, "matches": matches}
    if not matches:
        out["note"] = (f"The file asks llama.cpp for the '{recorded}' pre-tokenizer, but the imported tokenizer "
                       f"splits text like '{imported or 'none of the known rules'}', so token counts and "
                       "some token ids differ from llama.cpp's for numbers and punctuation.")
    return out
