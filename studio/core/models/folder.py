"""One Hugging Face model folder: what it holds, whether it is safe to load, and the load itself.

Training, the merge, the full-model export, the playground, the memory estimate and the panes all
open base models. Each used to check ``config.json`` and the weight files its own way and refuse
pickle weights or shipped code in its own words; they now ask this module, so a folder one of them
accepts is a folder the others accept, and the refusals live in one place. Where the device and dtype
come from is ``studio.core.models.device``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError

CONFIG_FILE = "config.json"
SAFETENSORS_SUFFIX = ".safetensors"
# Pickle-based checkpoints: unpickling can run arbitrary code, so they need an explicit opt-in.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def has_config(folder: Path | str) -> bool:
    """Whether ``folder`` holds a ``config.json`` (the mark of a Hugging Face model folder)."""
    return (Path(folder) / CONFIG_FILE).is_file()


def has_safetensors(folder: Path | str) -> bool:
    return any(Path(folder).glob(f"*{SAFETENSORS_SUFFIX}"))


def has_pickle(folder: Path | str) -> bool:
    return any(any(Path(folder).glob(f"*{suffix}")) for suffix in PICKLE_SUFFIXES)


def is_loadable(folder: Path | str) -> bool:
    """A config and safetensors weights: what every loader here accepts without an opt-in."""
    return has_config(folder) and has_safetensors(folder)


def weight_file_names(folder: Path) -> tuple[str, ...]:
    """Names of the top-level safetensors and pickle files, sorted (part of the inspection's cache key)."""
    return tuple(child.name for child in sorted(Path(folder).iterdir())
                 if child.is_file() and child.name.endswith((SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES)))


def config_file(folder: Path) -> Path:
    """``folder``'s config.json, or a StudioError saying why the folder is not a model folder."""
    if not folder.exists():
        raise StudioError("Model folder not found. Pick a folder that holds config.json.", path=folder)
    if not folder.is_dir():
        raise StudioError("This is a file, not a model folder. Pick the folder that holds config.json.", path=folder)
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise StudioError(
            "No config.json in this folder, so it is not a Hugging Face model folder. "
            "Pick the folder that holds config.json (and the .safetensors weights).",
            path=folder,
        )
    return cfg_path


def read_config_file(cfg_path: Path) -> dict:
    """config.json as a dict, or a StudioError with the line where the JSON breaks."""
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise StudioError("config.json is not UTF-8 text.", path=cfg_path, detail=str(err)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise StudioError(f"config.json is not valid JSON: {err.msg}.", path=cfg_path, line=err.lineno,
                          detail=str(err)) from None
    if not isinstance(data, dict):
        raise StudioError("config.json must hold a JSON object of settings.", path=cfg_path)
    return data


def read_config_quietly(folder: Path | str) -> dict:
    """config.json, or {} when it is missing or unreadable: for listings and labels that must not fail."""
    try:
        data = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def stored_dtype(folder: Path | str) -> str:
    """The dtype the weights are saved in (config.json's ``dtype``/``torch_dtype``), float32 if unsaid."""
    cfg = read_config_quietly(folder)
    name = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")
    return name if name in ("float32", "bfloat16", "float16") else "float32"


# ---------------------------------------------------------------- safety


@dataclass(frozen=True)
class SafetyWords:
    """How a refusal tells the user to opt in: the switch differs between the settings, the export
    command and the playground (which has none), the risk does not."""

    pickle: str
    code: str


IN_SETTINGS = SafetyWords(
    pickle=("This model has only pickle weights (.bin/.pt), which can run arbitrary code when loaded. "
            "Convert them to safetensors, or allow pickle weights in the model settings if you trust the source."),
    code=("This base model ships its own Python code; it is only run when you turn on 'trust remote code' in "
          "the model settings."),
)
AT_EXPORT = SafetyWords(
    pickle=("The base model's weights are pickle files (.bin), which can run arbitrary code when loaded. "
            "Convert them to safetensors, or allow pickle explicitly (`--allow-pickle`) if you trust the source."),
    code=("This base model ships its own Python code. Export it only if you trust the source, with "
          "trust_remote_code enabled (`--trust-remote-code`)."),
)
IN_PLAYGROUND = SafetyWords(
    pickle=("The base model has no safetensors weights; the playground does not load pickle (.bin) "
            "files, which can run arbitrary code."),
    code=("This base model ships its own Python code; the playground only loads it when you "
          "trust the source (trust_remote_code)."),
)


@dataclass(frozen=True)
class ModelFolder:
    """A base model folder that was opened and checked: its config and which weights it has."""

    path: Path
    config: dict
    safetensors: bool
    pickle: bool

    @property
    def ships_code(self) -> bool:
        """``auto_map`` names Python files in the folder that transformers would import."""
        return bool(self.config.get("auto_map"))

    @property
    def quantised(self) -> bool:
        return bool(self.config.get("quantization_config"))


def open_model_folder(path: Path | str, *, missing: str | None = None) -> ModelFolder:
    """Open ``path`` as a model folder. ``missing`` replaces the default words for a folder without
    config.json (callers that name the folder's role say so)."""
    folder = Path(path).expanduser()
    if missing is not None and not has_config(folder):
        raise StudioError(missing, path=folder)
    config = read_config_file(config_file(folder))
    return ModelFolder(folder, config, has_safetensors(folder), has_pickle(folder))


def check_safety(folder: ModelFolder, *, allow_pickle: bool, trust_remote_code: bool | None,
                 words: SafetyWords = IN_SETTINGS, weights_required: bool = True) -> None:
    """Refuse shipped code unless trusted, and pickle weights unless allowed.

    ``weights_required``: a folder without safetensors is refused even with no pickle in it (what
    loads it would fall back to pickle files); without it, only pickle files present are refused
    (a config-only folder still describes its architecture). ``trust_remote_code=None`` leaves
    shipped code to transformers (training: a native architecture loads without the folder's code,
    and the Configure pane's inspection refuses the rest).
    """
    if trust_remote_code is False and folder.ships_code:
        raise StudioError(words.code, path=folder.path)
    if not folder.safetensors and not allow_pickle and (folder.pickle or weights_required):
        raise StudioError(words.pickle, path=folder.path)


# ---------------------------------------------------------------- loading


def load_base(folder: ModelFolder, dtype: Any, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """The base as a transformers causal LM in ``dtype`` (a torch dtype or its name); safetensors
    are used whenever the folder has them, so pickle is only read where it was allowed."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return AutoModelForCausalLM.from_pretrained(str(folder.path), dtype=torch_dtype, use_safetensors=folder.safetensors,
                                                trust_remote_code=trust_remote_code, **kwargs)


def load_with_adapter(folder: ModelFolder, adapter_dir: Path, dtype: Any, *, trust_remote_code: bool = False,
                      vocab: int | None = None) -> Any:
    """Base + PEFT adapter (unmerged, in eval mode). ``vocab`` is the embedding rows the adapter saved,
    when training added tokens: the base is resized to it first."""
    from peft import PeftModel

    model = load_base(folder, dtype, trust_remote_code=trust_remote_code)
    if vocab is not None and vocab != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(vocab)
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    except Exception as err:
        raise StudioError(
            f"The adapter does not fit the base model {folder.path.name}; it was probably trained on a different model.",
            detail=f"{type(err).__name__}: {err}", path=adapter_dir,
        ) from None
    peft_model.eval()
    return peft_model
