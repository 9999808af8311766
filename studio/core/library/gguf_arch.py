"""Per-architecture GGUF layout: which llama.cpp architecture a HF model becomes, its tensor names,
the value transforms llama.cpp expects, and the hyper-parameter keys it reads.

Everything here follows llama.cpp's own converter (``convert_hf_to_gguf.py`` and its ``conversion/``
modules) and loader (``src/models/<arch>.cpp``) for the families the studio trains:

* ``llama`` (Llama 2/3, Mistral): llama.cpp rotates adjacent pairs, HF rotates halves, so q/k rows
  are permuted (``llama_permute``). Every other architecture here uses llama.cpp's NEOX rotation,
  which is HF's, so nothing is permuted.
* ``qwen2``: q/k/v biases. ``qwen3``: per-head q/k RMS norms.
* ``gemma2`` / ``gemma3``: HF stores the RMS norm weight as an offset from 1 (``x * (1 + w)``),
  llama.cpp multiplies by the stored weight, so every norm is written as ``1 + w``. Embeddings are
  always tied, the sqrt(hidden) embedding scale is built into llama.cpp's graph, and the
  sliding-window layers are written as an explicit per-layer pattern with their own rope base.
* ``phi3``: fused ``qkv_proj`` and ``gate_up_proj`` stay fused (``attn_qkv``, ``ffn_up`` with 2×ff).

Where llama.cpp cannot compute what the HF model computes (an attention scale it derives
differently, a sliding window it does not implement beyond the declared context, RoPE scaling we do
not map), the model is refused before any merging, with the converter to use instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError

CONVERT_HINT = ("Export the merged safetensors folder instead and convert it with llama.cpp's converter: "
                "python convert_hf_to_gguf.py MERGED_FOLDER --outtype f16")

_ATTN = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
}
_MLP = {
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_PLAIN_NORM = {"post_attention_layernorm.weight": "ffn_norm.weight"}
_QK_NORM = {"self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight"}
_QKV_BIAS = {"self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
             "self_attn.v_proj.bias": "attn_v.bias"}
_GEMMA_NORMS = {
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}
_PHI3 = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.qkv_proj.weight": "attn_qkv.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_up_proj.weight": "ffn_up.weight",  # gate rows first, then up: llama.cpp's fused SwiGLU order
    "mlp.down_proj.weight": "ffn_down.weight",
}


@dataclass(frozen=True)
class Arch:
    """How one HF ``model_type`` is laid out in a GGUF."""

    name: str  # general.architecture
    layer_tensors: dict[str, str]  # HF name under model.layers.N. -> GGUF name under blk.N.
    permute_qk: bool = False  # llama.cpp's ``llama`` rotary layout
    norm_offset: float = 0.0  # added to every ``*norm.weight`` (Gemma's 1 + w)
    always_tied: bool = False  # llama.cpp reads the output projection from token_embd, always
    optional: frozenset[str] = field(default_factory=frozenset)


ARCHS: dict[str, Arch] = {
    "llama": Arch("llama", {**_ATTN, **_PLAIN_NORM, **_MLP}, permute_qk=True),
    "mistral": Arch("llama", {**_ATTN, **_PLAIN_NORM, **_MLP}, permute_qk=True),
    "qwen2": Arch("qwen2", {**_ATTN, **_QKV_BIAS, **_PLAIN_NORM, **_MLP}),
    "qwen3": Arch("qwen3", {**_ATTN, **_QK_NORM, **_PLAIN_NORM, **_MLP}),
    "gemma2": Arch("gemma2", {**_ATTN, **_GEMMA_NORMS, **_MLP}, norm_offset=1.0, always_tied=True),
    "gemma3_text": Arch("gemma3", {**_ATTN, **_QK_NORM, **_GEMMA_NORMS, **_MLP}, norm_offset=1.0),
    "phi3": Arch("phi3", dict(_PHI3)),
}


def _refuse(why: str, folder: Path) -> StudioError:
    return StudioError(f"{why} {CONVERT_HINT}", path=folder)


def rope_params(cfg: dict, layer_type: str = "full_attention") -> dict:
    """The RoPE parameters of one layer type, from either the flat or the per-layer-type config shape."""
    params = cfg.get("rope_parameters") or {}
    if isinstance(params.get(layer_type), dict):
        params = params[layer_type]
    legacy = cfg.get("rope_scaling") or {}
    out = {**legacy, **params}
    if "rope_theta" not in out and cfg.get("rope_theta") is not None:
        out["rope_theta"] = cfg["rope_theta"]
    return out


def head_dim(cfg: dict) -> int:
    return int(cfg.get("head_dim") or int(cfg["hidden_size"]) // int(cfg["num_attention_heads"]))


def arch_for(cfg: dict, folder: Path) -> Arch:
    """The layout for this config, or a refusal naming why llama.cpp would compute something else."""
    model_type = cfg.get("model_type")
    arch = ARCHS.get(model_type or "")
    if arch is None:
        raise _refuse(f"The studio writes GGUF for Llama, Mistral, Qwen2/3, Gemma 2/3 and Phi-3 models; this one "
                      f"is '{model_type}'.", folder)
    for layer_type in ("full_attention", "sliding_attention"):
        rope = rope_params(cfg, layer_type)
        kind = rope.get("rope_type") or rope.get("type")
        if kind not in (None, "default"):
            raise _refuse(f"The model uses RoPE scaling '{kind}', which the studio's GGUF writer does not map.", folder)
    if model_type in ("llama", "mistral") and (cfg.get("attention_bias") or cfg.get("mlp_bias")):
        raise _refuse("This Llama variant has bias terms, which the studio's GGUF writer does not handle.", folder)
    if model_type == "qwen2" and cfg.get("use_sliding_window"):
        raise _refuse("llama.cpp runs Qwen2 without sliding-window attention, so this model would answer "
                      "differently there.", folder)
    if model_type == "qwen3" and cfg.get("attention_bias"):
        raise _refuse("This Qwen3 variant has attention biases, which the studio's GGUF writer does not handle.", folder)
    if arch.name in ("gemma2", "gemma3"):
        if not cfg.get("tie_word_embeddings", True) and arch.always_tied:
            raise _refuse("llama.cpp's Gemma 2 reads its output projection from the embeddings, and this model "
                          "has its own.", folder)
        if arch.name == "gemma3" and cfg.get("attn_logit_softcapping"):
            raise _refuse("llama.cpp's Gemma 3 has no attention soft-capping, and this model uses it.", folder)
        scalar = cfg.get("query_pre_attn_scalar")
        llamacpp_scalar = _gemma_llamacpp_scalar(cfg, arch.name)
        if scalar is not None and not math.isclose(float(scalar), llamacpp_scalar):
            raise _refuse(f"llama.cpp scales Gemma attention by 1/sqrt({llamacpp_scalar:g}) for a model of this shape, "
                          f"and this one by 1/sqrt({float(scalar):g}).", folder)
    return arch


def _gemma_llamacpp_scalar(cfg: dict, arch: str) -> float:
    """What llama.cpp divides Gemma queries by (squared): head_dim, except hidden/heads for the 27B shape
    it recognises by layer count (46 layers for Gemma 2, 62 for Gemma 3)."""
    big = int(cfg["num_hidden_layers"]) == (46 if arch == "gemma2" else 62)
    return float(int(cfg["hidden_size"]) // int(cfg["num_attention_heads"])) if big else float(head_dim(cfg))


def context_length(cfg: dict) -> int:
    """The context the file declares. Mistral and Phi-3 run without their sliding window in llama.cpp
    (it has none for these architectures), which is exact only while the whole context fits the
    window, so a window shorter than the trained context becomes the declared context."""
    ctx = int(cfg.get("max_position_embeddings") or 2048)
    window = cfg.get("sliding_window")
    if cfg.get("model_type") in ("mistral", "phi3") and window and int(window) < ctx:
        ctx = int(window)
    return ctx


def _swa_pattern(cfg: dict) -> list[bool]:
    n_layers = int(cfg["num_hidden_layers"])
    types = cfg.get("layer_types")
    if types:
        return [t == "sliding_attention" for t in types[:n_layers]]
    every = int(cfg.get("sliding_window_pattern") or (2 if cfg.get("model_type") == "gemma2" else 6))
    return [(i + 1) % every != 0 for i in range(n_layers)]


def write_hparams(writer: Any, cfg: dict, arch: Arch) -> None:
    """The ``<arch>.*`` keys llama.cpp's loader reads for this architecture."""
    n_head = int(cfg["num_attention_heads"])
    hd = head_dim(cfg)
    rope = rope_params(cfg)
    writer.add_block_count(int(cfg["num_hidden_layers"]))
    writer.add_context_length(context_length(cfg))
    writer.add_embedding_length(int(cfg["hidden_size"]))
    writer.add_feed_forward_length(int(cfg["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(int(cfg.get("num_key_value_heads") or n_head))
    writer.add_key_length(hd)
    writer.add_value_length(hd)
    writer.add_rope_freq_base(float(rope.get("rope_theta") or 10000.0))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6 if arch.name.startswith("gemma") else 1e-5)))
    partial = float(rope.get("partial_rotary_factor") or cfg.get("partial_rotary_factor") or 1.0)
    writer.add_rope_dimension_count(int(hd * partial))
    writer.add_vocab_size(int(cfg["vocab_size"]))
    if arch.name in ("gemma2", "gemma3"):
        window = cfg.get("sliding_window")
        pattern = _swa_pattern(cfg)
        if window and any(pattern):
            writer.add_sliding_window(int(window))
            writer.add_sliding_window_pattern(pattern)
            local = rope_params(cfg, "sliding_attention").get("rope_theta") or cfg.get("rope_local_base_freq")
            if local:
                writer.add_rope_freq_base_swa(float(local))
        if cfg.get("final_logit_softcapping"):
            writer.add_final_logit_softcapping(float(cfg["final_logit_softcapping"]))
        if arch.name == "gemma2" and cfg.get("attn_logit_softcapping"):
            writer.add_attn_logit_softcapping(float(cfg["attn_logit_softcapping"]))
    if arch.name == "phi3":
        writer.add_sliding_window(0)  # llama.cpp runs Phi-3 without a window; the context is capped instead
        orig = rope.get("original_max_position_embeddings") or cfg.get("original_max_position_embeddings")
        if orig:
            writer.add_rope_scaling_orig_ctx_len(int(orig))


def llama_permute(w: Any, n_head: int, n_kv_head: int | None = None) -> Any:
    """llama.cpp's rotary-half interleave of q/k rows (inverse of transformers' reverse permute)."""
    if n_kv_head is not None and n_head != n_kv_head:
        n_head = n_kv_head
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def layer_tensor(arch: Arch, cfg: dict, hf_name: str, t: Any) -> Any:
    """One layer tensor transformed the way llama.cpp expects it for ``arch``."""
    if arch.permute_qk and hf_name.startswith(("self_attn.q_proj", "self_attn.k_proj")):
        n_head = int(cfg["num_attention_heads"])
        n_kv = int(cfg.get("num_key_value_heads") or n_head)
        t = llama_permute(t, n_head, n_head if "q_proj" in hf_name else n_kv)
    if arch.norm_offset and hf_name.endswith("norm.weight"):
        t = t.float() + arch.norm_offset
    return t
