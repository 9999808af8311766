"""Which of an adapter's tensors PEFT really loads, decided by PEFT itself.

``PeftModel.from_pretrained`` wraps the layers ``adapter_config.json`` names (when
``target_modules`` is missing, PEFT's default for the architecture: q_proj and v_proj on Llama) and
then loads the weights file with ``strict=False``. Tensors for any other layer are dropped without
an error, so the adapter silently computes something else than what was trained; a merge that
applied every tensor in the file would disagree with PEFT, and a merge through PEFT would pass its
own proof while losing most of the adapter.

``check_peft_loads_all`` asks PEFT the same question on the meta device: the base is built from its
config without weights, the adapter is injected exactly as ``from_pretrained`` does, and the file's
tensor names (shapes from its header, no data read) go through PEFT's own ``set_peft_model_state_dict``.
Tensors PEFT would not load, and layers it would wrap with no tensor in the file, are a StudioError
that says how to repair the config. Every place that puts an adapter on a base (export, playground,
import) calls it, so they all read an adapter the way PEFT does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.heavy_imports import ensure
from studio.core.library.adapter_files import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from studio.core.models.identity import safetensors_header

_PROBE = "studioprobe"  # the adapter name used on the meta model (free of dots, as PEFT needs)
_LAYER = re.compile(r"(?:^|\.)(?P<layer>[^.]+)\.lora_[A-Za-z_]+(?:\.|$)")
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def read_adapter_config(adapter_dir: Path) -> Any:
    """The adapter's config as PEFT reads it, or a StudioError naming the file and the fault."""
    ensure("peft")
    from peft import PeftConfig

    path = Path(adapter_dir) / ADAPTER_CONFIG
    try:
        config = PeftConfig.from_pretrained(str(Path(adapter_dir)))
    except Exception as err:
        raise StudioError(
            f"{ADAPTER_CONFIG} cannot be read as a PEFT adapter config ({type(err).__name__}: {err}). "
            "It may be damaged or written by an incompatible tool; use the config saved with the adapter.",
            path=path, detail=repr(err)) from None
    return config


def _short(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _layer_names(keys: list[str]) -> list[str]:
    return sorted({m["layer"] for k in keys if (m := _LAYER.search(k))})


def _meta_base(base: Path, trust_remote_code: bool) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        cfg = AutoConfig.from_pretrained(str(base), trust_remote_code=trust_remote_code, local_files_only=True)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(cfg, trust_remote_code=trust_remote_code)
    except Exception as err:
        raise StudioError("The base model could not be built from its config.json to check the adapter.",
                          path=Path(base) / "config.json", detail=f"{type(err).__name__}: {err}") from None


def check_peft_loads_all(adapter_dir: Path, base: Path, *, trust_remote_code: bool = False) -> None:
    """Raise a StudioError unless PEFT would load every tensor of the adapter, and nothing but them."""
    ensure("peft")
    import warnings

    import torch
    from peft import get_peft_model, set_peft_model_state_dict
    from peft.mapping import PEFT_TYPE_TO_PREFIX_MAPPING

    adapter_dir, base = Path(adapter_dir), Path(base)
    config = read_adapter_config(adapter_dir)
    header = {k: v for k, v in safetensors_header(adapter_dir / ADAPTER_WEIGHTS).items() if k != "__metadata__"}
    try:
        state = {k: torch.empty(tuple(v["shape"]), dtype=getattr(torch, _DTYPES[v["dtype"]]), device="meta")
                 for k, v in header.items()}
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise StudioError("The adapter's weights file lists a tensor with an unreadable shape or type; it may be "
                          "corrupt.", path=adapter_dir / ADAPTER_WEIGHTS, detail=repr(err)) from None
    model = _meta_base(base, trust_remote_code)
    requested = config.target_modules
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PEFT's advice about the meta model is not for the user
            peft_model = get_peft_model(model, config, adapter_name=_PROBE)
            result = set_peft_model_state_dict(peft_model, state, adapter_name=_PROBE, ignore_mismatched_sizes=True)
    except Exception as err:
        raise StudioError(
            f"PEFT cannot put this adapter on {base.name} as {ADAPTER_CONFIG} describes it "
            f"({type(err).__name__}: {err}). Check its target_modules, r and lora_alpha, or use the config "
            "saved with the adapter.", path=adapter_dir / ADAPTER_CONFIG, detail=repr(err)) from None
    prefix = PEFT_TYPE_TO_PREFIX_MAPPING.get(config.peft_type, "lora_")
    unexpected = sorted(result.unexpected_keys)
    missing = sorted(k for k in result.missing_keys if prefix in k and _PROBE in k)
    if unexpected:
        wrapped = config.target_modules
        wrapped = sorted(wrapped) if isinstance(wrapped, (set, list, tuple)) else [str(wrapped)]
        why = (f"target_modules is missing, so PEFT uses its default for this architecture ({_short(wrapped)})"
               if requested is None else f"target_modules names {_short(wrapped)}")
        want = sorted({*_layer_names(list(header)), *(w for w in wrapped if "." not in w)} - {"*"})
        raise StudioError(
            f"{ADAPTER_CONFIG} does not match the adapter's weights: {why}; PEFT — and every tool built on it — "
            f"would silently ignore {len(unexpected)} of its tensors (layers {_short(_layer_names(unexpected))}). "
            f"In a copy of the adapter, set target_modules to the layers its weights are for "
            f"({_short(want, 8)}) and use that copy.",
            path=adapter_dir / ADAPTER_CONFIG, detail="\n".join(unexpected))
    misfit = [k for k in missing if k.replace(f".{_PROBE}", "") in header]
    if misfit:  # the names match, the shapes do not (PEFT's ignore_mismatched_sizes set them aside)
        raise StudioError(
            f"The adapter does not fit the base model {base.name}; it was probably trained on a different model "
            f"(layers {_short(_layer_names(misfit))} have other shapes).", path=adapter_dir, detail="\n".join(misfit))
    if missing:
        raise StudioError(
            f"{ADAPTER_CONFIG} puts the adapter on layers its weights file has no tensors for "
            f"({_short(_layer_names(missing))}), so PEFT would give them untrained weights. The adapter is "
            "incomplete, or its config belongs to another adapter.", path=adapter_dir, detail="\n".join(missing))


# ---------------------------------------------------------------- shapes, read from the headers alone


def _module_shapes(base: Path) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, ...]]]:
    """(Linear/Embedding name -> (in, out), parameter name -> shape) of the base, built on the meta device."""
    ensure()
    import torch

    model = _meta_base(base, trust_remote_code=False)
    modules: dict[str, tuple[int, int]] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            modules[name] = (mod.in_features, mod.out_features)
        elif isinstance(mod, torch.nn.Embedding):
            modules[name] = (mod.num_embeddings, mod.embedding_dim)
    params = {n: tuple(p.shape) for n, p in model.named_parameters()}
    return modules, params


_LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B|"
    r"lora_magnitude_vector)(?:\.[^.]+)?(?:\.weight)?$"
)


def _fits(kind: str, shape: tuple, d_in: int, d_out: int) -> bool:
    """LoRA A is (r, in), B is (out, r); DoRA's magnitude is (out,). Embeddings count tokens as "in"."""
    if kind in ("lora_A", "lora_embedding_A"):
        return len(shape) == 2 and shape[1] == d_in
    if kind in ("lora_B", "lora_embedding_B"):
        return len(shape) == 2 and shape[0] == d_out
    return len(shape) == 1 and shape[0] == d_out


def check_adapter_shapes(adapter_dir: Path, base: Path) -> None:
    """Every adapter tensor must fit a module of ``base``, else a clear StudioError (read from headers only)."""
    header = safetensors_header(Path(adapter_dir) / ADAPTER_WEIGHTS)
    modules, params = _module_shapes(base)
    problems: list[str] = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        shape = tuple(info.get("shape", ()))
        m = _LORA_KEY.match(key)
        if m is None:  # modules_to_save and other full tensors: must match a base parameter exactly
            pname = key.removeprefix("base_model.model.")
            pname = re.sub(r"\.modules_to_save\.[^.]+", "", pname)
            if pname in params and params[pname] != shape:
                problems.append(f"{pname}: adapter {list(shape)} vs base {list(params[pname])}")
            elif pname not in params:
                problems.append(f"{pname}: not in the base model")
            continue
        module, kind = m.group("module"), m.group("kind")
        if module not in modules:
            problems.append(f"{module}: the base model has no such layer")
            continue
        d_in, d_out = modules[module]
        if not _fits(kind, shape, d_in, d_out):
            problems.append(f"{key}: shape {list(shape)} does not fit {module} ({d_in} in, {d_out} out)")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise StudioError(
            f"This adapter was trained on a different model than {base.name}: its tensor shapes do not match ({shown}).",
            detail="\n".join(problems), path=adapter_dir,
        )


__all__ = ["check_adapter_shapes", "check_peft_loads_all", "read_adapter_config"]
