"""Merge a plain LoRA adapter straight into the base model's safetensors, shard by shard.

``PeftModel.from_pretrained`` + ``merge_and_unload`` + ``save_pretrained`` builds the whole model,
wraps every target layer, merges layer by layer and serialises again: for the bundled 135M model
that is six times the cost of a plain ``save_pretrained``. For a plain LoRA adapter the merge is
only ``W + scale · B @ A`` per target weight, so here every base tensor is read from its shard
(memory-mapped), the update added in fp32, the result cast to the export dtype and written to a
shard of the same name. Peak memory is one shard, not the whole model.

Anything this does not handle exactly (DoRA, bias or embedding LoRA, ``modules_to_save``, per-layer
rank/alpha patterns, Conv1D layouts, resized vocabularies, modules kept in fp32, keys that do not
match the base file) is named by ``plan_direct_merge`` and the caller falls back to PEFT's own
merge. The export's equivalence proof compares the written files against the *unmerged* PeftModel,
so this code is checked by an independent implementation whenever the proof runs.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.datasets.tokenizer import TOKENIZER_FILES
from studio.core.errors import StudioError
from studio.core.heavy_imports import ensure
from studio.core.library.adapter_files import ADAPTER_WEIGHTS, AdapterFiles, read_adapter
from studio.core.models.identity import safetensors_header, weight_files
from studio.core.progress import Progress

_LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")
_INDEX = "model.safetensors.index.json"
_SINGLE = "model.safetensors"
_UNSUPPORTED_OPTIONS = {
    "use_dora": "DoRA adapters",
    "modules_to_save": "adapters that save whole modules",
    "rank_pattern": "per-layer ranks",
    "alpha_pattern": "per-layer alphas",
    "fan_in_fan_out": "Conv1D (fan-in/fan-out) layers",
    "layer_replication": "layer replication",
    "trainable_token_indices": "trained token embeddings",
    "lora_bias": "LoRA biases",
    "use_qalora": "QA-LoRA",
}


@dataclass
class DirectMergePlan:
    base: Path
    adapter_dir: Path
    shards: list[str]                        # base weight files, written under the same names
    scale: dict[str, float]                  # base tensor key → LoRA scaling
    adapter_keys: dict[str, tuple[str, str]]  # base tensor key → (lora_A key, lora_B key)
    config: Any                              # the base's transformers config (read once, saved with the merge)
    index: dict | None = None                # the base's shard index, if sharded


def _header(path: Path) -> dict:
    return {k: v for k, v in safetensors_header(path).items() if k != "__metadata__"}


def _keeps_fp32(config) -> bool:
    """Whether the architecture keeps some modules in fp32 (a blanket cast would differ from transformers)."""
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except Exception:
        return True  # unknown class: let transformers decide
    return bool(getattr(cls, "_keep_in_fp32_modules", None) or getattr(cls, "_keep_in_fp32_modules_strict", None))


def plan_direct_merge(
    adapter: AdapterFiles | Path, base: Path, *, trust_remote_code: bool = False,
) -> tuple[DirectMergePlan | None, str]:
    """A plan for merging without building the model, or (None, why not).

    Before planning, PEFT itself says which tensors it loads (``check_peft_loads_all``): the plan
    merges every LoRA tensor in the file, which is only what PEFT computes when PEFT loads all of
    them and no more. An adapter whose config disagrees with its weights is refused, never merged.
    Adapters handed back to PEFT (None) are checked by the caller before PEFT loads them.
    """
    from studio.core.library.adapter_keys import check_peft_loads_all

    if not isinstance(adapter, AdapterFiles):
        adapter = read_adapter(adapter)
    adapter_dir, cfg, base = adapter.folder, adapter.config, Path(base)
    if cfg.get("peft_type") != "LORA":
        return None, f"{cfg.get('peft_type')} adapters"
    for option, what in _UNSUPPORTED_OPTIONS.items():
        if cfg.get(option):
            return None, what
    if cfg.get("bias", "none") != "none":
        return None, "adapters that train biases"
    check_peft_loads_all(adapter_dir, base, trust_remote_code=trust_remote_code)
    files = weight_files(base)  # what transformers loads, in its order; a clear error for missing shards
    if files[0].name == _SINGLE:
        index, shards = None, [_SINGLE]
    elif files[0].name == _INDEX:
        index = json.loads(files[0].read_text(encoding="utf-8"))
        shards = [f.name for f in files[1:]]
    else:
        return None, "base weights not in model.safetensors"
    base_shapes: dict[str, list[int]] = {}
    for shard in shards:
        for key, info in _header(base / shard).items():
            base_shapes[key] = info["shape"]
    pairs: dict[str, dict[str, str]] = {}
    shapes: dict[str, list[int]] = {}
    for key, info in _header(adapter.weights).items():
        m = _LORA_KEY.match(key)
        if m is None:
            return None, f"adapter tensor {key}"
        pairs.setdefault(m["module"] + ".weight", {})[m["ab"]] = key
        shapes[key] = info["shape"]
    if not pairs:
        return None, "an adapter without LoRA weights"
    scale: dict[str, float] = {}
    keys: dict[str, tuple[str, str]] = {}
    alpha = float(cfg.get("lora_alpha") or 8)
    for target, ab in pairs.items():
        if set(ab) != {"A", "B"} or target not in base_shapes:
            return None, f"adapter module {target} has no matching base weight"
        a_shape, b_shape = shapes[ab["A"]], shapes[ab["B"]]
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
            return None, f"adapter module {target} is not a linear LoRA"
        if [b_shape[0], a_shape[1]] != base_shapes[target]:
            raise StudioError(
                f"The adapter does not fit the base model {base.name}; it was probably trained on a different model.",
                detail=f"{target}: the LoRA update is {b_shape[0]}×{a_shape[1]}, the weight "
                       f"{'×'.join(map(str, base_shapes[target]))}", path=adapter_dir)
        r = a_shape[0]
        scale[target] = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        keys[target] = (ab["A"], ab["B"])
    ensure()
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(base))
    if _keeps_fp32(config):
        return None, "an architecture that keeps some modules in fp32"
    return DirectMergePlan(base=base, adapter_dir=adapter_dir, shards=shards, scale=scale, adapter_keys=keys,
                           config=config, index=index), ""


def write_merged(plan: DirectMergePlan, out: Path, dtype: str, progress: Progress):
    """Merged weights and config into ``out`` (an existing, empty temp folder). Returns the base's
    generation config for the caller to complete and save, as it does after PEFT's merge."""
    ensure()
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    target = getattr(torch, dtype)
    total_size = 0
    with safe_open(str(plan.adapter_dir / ADAPTER_WEIGHTS), "pt") as lora:
        for n, shard in enumerate(plan.shards):
            progress(n / len(plan.shards), f"Merging {shard}")
            tensors: dict[str, torch.Tensor] = {}
            with safe_open(str(plan.base / shard), "pt") as src:
                for key in src.keys():  # noqa: SIM118  (safe_open is not iterable)
                    t = src.get_tensor(key)
                    if key in plan.adapter_keys:   # shapes were checked against the headers by the plan
                        a_key, b_key = plan.adapter_keys[key]
                        delta = lora.get_tensor(b_key).float() @ lora.get_tensor(a_key).float()
                        t = t.float().add_(delta, alpha=plan.scale[key])
                    if t.is_floating_point():
                        t = t.to(target)
                    tensors[key] = t.contiguous()
                    total_size += t.numel() * t.element_size()
            save_file(tensors, str(out / shard), metadata={"format": "pt"})
            del tensors
    if plan.index is not None:
        index = {"metadata": {**plan.index.get("metadata", {}), "total_size": total_size},
                 "weight_map": plan.index["weight_map"]}
        (out / _INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    config = plan.config
    config.dtype = target
    config.save_pretrained(str(out))
    try:
        gen = GenerationConfig.from_pretrained(str(plan.base))
    except OSError:
        gen = GenerationConfig.from_model_config(config)
    return gen


def copy_tokenizer_files(source: Path, out: Path) -> None:
    """The tokenizer as its files are (no load/save round trip to drift through)."""
    for name in TOKENIZER_FILES:
        if (Path(source) / name).is_file():
            shutil.copy2(Path(source) / name, Path(out) / name)


__all__ = ["DirectMergePlan", "copy_tokenizer_files", "plan_direct_merge", "write_merged"]
