"""A PEFT adapter folder: its two files checked, its config read once, and the base it names found.

The library, the export, the merge, the playground and the CLI all start from an adapter folder. They
used to check its files, parse ``adapter_config.json`` and look up its base each on their own (an
export read the config four times); ``read_adapter`` now does it once and the ``AdapterFiles`` it
returns is what they pass around.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from studio.core import paths
from studio.core.errors import StudioError
from studio.core.fsutil import atomic_write_text
from studio.core.models.folder import has_config

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PICKLE_WEIGHTS = ("adapter_model.bin", "adapter_model.pt")


@dataclass(frozen=True)
class AdapterFiles:
    """An adapter folder whose config and safetensors weights were found and whose config parsed."""

    folder: Path
    config: dict

    @property
    def weights(self) -> Path:
        return self.folder / ADAPTER_WEIGHTS

    @property
    def base_model(self) -> str:
        """The base the adapter names (``base_model_name_or_path``), "" when it names none."""
        return str(self.config.get("base_model_name_or_path") or "")


def read_adapter(folder: Path | str) -> AdapterFiles:
    """Check that ``folder`` is a complete safetensors PEFT adapter and read its config."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StudioError("Adapter folder not found.", path=folder)
    if not (folder / ADAPTER_CONFIG).is_file():
        raise StudioError(
            f"This folder has no {ADAPTER_CONFIG}, so it is not a PEFT adapter. Choose the folder that holds "
            f"{ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}.", path=folder,
        )
    if not (folder / ADAPTER_WEIGHTS).is_file():
        if any((folder / p).is_file() for p in _PICKLE_WEIGHTS):
            raise StudioError(
                "This adapter is stored as a pickle (.bin), which can run arbitrary code when loaded. "
                "Convert it to safetensors first (PeftModel.from_pretrained(...).save_pretrained(out)).",
                path=folder,
            )
        raise StudioError(f"This folder has {ADAPTER_CONFIG} but no {ADAPTER_WEIGHTS}.", path=folder)
    try:
        cfg = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except ValueError as err:
        raise StudioError(f"{ADAPTER_CONFIG} is not valid JSON.", path=folder / ADAPTER_CONFIG, detail=str(err)) from None
    if not isinstance(cfg, dict):
        raise StudioError(f"{ADAPTER_CONFIG} must hold a JSON object of settings; it may be damaged.",
                          path=folder / ADAPTER_CONFIG)
    return AdapterFiles(folder, cfg)


def adapter_base(adapter_dir: Path | str) -> str:
    """The base an adapter folder names, "" when its config is missing, unreadable or names none
    (for labels and defaults, where a broken adapter is reported later by ``read_adapter``)."""
    try:
        cfg = json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(cfg.get("base_model_name_or_path") or "") if isinstance(cfg, dict) else ""


def point_at_base(adapter: AdapterFiles, base: Path | str) -> AdapterFiles:
    """Rewrite the adapter's config to name ``base`` by its absolute path, so a plain
    ``PeftModel.from_pretrained`` finds the base on this machine; returns the adapter as rewritten."""
    config = {**adapter.config, "base_model_name_or_path": str(Path(base).resolve())}
    atomic_write_text(adapter.folder / ADAPTER_CONFIG, json.dumps(config, indent=2))
    return AdapterFiles(adapter.folder, config)


def resolve_base(adapter: AdapterFiles | Path | str, base_override: str | Path | None = None) -> Path:
    """The local base folder an adapter was trained on: its recorded path, else a store model of that name."""
    if isinstance(adapter, AdapterFiles):
        adapter_dir, named = adapter.folder, adapter.base_model
    else:
        adapter_dir, named = Path(adapter), adapter_base(adapter)
    recorded = str(base_override or named)
    if not recorded:
        raise StudioError("The adapter does not say which base model it belongs to (base_model_name_or_path).",
                          path=adapter_dir / ADAPTER_CONFIG)
    candidates = [Path(recorded).expanduser(), paths.models_dir() / Path(recorded).name,
                  paths.models_dir() / recorded.replace("/", "--")]
    for c in candidates:
        if has_config(c):
            return c.resolve()
    raise StudioError(
        f"The base model '{recorded}' is not on this machine. Put it in the model store (or import its GGUF) "
        "and try again; adapters only work on the exact model they were trained on.",
        path=adapter_dir / ADAPTER_CONFIG,
    )
