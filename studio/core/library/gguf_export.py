"""Write a GGUF (f16, bf16 or q8_0) from a merged HF folder, with the gguf package alone.

No llama.cpp build is needed to write it: the layout follows llama.cpp's own converter
(``convert_hf_to_gguf.py``) per architecture (``gguf_arch``: Llama/Mistral, Qwen2/3, Gemma 2/3,
Phi-3) and the tokenizer keys follow its vocab loader (``gguf_vocab``: byte-level BPE with a
pre-tokenizer name chosen by behaviour, or SentencePiece-style with scores and byte pieces).
k-quants (Q4_K_M) need llama.cpp's own quantizer, which ``llamacpp_runner`` runs on the f16 output
when llama-cpp-python is installed. The export proves every file in llama.cpp itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.library.gguf_arch import arch_for, layer_tensor, llama_permute, write_hparams
from studio.core.library.gguf_vocab import end_of_turn_id, llamacpp_name, tokenizer_metadata, write_tokenizer
from studio.core.models.folder import CONFIG_FILE, has_config, read_config_file
from studio.core.progress import Progress, no_progress

__all__ = ["GGUF_TYPES", "LLAMACPP_TYPES", "WRITTEN_TYPES", "check_exportable", "gguf_file_name", "llama_permute",
           "write_gguf"]

# What the writer makes itself, and what llama.cpp's quantizer makes from its f16 output.
WRITTEN_TYPES = ("f16", "bf16", "q8_0")
LLAMACPP_TYPES = ("q4_k_m",)
GGUF_TYPES = (*WRITTEN_TYPES, *LLAMACPP_TYPES)
_FILE_TYPE = {"f16": 1, "q8_0": 7, "bf16": 32}  # llama.cpp LLAMA_FTYPE_MOSTLY_F16 / MOSTLY_Q8_0 / MOSTLY_BF16


def gguf_file_name(gguf_type: str, name: str = "model") -> str:
    """``<model name>-<TYPE>.gguf``, the naming Ollama, LM Studio and llama.cpp users know."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    return f"{stem}-{gguf_type.upper()}.gguf"


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
    elif gguf_type == "bf16":
        q = quantize(arr.astype(np.float32), GGMLQuantizationType.BF16)
        writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=GGMLQuantizationType.BF16)
    else:
        writer.add_tensor(name, arr.astype(np.float16))


def _config(model_dir: Path) -> dict:
    if not has_config(model_dir):
        raise StudioError("The model folder has no config.json, so its architecture is unknown.", path=model_dir)
    cfg = read_config_file(model_dir / CONFIG_FILE)
    if isinstance(cfg.get("text_config"), dict) and cfg.get("model_type") == "gemma3":
        raise StudioError("This is the multimodal Gemma 3; the studio writes GGUF for the text model only. "
                          "Export the merged safetensors folder and convert it with llama.cpp's "
                          "convert_hf_to_gguf.py.", path=model_dir)
    return cfg


def check_exportable(model_dir: Path) -> None:
    """Refuse, before any merging, a model the writer cannot turn into a GGUF llama.cpp runs."""
    from studio.core.library import llamacpp_runner

    model_dir = Path(model_dir)
    cfg = _config(model_dir)
    arch_for(cfg, model_dir)
    gap = transformers_reader_gap(cfg, model_dir)
    if gap and not llamacpp_runner.available():
        raise StudioError(f"A GGUF of this model can only be proven in llama.cpp ({gap}), and llama.cpp is not "
                          f"installed here; {llamacpp_runner.INSTALL_HINT}.", path=model_dir)


def transformers_reader_gap(cfg: dict, model_dir: Path) -> str | None:
    """Why transformers' GGUF reader would rebuild this model or tokenizer differently from what the file
    says (and llama.cpp runs), or None when it reads it faithfully. Fixed per architecture in advance,
    from what that reader maps, so a wrong file can never excuse itself here."""
    from studio.core.library.gguf_arch import head_dim
    from studio.core.library.gguf_vocab import sentencepiece_prefix_gap

    model_type = cfg.get("model_type")
    if model_type in ("gemma2", "gemma3_text"):
        return "transformers' GGUF reader rebuilds Gemma without its attention scale, soft-capping and sliding layers"
    if model_type == "qwen3" and head_dim(cfg) != 128:
        return "transformers' GGUF reader assumes Qwen3's head size of 128"
    return sentencepiece_prefix_gap(model_dir)


def write_gguf(model_dir: Path, out_file: Path, gguf_type: str = "f16", *, name: str | None = None,
               progress: Progress | None = None) -> Path:
    """Write ``out_file`` from the merged HF folder ``model_dir``. Not atomic itself: callers write it
    inside the export's temp folder, which is renamed into place only when everything succeeded, so
    ``name`` (``general.name``, what runtimes show) is the export's own name, never the temp folder's."""
    from gguf import GGUFWriter

    report = progress or no_progress
    if gguf_type not in WRITTEN_TYPES:
        raise StudioError(f"Unknown GGUF type '{gguf_type}'; choose one of {', '.join(WRITTEN_TYPES)}.")
    model_dir, out_file = Path(model_dir), Path(out_file)
    cfg = _config(model_dir)
    arch = arch_for(cfg, model_dir)
    n_layers = int(cfg["num_hidden_layers"])
    report(0.0, f"GGUF {gguf_type}: reading tokenizer")
    meta = tokenizer_metadata(model_dir, int(cfg["vocab_size"]))
    meta["eot"] = end_of_turn_id(model_dir, meta)
    weights = _read_weights(model_dir)
    tied = arch.always_tied or bool(cfg.get("tie_word_embeddings")) or "lm_head.weight" not in weights

    writer = GGUFWriter(str(out_file), arch.name)
    writer.add_name(llamacpp_name(name or model_dir.name, model_dir))
    writer.add_file_type(_FILE_TYPE[gguf_type])
    write_hparams(writer, cfg, arch)
    write_tokenizer(writer, meta)

    report(0.2, f"GGUF {gguf_type}: converting tensors")
    _add_weight(writer, "token_embd.weight", weights["model.embed_tokens.weight"], gguf_type)
    for i in range(n_layers):
        for hf, gg in arch.layer_tensors.items():
            key = f"model.layers.{i}.{hf}"
            if key not in weights:
                raise StudioError(f"The merged model lacks '{key}'; it is not the {arch.name} layout llama.cpp "
                                  "expects.", path=model_dir)
            _add_weight(writer, f"blk.{i}.{gg}", layer_tensor(arch, cfg, hf, weights[key]), gguf_type)
        report(0.2 + 0.6 * (i + 1) / n_layers, f"GGUF {gguf_type}: layer {i + 1}/{n_layers}")
    _add_weight(writer, "output_norm.weight", layer_tensor(arch, cfg, "norm.weight", weights["model.norm.weight"]),
                gguf_type)
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
