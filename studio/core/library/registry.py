"""The adapter library: every trained adapter kept with what it needs to be trusted later.

Each entry is ``library_dir()/<safe-name>/`` holding ``adapter/`` (standard PEFT files, so any
PEFT user can load it without the studio) and ``meta.json`` (base model path and identity, dataset
fingerprint, config, metrics). The identity (``studio.core.models.identity``) covers config.json and
the weights' bytes, so a base swapped for other weights of the same shapes is caught; it is cached
per file, so a big base is read once. Deleting moves an entry to ``.trash/`` so a mis-click is
recoverable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio.core import paths
from studio.core.errors import StudioError
from studio.core.fsutil import TMP_PREFIX, atomic_dir, atomic_write_text, sweep_partials
from studio.core.library.adapter_files import AdapterFiles, point_at_base, read_adapter, resolve_base
from studio.core.library.adapter_keys import check_adapter_shapes, check_peft_loads_all
from studio.core.models.identity import base_identity

META_FILE = "meta.json"
ADAPTER_SUBDIR = "adapter"
MODEL_SUBDIR = "model"  # a full fine-tune's weights, config and tokenizer: a model in its own right
KIND_ADAPTER = "adapter"
KIND_FULL = "full model"
TRASH = ".trash"


@dataclass
class AdapterMeta:
    """What the training engine knows about an adapter when it registers it."""

    base_model: str = ""
    dataset_fingerprint: str = ""
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    run_dir: str = ""
    method: str = ""
    base_model_hash: str = ""  # the identity taken when training started; computed at registration if empty
    objective: str = "sft"  # sft, or the preference loss (dpo, orpo) the adapter was trained with
    parent_id: str = ""  # lineage: the Library entry this adapter continued (a DPO run from an SFT adapter)


@dataclass
class LibraryEntry:
    id: str
    name: str
    path: Path
    base_model: str
    base_model_hash: str
    dataset_fingerprint: str
    config: dict
    metrics: dict
    run_dir: str
    created: str
    size_bytes: int
    method: str
    kind: str = KIND_ADAPTER
    objective: str = "sft"
    parent_id: str = ""  # the entry this one continued training from, if any

    @property
    def is_full_model(self) -> bool:
        return self.kind == KIND_FULL

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER_SUBDIR

    @property
    def files_dir(self) -> Path:
        """What the entry holds: the PEFT adapter folder, or a full fine-tune's model folder."""
        return self.path / (MODEL_SUBDIR if self.is_full_model else ADAPTER_SUBDIR)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        d["adapter_dir"] = str(self.adapter_dir) if not self.is_full_model else ""
        d["model_dir"] = str(self.files_dir) if self.is_full_model else ""
        return d


# ---------------------------------------------------------------- names and hashes


def safe_name(name: str) -> str:
    """A single folder name that cannot leave the library (no separators, no ``..``, no hidden dot)."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "-", str(name)).strip()
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(". -")
    cleaned = re.sub(r"\s+", "-", cleaned)
    return cleaned[:80] or "adapter"


RETIRED_NAMES = ".retired-names.json"


def _retired_names(root: Path) -> dict[str, str]:
    """Names entries once had (lower-cased name -> that entry's id): renamed away or deleted."""
    try:
        data = json.loads((root / RETIRED_NAMES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _retire_name(root: Path, name: str, entry_id: str) -> None:
    """Keep ``name`` from being handed to a newer entry: a name that once meant one adapter (in a
    note, an export folder, a Modelfile) must never quietly come to mean another."""
    retired = _retired_names(root)
    retired.setdefault(name.lower(), entry_id)
    with contextlib.suppress(OSError):  # a read-only library still renames; only the memory is lost
        atomic_write_text(root / RETIRED_NAMES, json.dumps(retired, indent=1, sort_keys=True))


def _unique_folder(root: Path, name: str, *, ignore: Path | None = None, owner_id: str = "") -> Path:
    """A free folder for ``name``: not in use, not held by an entry in the trash and not a name some
    other entry had before (``owner_id`` may take back its own old names)."""
    base = safe_name(name)
    taken = {p.name.lower() for p in root.iterdir()} if root.is_dir() else set()
    taken |= {e.name.lower() for e in _scan(root / TRASH) if e.id != owner_id}
    taken |= {n for n, who in _retired_names(root).items() if who != owner_id}
    if ignore is not None:
        taken.discard(ignore.name.lower())
    candidate, n = base, 2
    while candidate.lower() in taken:
        candidate = f"{base}-{n}"
        n += 1
    out = (root / candidate).resolve()
    if out.parent != root.resolve():  # belt and braces: the name must stay one level under the root
        raise StudioError(f"'{name}' is not a valid library name.")
    return out


def base_model_hash(base: Path) -> str:
    """The base's identity as the library records it; one scheme for every check (see identity.py)."""
    return base_identity(Path(base))


def recorded_base_identity(adapter_dir: Path) -> str:
    """The base identity recorded when ``adapter_dir`` was made, or "" when nothing recorded one.

    A library entry keeps it in ``meta.json`` beside ``adapter/``; a run folder in the journal's
    RunStarted event. An adapter folder from elsewhere has none (the shape checks still apply).
    """
    folder = Path(adapter_dir).parent
    try:
        data = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and Path(adapter_dir).name == ADAPTER_SUBDIR:
        return str(data.get("base_model_hash") or "")
    from studio.core.training import runs

    for ev in runs.read_events(folder):
        if ev.kind == "run_started" and getattr(ev, "base_identity", ""):
            return str(ev.base_identity)
    return ""


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------- reading


def _entry_from_folder(folder: Path) -> LibraryEntry | None:
    try:
        data = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return LibraryEntry(
        id=str(data.get("id", "")), name=str(data.get("name", folder.name)), path=folder,
        base_model=str(data.get("base_model", "")), base_model_hash=str(data.get("base_model_hash", "")),
        dataset_fingerprint=str(data.get("dataset_fingerprint", "")), config=dict(data.get("config") or {}),
        metrics=dict(data.get("metrics") or {}), run_dir=str(data.get("run_dir", "")),
        created=str(data.get("created", "")), size_bytes=int(data.get("size_bytes", 0)),
        method=str(data.get("method", "lora")),
        kind=KIND_FULL if data.get("kind") == KIND_FULL else KIND_ADAPTER,  # entries older than kinds: adapters
        objective=str(data.get("objective") or "sft"), parent_id=str(data.get("parent_id") or ""),
    )


def _scan(root: Path) -> list[LibraryEntry]:
    if not root.is_dir():
        return []
    # The shared rule keeps a young or live temp: a registration may be in progress on another
    # thread (training finishing while the GUI refreshes the list).
    sweep_partials(root)
    out = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            entry = _entry_from_folder(child)
            if entry is not None:
                out.append(entry)
    return out


def list_entries() -> list[LibraryEntry]:
    """Entries, newest first."""
    return sorted(_scan(paths.library_dir()), key=lambda e: e.created, reverse=True)


def list_trash() -> list[LibraryEntry]:
    return _scan(paths.library_dir() / TRASH)


def _find(entries: list[LibraryEntry], id_or_name: str) -> LibraryEntry | None:
    key = str(id_or_name)
    for e in entries:
        if e.id == key:
            return e
    for e in entries:
        if e.name == key or e.path.name == key:
            return e
    matches = [e for e in entries if len(key) >= 4 and e.id.startswith(key)]
    return matches[0] if len(matches) == 1 else None


def get_entry(id_or_name: str) -> LibraryEntry:
    entry = _find(list_entries(), id_or_name)
    if entry is None:
        raise StudioError(f"No adapter '{id_or_name}' in the library. `studio library list` shows what is there.")
    return entry


# ---------------------------------------------------------------- writing


def _write_meta(folder: Path, meta: dict) -> None:
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False, default=str))


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl")


def adapter_payload(src: Path) -> list[Path]:
    """The files that travel with an adapter (into the library, into an export): its top-level regular
    files, less pickles and temp leftovers.

    A link in the folder is refused rather than followed: its target could be any file on the
    machine (a key, a document) and would otherwise be copied into the library and shipped in every
    export of the adapter.
    """
    src = Path(src)
    links = sorted(f for f in src.iterdir() if f.is_symlink() and not f.name.startswith(TMP_PREFIX))
    if links:
        shown = ", ".join(f"{f.name} -> {os.readlink(f)}" for f in links[:3])
        more = f" and {len(links) - 3} more" if len(links) > 3 else ""
        raise StudioError(
            f"The adapter folder contains links ({shown}{more}). The studio copies only real files and will not "
            "follow links, whose targets may be anything on this machine. Replace each link with the file it "
            "points to (for example copy the folder with `cp -rL`) or remove it, then try again.", path=src)
    return sorted(f for f in src.iterdir()
                  if f.is_file() and not f.name.startswith(TMP_PREFIX) and f.suffix not in _PICKLE_SUFFIXES)


def _copy_adapter_files(src: Path, dest: Path) -> None:
    """Top-level files only: the PEFT pair plus the tokenizer/README the trainer saved beside them."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in adapter_payload(src):
        shutil.copy2(f, dest / f.name)


def register_adapter(adapter_dir: Path, meta: AdapterMeta | dict, name: str | None = None) -> LibraryEntry:
    """Copy a trained adapter into the library and describe it; returns the new entry."""
    adapter = read_adapter(adapter_dir)
    adapter_dir = adapter.folder
    m = asdict(meta) if isinstance(meta, AdapterMeta) else dict(meta)
    base = str(m.get("base_model") or adapter.base_model)
    base_hash = str(m.get("base_model_hash") or "")
    if not base_hash and base and Path(base).is_dir():
        base_hash = base_model_hash(Path(base))
    method = str(m.get("method") or "")
    if not method:
        cfg_method = (m.get("config") or {}).get("method")
        method = str(cfg_method or "lora")
    root = paths.library_dir()
    root.mkdir(parents=True, exist_ok=True)
    default_name = name or m.get("name") or (Path(m["run_dir"]).name if m.get("run_dir") else adapter_dir.parent.name)
    folder, entry_id, created = library_slot(root, str(default_name), str(m.get("run_dir") or ""))
    record = lineage_record(m, entry_id, folder.name, created, base_model=base, base_model_hash=base_hash)
    record.update(method=method, kind=KIND_ADAPTER, objective=str(m.get("objective") or "sft"),
                  parent_id=str(m.get("parent_id") or ""))

    def fill(tmp: Path) -> None:
        _copy_adapter_files(adapter_dir, tmp / ADAPTER_SUBDIR)
        record["size_bytes"] = _folder_size(tmp / ADAPTER_SUBDIR)

    return write_entry(folder, record, fill, "Could not add the adapter to the library")


def lineage_record(m: dict, entry_id: str, name: str, created: str, *, base_model: str,
                   base_model_hash: str) -> dict:
    """What every Library entry records of where it came from (the run's meta), whatever its kind."""
    return {
        "id": entry_id, "name": name, "base_model": base_model, "base_model_hash": base_model_hash,
        "dataset_fingerprint": str(m.get("dataset_fingerprint") or ""), "config": m.get("config") or {},
        "metrics": m.get("metrics") or {}, "run_dir": str(m.get("run_dir") or ""), "created": created,
        "size_bytes": 0,
    }


def write_entry(folder: Path, record: dict, fill, failure: str) -> LibraryEntry:
    """Write an entry atomically: ``fill(tmp)`` puts the payload in (and may complete ``record``),
    then the record goes beside it; an OS error names what failed and leaves nothing half-written."""
    try:
        with atomic_dir(folder, overwrite=True) as tmp:
            fill(tmp)
            _write_meta(tmp, record)
    except OSError as err:
        raise _os_error(err, failure) from None
    entry = _entry_from_folder(folder)
    assert entry is not None
    return entry


def library_slot(root: Path, name: str, run_dir: str) -> tuple[Path, str, str]:
    """(folder, id, created) for a run's result: the entry the same run made before (a stop, then a
    resume and finish, refresh one entry rather than adding "-2", "-3"), else a new unique one."""
    if run_dir:
        same = Path(run_dir).resolve()
        for e in _scan(root):
            if e.run_dir and Path(e.run_dir).resolve() == same:
                return e.path, e.id, e.created
    return _unique_folder(root, name), uuid.uuid4().hex[:12], _now()


def _os_error(err: OSError, what: str) -> StudioError:
    if err.errno == 28:
        return StudioError(f"{what}: the disk is full. Free some space and try again; nothing was half-written.",
                           detail=str(err))
    return StudioError(f"{what}: {err.strerror or err}.", detail=str(err), path=getattr(err, "filename", None))


def rename(id_or_name: str, new_name: str) -> LibraryEntry:
    """Rename an entry (its folder too, so the name on disk matches the name in the app)."""
    entry = get_entry(id_or_name)
    if not str(new_name).strip():
        raise StudioError("A library name cannot be empty.")
    root = paths.library_dir()
    folder = _unique_folder(root, new_name, ignore=entry.path, owner_id=entry.id)
    data = json.loads((entry.path / META_FILE).read_text(encoding="utf-8"))
    data["name"] = folder.name
    if folder != entry.path.resolve():
        _retire_name(root, entry.name, entry.id)
        os.replace(entry.path, folder)
    _write_meta(folder, data)
    out = _entry_from_folder(folder)
    assert out is not None
    return out


def delete(id_or_name: str) -> LibraryEntry:
    """Move an entry to the trash; ``restore`` brings it back until ``empty_trash``."""
    entry = get_entry(id_or_name)
    trash = paths.library_dir() / TRASH
    trash.mkdir(parents=True, exist_ok=True)
    dest = trash / f"{entry.path.name}-{entry.id}"
    if dest.exists():
        shutil.rmtree(dest)
    _retire_name(paths.library_dir(), entry.name, entry.id)  # kept after the trash is emptied too
    os.replace(entry.path, dest)
    out = _entry_from_folder(dest)
    assert out is not None
    return out


def restore(id_or_name: str) -> LibraryEntry:
    entry = _find(list_trash(), id_or_name)
    if entry is None:
        raise StudioError(f"No adapter '{id_or_name}' in the trash.")
    root = paths.library_dir()
    folder = _unique_folder(root, entry.name, owner_id=entry.id)
    os.replace(entry.path, folder)
    if folder.name != entry.name:
        data = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        data["name"] = folder.name
        _write_meta(folder, data)
    out = _entry_from_folder(folder)
    assert out is not None
    return out


def empty_trash() -> int:
    """Delete trashed entries for good; returns how many were removed."""
    trash = paths.library_dir() / TRASH
    if not trash.is_dir():
        return 0
    n = 0
    for child in trash.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
            n += 1
        else:
            child.unlink()
    return n


# ---------------------------------------------------------------- import and validation


def import_adapter(folder: Path, name: str | None = None, *, base_model: str | Path | None = None) -> LibraryEntry:
    """Add an adapter made elsewhere, after checking that it is complete and fits its base model."""
    adapter = read_adapter(folder)
    folder = adapter.folder
    base = resolve_base(adapter, base_model)
    check_adapter_shapes(folder, base)
    check_peft_loads_all(folder, base)  # a config that disagrees with the weights would load only in part
    cfg = adapter.config
    meta: dict[str, Any] = {
        "base_model": str(base),
        "method": str(cfg.get("peft_type", "lora")).lower(),
        "config": {"imported_from": str(folder.resolve()), "r": cfg.get("r"), "lora_alpha": cfg.get("lora_alpha"),
                   "target_modules": cfg.get("target_modules")},
    }
    default_name = folder.parent.name if folder.name == ADAPTER_SUBDIR else folder.name
    entry = register_adapter(folder, meta, name=name or default_name)
    # Point the stored copy at the base found here, so plain PeftModel.from_pretrained works on it.
    point_at_base(AdapterFiles(entry.adapter_dir, adapter.config), base)
    return entry
