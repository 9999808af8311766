"""Models the user already has in the Hugging Face cache, listed without a download or a hub call.

People who have used ``transformers`` before have their bases in ``~/.cache/huggingface/hub``; making
them re-download or copy gigabytes into the studio's store would be a waste. A cached repo is
``models--ORG--NAME/snapshots/<revision>/`` with ``refs/main`` naming the current revision, and every
file in a snapshot is a symbolic link into ``blobs/``. Listing must stay cheap (the Configure pane
calls it on the GUI thread): it reads directory entries, stats and small JSON files, never a weight
byte, so a cache of hundreds of models lists in milliseconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from studio.core.models.folder import has_config
from studio.core.models.store import model_folder_problem

REPO_PREFIX = "models--"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class CachedModel:
    """One cached model repo at the revision a plain ``from_pretrained(repo_id)`` would load."""

    repo_id: str
    path: Path  # the snapshot folder: what model.path is set to
    revision: str
    model_type: str  # config.json's model_type, "?" when unknown
    size_bytes: int  # the weights' bytes (links followed); 0 when there are none
    problem: str | None  # why it cannot be trained as it is, None when it can

    @property
    def trainable(self) -> bool:
        return self.problem is None

    @property
    def has_config(self) -> bool:
        """Whether the folder can at least be inspected and estimated (a config without weights can)."""
        return has_config(self.path)


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads, by the same precedence it uses itself.

    ``HF_HUB_CACHE`` wins, then the older ``HUGGINGFACE_HUB_CACHE``, then ``$HF_HOME/hub``, then
    ``$XDG_CACHE_HOME/huggingface/hub``, then ``~/.cache/huggingface/hub``.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "huggingface" / "hub"


def repo_id_of(folder_name: str) -> str:
    """``models--Qwen--Qwen2.5-0.5B`` → ``Qwen/Qwen2.5-0.5B`` (huggingface_hub's own rule)."""
    return folder_name[len(REPO_PREFIX):].replace("--", "/")


def _current_snapshot(repo: Path) -> Path | None:
    """The snapshot ``refs/main`` names; without a usable ref (a model fetched at a pinned revision
    has none), the most recently written snapshot, which is what the user downloaded last."""
    snapshots = repo / "snapshots"
    try:
        ref = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        ref = ""
    if ref and "/" not in ref and (snapshots / ref).is_dir():
        return snapshots / ref
    try:
        candidates = [s for s in snapshots.iterdir() if s.is_dir()]
    except OSError:
        return None
    if not candidates:
        return None
    return max(candidates, key=lambda s: (s.stat().st_mtime_ns, s.name))


def _weight_files(snapshot: Path) -> list[Path]:
    """safetensors when there are any (what training loads), else pickle weights."""
    try:
        names = sorted(os.listdir(snapshot))
    except OSError:
        return []
    for suffix in WEIGHT_SUFFIXES:
        found = [snapshot / n for n in names if n.endswith(suffix)]
        if found:
            return found
    return []


def _missing_shard(snapshot: Path) -> str | None:
    """A shard the index names but the snapshot lacks: a download cut short by ``allow_patterns``."""
    for index in SHARD_INDEXES:
        path = snapshot / index
        if not path.is_file():
            continue
        try:
            weight_map = json.loads(path.read_text(encoding="utf-8")).get("weight_map", {})
            shards = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        except (OSError, ValueError, AttributeError, TypeError):
            return f"{index} cannot be read"
        for shard in shards:
            if not (snapshot / str(shard)).is_file():
                return str(shard)
    return None


def _read_model_type(snapshot: Path) -> tuple[str, str | None]:
    try:
        data = json.loads((snapshot / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "?", None
    except (OSError, ValueError, UnicodeDecodeError):
        return "?", "its config.json cannot be read as JSON: download it again"
    model_type = data.get("model_type") if isinstance(data, dict) else None
    return (model_type if isinstance(model_type, str) and model_type else "?"), None


def describe_snapshot(repo_id: str, snapshot: Path) -> CachedModel | None:
    """What one snapshot holds; None when it is not a model at all (a tokenizer-only repo)."""
    weights = _weight_files(snapshot)
    has_config = (snapshot / "config.json").exists() or (snapshot / "config.json").is_symlink()
    ggufs = [] if (has_config or weights) else [n for n in os.listdir(snapshot) if n.endswith(".gguf")]
    if not (has_config or weights or ggufs):
        return None
    size = 0
    broken: list[str] = []
    for f in weights or [snapshot / n for n in ggufs]:
        try:
            size += f.stat().st_size  # follows the link into blobs/
        except OSError:
            broken.append(f.name)
    model_type, problem = _read_model_type(snapshot)
    if ggufs:
        problem = "it holds GGUF files only: use Import GGUF… on the .gguf file in this snapshot"
    elif (snapshot / "config.json").is_symlink() and not (snapshot / "config.json").exists():
        problem = "its config.json is missing from the cache (an interrupted download): download it again"
    elif broken:
        problem = f"{broken[0]} is missing from the cache (an interrupted download): download it again"
    elif (shard := _missing_shard(snapshot)) is not None:
        problem = f"the weights are incomplete ({shard} was not downloaded): download the whole repo"
    elif problem is None:
        problem = model_folder_problem(snapshot)
    return CachedModel(repo_id, snapshot, snapshot.name, model_type, size, problem)


def list_cached_models(cache_dir: Path | None = None) -> list[CachedModel]:
    """Every model repo in the cache, sorted by repo id; a missing or unreadable cache is empty."""
    root = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    try:
        repos = sorted(e for e in os.listdir(root) if e.startswith(REPO_PREFIX))
    except OSError:
        return []
    out: list[CachedModel] = []
    for name in repos:
        repo = root / name
        try:
            snapshot = _current_snapshot(repo)
            model = describe_snapshot(repo_id_of(name), snapshot) if snapshot is not None else None
        except OSError:
            continue  # a repo being deleted or unreadable: not worth failing the whole list
        if model is not None:
            out.append(model)
    return sorted(out, key=lambda m: m.repo_id.lower())
