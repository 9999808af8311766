"""What a model folder holds, learned from ``config.json`` alone.

The model is instantiated on the meta device (shapes, no memory, no weights), so the Configure pane
can list LoRA targets and the memory estimator can count parameters for a 70B model on a laptop.
Results are cached per (folder, config.json mtime) because the pane asks again on every refresh.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from studio.core.config import TARGET_PRESETS
from studio.core.errors import StudioError
from studio.core.heavy_imports import ensure
from studio.core.models.folder import (
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIX,
    ModelFolder,
    check_safety,
    config_file,
    read_config_file,
    weight_file_names,
)

ALL_LINEAR = "all-linear"

# Words in a module's parent path that tell which sub-block a Linear sits in. The roles only
# shape the activation estimate (which inputs autograd keeps), never the parameter counts.
_ATTN_WORDS = ("attn", "attention")
_MLP_WORDS = ("mlp", "feed_forward", "ffn", "ff")

_CACHE: dict[tuple, ModelInfo] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 32


@dataclass(frozen=True)
class LinearModule:
    """All Linear-like modules of one leaf name and shape (``count`` of them across the layers)."""

    name: str
    d_in: int
    d_out: int
    count: int
    bias: bool
    kind: str  # "linear" (nn.Linear) or "conv1d" (transformers' GPT-2 Conv1D, weight stored transposed)
    role: str  # "attn_in" | "attn_out" | "mlp_in" | "mlp_out" | "other"

    @property
    def weight_params(self) -> int:
        return self.count * self.d_in * self.d_out


@dataclass(frozen=True)
class ModelInfo:
    path: str
    architecture: str
    model_type: str
    total_params: int  # tied weights counted once
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    context_length: int
    tie_word_embeddings: bool
    config_dtype: str | None  # as declared in config.json ("bfloat16"), None when absent
    attn_implementation: str  # what transformers picks by default here ("sdpa", "eager")
    linear_modules: tuple[LinearModule, ...]  # LoRA-targetable, output head excluded
    head: LinearModule | None  # the output projection (lm_head); its weight may be the tied embedding
    linear_weight_params: int  # weights of ``linear_modules``: what 4-bit loading quantises
    linear_bias_params: int
    embedding_params: int  # input embedding (shared with the head when tied)
    vector_params: int  # all 1-D parameters (norms, biases)
    vector_tensors: int
    param_tensors: int  # distinct parameter tensors (a tied weight once)
    weight_files: tuple[str, ...]
    mlp_gated: bool  # SwiGLU-style (gate * up) rather than a single up projection

    @property
    def target_names(self) -> list[str]:
        """Leaf names LoRA can target, in model order, each once."""
        seen: dict[str, None] = {}
        for m in self.linear_modules:
            seen.setdefault(m.name, None)
        return list(seen)

    @property
    def has_safetensors(self) -> bool:
        return any(f.endswith(SAFETENSORS_SUFFIX) for f in self.weight_files)

    @property
    def has_pickle(self) -> bool:
        return any(f.endswith(PICKLE_SUFFIXES) for f in self.weight_files)

    @property
    def other_params(self) -> int:
        """Parameters outside the targetable Linears: embeddings, untied head, norms. Never quantised."""
        return self.total_params - self.linear_weight_params

    def modules_named(self, names: list[str] | set[str]) -> list[LinearModule]:
        wanted = set(names)
        return [m for m in self.linear_modules if m.name in wanted]


def inspect_model(path: Path, *, trust_remote_code: bool = False, allow_pickle: bool = False) -> ModelInfo:
    """Describe the model in ``path`` without loading weights. Raises StudioError on anything unusable."""
    path = Path(path).expanduser()
    cfg_path = config_file(path)
    files = weight_file_names(path)
    key = (str(path.resolve()), os.stat(cfg_path).st_mtime_ns, trust_remote_code, allow_pickle, files)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    info = _inspect(path, cfg_path, files, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = info
    return info


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _inspect(path: Path, cfg_path: Path, files: tuple[str, ...], *, trust_remote_code: bool, allow_pickle: bool) -> ModelInfo:
    raw = read_config_file(cfg_path)
    has_st = any(f.endswith(SAFETENSORS_SUFFIX) for f in files)
    has_pickle = any(f.endswith(PICKLE_SUFFIXES) for f in files)
    check_safety(ModelFolder(path, raw, has_st, has_pickle), allow_pickle=allow_pickle, trust_remote_code=None,
                 weights_required=False)

    ensure()
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = raw.get("model_type")
    if not model_type or not isinstance(model_type, str):
        raise StudioError(
            "config.json has no model_type, so the architecture is unknown. "
            "Use a folder saved by transformers (save_pretrained).",
            path=cfg_path,
        )
    native = model_type in CONFIG_MAPPING
    if raw.get("auto_map") and not native and not trust_remote_code:
        raise StudioError(
            f"Model type '{model_type}' needs Python code shipped inside the model folder (auto_map in config.json). "
            "Running it means running someone else's code on this machine. Turn on 'trust remote code' in "
            "the model settings only if you trust where the model came from.",
            path=cfg_path,
        )
    if not native and not raw.get("auto_map"):
        raise StudioError(
            f"Unknown architecture: model_type '{model_type}' is not supported by the installed transformers "
            f"and the folder ships no code for it. Pick a supported model (Llama, Qwen2, Mistral, GPT-2, ...).",
            path=cfg_path,
        )
    try:
        cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code, local_files_only=True)
    except Exception as err:
        raise StudioError(
            f"config.json could not be read as a '{model_type}' configuration: {err}",
            path=cfg_path,
            detail=repr(err),
        ) from None
    model = _meta_model(AutoModelForCausalLM, cfg, trust_remote_code, cfg_path)
    return _describe(model, cfg, raw, path, files)


def _meta_model(auto_cls, cfg, trust_remote_code: bool, cfg_path: Path):
    import torch

    try:
        with torch.device("meta"):
            return auto_cls.from_config(cfg, trust_remote_code=trust_remote_code)
    except ValueError as err:
        raise StudioError(
            f"'{cfg.model_type}' is not a text-generation (causal LM) architecture, so it cannot be fine-tuned here.",
            path=cfg_path,
            detail=str(err),
        ) from None
    except Exception as err:
        raise StudioError(
            f"The model could not be built from config.json: {type(err).__name__}: {err}",
            path=cfg_path,
            detail=repr(err),
        ) from None


def _role(module_path: str, last_in_parent: bool) -> str:
    parts = [p.lower() for p in module_path.split(".")[:-1]]
    block = ""
    for p in reversed(parts):
        if any(w in p for w in _ATTN_WORDS):
            block = "attn"
            break
        if any(p == w or p.startswith(w + "_") or p.endswith("_" + w) for w in _MLP_WORDS):
            block = "mlp"
            break
    if not block:
        return "other"
    return f"{block}_{'out' if last_in_parent else 'in'}"


def _describe(model, cfg, raw: dict, path: Path, files: tuple[str, ...]) -> ModelInfo:
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    head_mod = model.get_output_embeddings()
    emb_mod = model.get_input_embeddings()

    # Linear-like modules in registration order, remembering which one is last in its parent:
    # o_proj / down_proj / c_proj are registered after the projections that feed them.
    linears: list[tuple[str, nn.Module]] = []
    head_name = None
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, Conv1D)):
            if mod is head_mod:
                head_name = name
                continue
            linears.append((name, mod))
    last_of_parent: dict[str, str] = {}
    for name, _ in linears:
        last_of_parent[name.rsplit(".", 1)[0] if "." in name else ""] = name

    groups: dict[tuple, list] = {}
    bias_params = 0
    for name, mod in linears:
        if isinstance(mod, Conv1D):
            d_in, d_out = mod.weight.shape  # Conv1D stores (in, out): fan_in_fan_out
            kind = "conv1d"
        else:
            d_out, d_in = mod.weight.shape
            kind = "linear"
        has_bias = getattr(mod, "bias", None) is not None
        if has_bias:
            bias_params += mod.bias.numel()
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        role = _role(name, last_of_parent[parent] == name)
        leaf = name.rsplit(".", 1)[-1]
        k = (leaf, int(d_in), int(d_out), has_bias, kind, role)
        groups.setdefault(k, [0])[0] += 1
    linear_modules = tuple(
        LinearModule(name=k[0], d_in=k[1], d_out=k[2], count=v[0], bias=k[3], kind=k[4], role=k[5])
        for k, v in groups.items()
    )

    head = None
    if head_mod is not None and isinstance(head_mod, (nn.Linear, Conv1D)):
        w = head_mod.weight
        d_out, d_in = (w.shape[1], w.shape[0]) if isinstance(head_mod, Conv1D) else tuple(w.shape)
        head = LinearModule(name=(head_name or "lm_head").rsplit(".", 1)[-1], d_in=int(d_in), d_out=int(d_out),
                            count=1, bias=head_mod.bias is not None, kind="linear", role="head")

    params = list(model.parameters())  # .parameters() yields a shared (tied) tensor once
    total = sum(p.numel() for p in params)
    vectors = [p for p in params if p.dim() == 1]
    tied = bool(head_mod is not None and emb_mod is not None and head_mod.weight is emb_mod.weight)

    hidden = int(getattr(text, "hidden_size", None) or getattr(text, "n_embd", 0))
    layers = int(getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", 0))
    heads = int(getattr(text, "num_attention_heads", None) or getattr(text, "n_head", 0) or 1)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or (hidden // heads if heads else 0))
    inter = int(getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * hidden)
    vocab = int(getattr(text, "vocab_size", 0) or (emb_mod.weight.shape[0] if emb_mod is not None else 0))
    ctx = 0
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        val = getattr(text, attr, None)
        if isinstance(val, int) and val > 0:
            ctx = val
            break
    dtype = raw.get("dtype") or raw.get("torch_dtype")
    mlp_in_out = sum(m.count * m.d_out for m in linear_modules if m.role == "mlp_in")
    gated = bool(layers and inter and mlp_in_out >= 2 * inter * layers)
    archs = getattr(cfg, "architectures", None) or [type(model).__name__]
    return ModelInfo(
        path=str(path),
        architecture=str(archs[0]),
        model_type=str(cfg.model_type),
        total_params=int(total),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        context_length=ctx,
        tie_word_embeddings=tied,
        config_dtype=str(dtype) if dtype else None,
        attn_implementation=str(getattr(model.config, "_attn_implementation", None) or "eager"),
        linear_modules=linear_modules,
        head=head,
        linear_weight_params=sum(m.weight_params for m in linear_modules),
        linear_bias_params=int(bias_params),
        embedding_params=int(emb_mod.weight.numel()) if emb_mod is not None else 0,
        vector_params=int(sum(p.numel() for p in vectors)),
        vector_tensors=len(vectors),
        param_tensors=len(params),
        weight_files=files,
        mlp_gated=gated,
    )


def _expand(item: str) -> list[str]:
    key = item.strip()
    if key.lower().replace(" ", "-") == ALL_LINEAR:
        return [ALL_LINEAR]
    if key in TARGET_PRESETS:
        out: list[str] = []
        for sub in TARGET_PRESETS[key]:
            out.extend(_expand(sub))
        return out
    return [key]


# Projections some families fuse into one Linear (Phi-3's qkv_proj and gate_up_proj, Falcon's query_key_value): a
# preset or config that names the parts means the fused layer on such a model, as the user intends.
_FUSED_INTO = {
    "q_proj": ("qkv_proj", "query_key_value", "Wqkv"),
    "k_proj": ("qkv_proj", "query_key_value", "Wqkv"),
    "v_proj": ("qkv_proj", "query_key_value", "Wqkv"),
    "gate_proj": ("gate_up_proj",),
    "up_proj": ("gate_up_proj",),
}


def map_fused(wanted: list[str], available: list[str] | set[str]) -> list[str]:
    """``wanted`` with each name the model lacks replaced by the fused layer that holds it, if any."""
    have = set(available)
    out: list[str] = []
    for name in wanted:
        if name not in have:
            name = next((f for f in _FUSED_INTO.get(name, ()) if f in have), name)
        if name not in out:
            out.append(name)
    return out


def resolve_targets(info: ModelInfo, target_modules: list[str] | tuple[str, ...] | str) -> list[str]:
    """Leaf names LoRA will adapt, in model order. ``all-linear`` means what PEFT means by it:
    every Linear-like layer except the output head."""
    if isinstance(target_modules, str):
        target_modules = [t for t in target_modules.split(",") if t.strip()] if "," in target_modules else [target_modules]
    wanted: list[str] = []
    for item in target_modules:
        wanted.extend(_expand(item))
    available = info.target_names
    if ALL_LINEAR in wanted:
        return available
    wanted = map_fused(wanted, available)
    unknown = [w for w in dict.fromkeys(wanted) if w not in available]
    if unknown:
        raise StudioError(
            f"This model has no Linear layer named {', '.join(repr(u) for u in unknown)}. "
            f"LoRA can target: {', '.join(available)} (or all-linear)."
        )
    if not wanted:
        raise StudioError("Choose at least one target module for LoRA.")
    chosen = set(wanted)
    return [n for n in available if n in chosen]
