"""What the engine trains: the device and dtype it picks, the base it loads (4-bit for QLoRA) and the
adapter it wraps around it.

Separate from the loop (engine.py) so the choice of device, precision and model can be read, tested
and reused on its own; the memory estimator and the Train pane describe runs with the same words
(``precision_label``).
"""

from __future__ import annotations

import os

from studio.core.config import RunConfig
from studio.core.datasets.templates import apply_choice
from studio.core.errors import StudioError
from studio.core.heavy_imports import ensure
from studio.core.models.device import gpu_has_bf16, resolve_dtype
from studio.core.models.device import pick_device as choose_device
from studio.core.models.folder import check_safety, load_base, open_model_folder

MISSING_CONFIG = "The base model folder has no config.json. Pick a Hugging Face model folder."


def pick_device(cfg: RunConfig) -> tuple[str, str]:
    """(device, dtype name). CPU trains in fp32 (bf16 matmuls are slower there); CUDA in bf16 or fp16."""
    device = choose_device(cfg.training.device)
    return device, resolve_dtype(cfg.model.dtype, device)


def qlora_compute_dtype(cfg: RunConfig, device: str) -> str:
    """bf16 compute on a GPU without bf16 (pre-Ampere) would be emulated or refused: use fp16 there."""
    want = cfg.quant.compute_dtype
    if device == "cuda" and want == "bfloat16" and not gpu_has_bf16():
        return "float16"
    return want


def precision_label(device: str, dtype_name: str, method: str, *, quant: str = "") -> str:
    """How the run computes, in words for the log: weights dtype and any autocast on top. ``quant`` is
    a QLoRA run's 4-bit description (``quant_label``): its Linear weights are not in ``dtype_name``."""
    amp = mixed_precision(device, dtype_name, method)
    weights = f"{quant}; {dtype_name} elsewhere" if quant else f"{dtype_name} weights"
    return weights + (f" + {amp} autocast" if amp else "")


def quant_label(cfg: RunConfig, device: str) -> str:
    """A QLoRA run's base in words ("nf4 4-bit Linear weights, bfloat16 compute"); empty otherwise."""
    if cfg.method != "qlora":
        return ""
    return f"{cfg.quant.quant_type} 4-bit Linear weights, {qlora_compute_dtype(cfg, device)} compute"


def mixed_precision(device: str, dtype_name: str, method: str) -> str:
    """Trainer autocast for adapter methods on a 16-bit CUDA base; full fine-tuning trains the 16-bit
    weights directly (what the memory estimator assumes), and CPU trains in fp32."""
    if device != "cuda" or method == "full":
        return ""
    return {"bfloat16": "bf16", "float16": "fp16"}.get(dtype_name, "")


def load_model(cfg: RunConfig, device: str, dtype_name: str):
    ensure()
    import torch
    from transformers import AutoTokenizer

    base = open_model_folder(cfg.model.path, missing=MISSING_CONFIG)
    check_safety(base, allow_pickle=cfg.model.allow_pickle, trust_remote_code=None)
    path = base.path
    kwargs: dict = {}
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quant.quant_type,
            bnb_4bit_use_double_quant=cfg.quant.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, qlora_compute_dtype(cfg, device)),
        )
        if device == "cuda":
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    # The chosen chat format goes on the tokenizer, so rendering uses it and the saved adapter carries it.
    apply_choice(tokenizer, cfg.model.chat_template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_base(base, dtype_name, trust_remote_code=cfg.model.trust_remote_code, **kwargs)
    model.config.use_cache = False
    return model, tokenizer


def apply_peft(cfg: RunConfig, model):
    if cfg.method == "full":
        return model
    from peft import get_peft_model

    model = prepare_base(cfg, model)
    lora = lora_config(cfg, model)
    try:
        return get_peft_model(model, lora)
    except ValueError as err:
        raise StudioError(
            f"LoRA cannot target these modules: {err}. Pick target modules the model has (Configure pane lists them).",
            detail=str(err),
        ) from None


def prepare_base(cfg: RunConfig, model):
    """A 4-bit base made ready for adapter training (QLoRA); other bases as they are."""
    ensure("peft")
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.training.grad_checkpointing)
    return model


def lora_config(cfg: RunConfig, model):
    """The adapter ``cfg`` asks for on ``model``: the engine wraps the base in it, TRL's preference
    trainers take it as ``peft_config`` (so they know the base is the reference)."""
    ensure("peft")
    from peft import LoraConfig

    targets = cfg.lora.target_modules
    target_arg: str | list[str] = "all-linear" if targets == ["all-linear"] else list(targets)
    if isinstance(target_arg, list):  # "q_proj" on a model that fuses q/k/v means its qkv_proj
        import torch

        from studio.core.models.introspect import map_fused

        leaves = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        target_arg = map_fused(target_arg, leaves)
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=target_arg,
        use_dora=cfg.lora.use_dora,
        use_rslora=cfg.lora.use_rslora,
        task_type="CAUSAL_LM",
    )


def count_params(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
