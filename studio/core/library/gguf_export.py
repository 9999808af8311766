"""Write a GGUF (f16 or q8_0) from a merged Llama-family HF folder, with the gguf package alone.

No llama.cpp build is needed: the tensor layout and metadata keys follow llama.cpp's
``convert_hf_to_gguf.py`` for ``LlamaModel``. The one non-obvious step is the Q/K row permutation:
llama.cpp stores rotary halves interleaved, so q_proj/k_proj rows are permuted on the way in, and
transformers' GGUF loader (``LlamaTensorProcessor._reverse_permute_weights``) undoes exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.heavy_imports import ensure

Progress = Callable[[float, str], None]

GGUF_TYPES = ("f16", "q8_0")
_FILE_TYPE = {"f16": 1, "q8_0": 7}  # llama.cpp LLAMA_FTYPE_MOSTLY_F16 / MOSTLY_Q8_0

# llama.cpp token types
_NORMAL, _CONTROL, _USER_DEFINED, _UNUSED = 1, 3, 4, 5

_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_file_name(gguf_type: str) -> str:
    return f"model-{gguf_type}.gguf"


def llama_permute(w: Any, n_head: int, n_kv_head: int | None = None) -> Any:
    """llama.cpp's rotary-half interleave of q/k rows (inverse of transformers' reverse permute)."""
    if n_kv_head is not None and n_head != n_kv_head:
        n_head = n_kv_head
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _check_config(cfg: dict, folder: Path) -> None:
    model_type = cfg.get("model_type")
    if model_type not in ("llama", "mistral"):
        raise StudioError(
            f"GGUF export supports Llama-family models; this one is '{model_type}'. "
            "Export the merged safetensors folder and convert it with llama.cpp's convert_hf_to_gguf.py.",
            path=folder,
        )
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        raise StudioError("GGUF export does not handle Llama variants with bias terms yet.", path=folder)
    if model_type == "mistral" and cfg.get("sliding_window"):
        raise StudioError("GGUF export does not handle sliding-window attention.", path=folder)
    rope = cfg.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type")
    params = cfg.get("rope_parameters") or {}
    rope_type = rope_type or params.get("rope_type")
    if rope_type not in (None, "default"):
        raise StudioError(
            f"GGUF export does not handle RoPE scaling '{rope_type}' yet; export the safetensors folder instead.",
            path=folder,
        )


def _rope_theta(cfg: dict) -> float:
    params = cfg.get("rope_parameters") or {}
    return float(params.get("rope_theta") or cfg.get("rope_theta") or 10000.0)


def _pre_tokenizer_name(tok_json: dict) -> str:
    """The ``tokenizer.ggml.pre`` name llama.cpp uses for this pre-tokenizer (how text is split)."""
    pre = tok_json.get("pre_tokenizer") or {}
    kinds = [p.get("type") for p in pre.get("pretokenizers", [])] if pre.get("type") == "Sequence" else [pre.get("type")]
    if kinds == ["ByteLevel"] and pre.get("use_regex", True):
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"]:
        return "smollm"
    if "Split" in kinds:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

        splits = [p for p in pre.get("pretokenizers", []) if p.get("type") == "Split"]
        regex = (splits[0].get("pattern") or {}).get("Regex") if splits else None
        for name, pattern in GGUF_PRE_TOKENIZER_SPLITS.items():
            if pattern == regex:
                return name
    return "default"


def _tokenizer_metadata(folder: Path, vocab_size: int) -> dict:
    """Everything ``tokenizer.ggml.*`` needs, from the HF folder's byte-level BPE tokenizer."""
    ensure()
    from transformers import AutoTokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise StudioError("GGUF export needs a fast tokenizer (tokenizer.json) in the model folder.", path=folder)
    tok_json = json.loads(path.read_text(encoding="utf-8"))
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise StudioError(
            "GGUF export supports byte-level BPE tokenizers (Llama 3, SmolLM, Qwen); this model uses a "
            "sentencepiece-style vocabulary. Export the safetensors folder and convert it with llama.cpp.",
            path=folder,
        )
    tok = AutoTokenizer.from_pretrained(str(folder))
    vocab: dict[str, int] = dict(model["vocab"])
    added = {a["content"]: a for a in tok_json.get("added_tokens", [])}
    for content, a in added.items():
        vocab[content] = a["id"]
    by_id = {i: t for t, i in vocab.items()}
    if len(by_id) > vocab_size:
        raise StudioError(
            f"The tokenizer has {len(by_id)} tokens but the model only {vocab_size} embeddings.", path=folder
        )
    tokens, types = [], []
    for i in range(vocab_size):
        t = by_id.get(i)
        if t is None:
            tokens.append(f"[PAD{i}]")
            types.append(_UNUSED)
        elif t in added:
            tokens.append(t)
            types.append(_CONTROL if added[t].get("special") else _USER_DEFINED)
        else:
            tokens.append(t)
            types.append(_NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    probe = tok("a")["input_ids"]
    chat_template = tok.chat_template if isinstance(tok.chat_template, str) else None
    return {
        "tokens": tokens, "types": types, "merges": merges, "pre": _pre_tokenizer_name(tok_json),
        "bos": tok.bos_token_id, "eos": tok.eos_token_id, "unk": tok.unk_token_id, "pad": tok.pad_token_id,
        "add_bos": bool(probe) and tok.bos_token_id is not None and probe[0] == tok.bos_token_id,
        "chat_template": chat_template,
    }


def _read_weights(folder: Path) -> dict[str, Any]:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise StudioError("No safetensors weights in the merged folder.", path=folder)
    out = {}
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for k in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                out[k] = fh.get_tensor(k)
    return out


def _add_weight(writer: Any, name: str, t: Any, gguf_type: str) -> None:
    """1-D tensors stay f32 as llama.cpp keeps them; matrices become f16, or q8_0 when rows fit blocks."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    arr = t.float().numpy()
    if arr.ndim == 1:
        writer.add_tensor(name, arr.astype(np.float32))
    elif gguf_type == "q8_0" and arr.shape[-1] % 32 == 0:
        q = quantize(arr.astype(np.float32), GGMLQuantizationType.Q8_0)
        writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    else:
        writer.add_tensor(name, arr.astype(np.float16))


def write_gguf(model_dir: Path, out_file: Path, gguf_type: str = "f16", *, progress: Progress | None = None) -> Path:
    """Write ``out_file`` from the merged HF folder ``model_dir``. Not atomic itself: callers write it
    inside the export's temp folder, which is renamed into place only when everything succeeded."""
    from gguf import GGUFWriter

    report = progress or (lambda _f, _m: None)
    if gguf_type not in GGUF_TYPES:
        raise StudioError(f"Unknown GGUF type '{gguf_type}'; choose one of {', '.join(GGUF_TYPES)}.")
    model_dir, out_file = Path(model_dir), Path(out_file)
    cfg = json.loads((model_dir / "config.json").read_text())
    _check_config(cfg, model_dir)
    n_head = int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_head)
    hidden = int(cfg["hidden_size"])
    head_dim = int(cfg.get("head_dim") or hidden // n_head)
    vocab_size = int(cfg["vocab_size"])
    n_layers = int(cfg["num_hidden_layers"])
    report(0.0, f"GGUF {gguf_type}: reading tokenizer")
    meta = _tokenizer_metadata(model_dir, vocab_size)
    weights = _read_weights(model_dir)
    tied = bool(cfg.get("tie_word_embeddings")) or "lm_head.weight" not in weights

    writer = GGUFWriter(str(out_file), "llama")
    writer.add_name(model_dir.name)
    writer.add_file_type(_FILE_TYPE[gguf_type])
    writer.add_block_count(n_layers)
    writer.add_context_length(int(cfg.get("max_position_embeddings") or 2048))
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(int(cfg["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(_rope_theta(cfg))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-5)))
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(meta["pre"])
    writer.add_token_list(meta["tokens"])
    writer.add_token_types(meta["types"])
    writer.add_token_merges(meta["merges"])
    for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                     ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        if meta[key] is not None:
            add(int(meta[key]))
    writer.add_add_bos_token(meta["add_bos"])
    if meta["chat_template"]:
        writer.add_chat_template(meta["chat_template"])

    report(0.2, f"GGUF {gguf_type}: converting tensors")
    _add_weight(writer, "token_embd.weight", weights["model.embed_tokens.weight"], gguf_type)
    for i in range(n_layers):
        for hf, gg in _LAYER_TENSORS.items():
            key = f"model.layers.{i}.{hf}"
            if key not in weights:
                raise StudioError(f"The merged model lacks '{key}'; it is not a plain Llama layout.", path=model_dir)
            t = weights[key]
            if hf.startswith("self_attn.q_proj"):
                t = llama_permute(t, n_head, n_head)
            elif hf.startswith("self_attn.k_proj"):
                t = llama_permute(t, n_head, n_kv)
            _add_weight(writer, f"blk.{i}.{gg}", t, gguf_type)
        report(0.2 + 0.6 * (i + 1) / n_layers, f"GGUF {gguf_type}: layer {i + 1}/{n_layers}")
    _add_weight(writer, "output_norm.weight", weights["model.norm.weight"], gguf_type)
    if not tied:
        _add_weight(writer, "output.weight", weights["lm_head.weight"], gguf_type)
    del weights

    report(0.85, f"GGUF {gguf_type}: writing {out_file.name}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    report(1.0, f"GGUF {gguf_type}: done")
    return out_file
