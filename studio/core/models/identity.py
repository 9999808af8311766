"""A base model's identity: the exact model an adapter was trained on, down to its weights' bytes.

An adapter is a set of deltas for one particular set of weights. Put it on other weights of the
same shapes (a re-download of another revision, a fine-tuned copy saved over the original, an
edited config.json) and it loads without complaint but computes something nobody trained. So the
identity covers:

* ``config.json``, read as JSON with the keys transformers rewrites on every save
  (``transformers_version``, ``_name_or_path``) left out: what it says, not how it is formatted;
* the bytes of every weight file transformers would load from the folder (and the shard index),
  streamed in 1 MiB blocks.

Tokenizer and generation files are left out on purpose: the studio saves the tokenizer beside
every adapter and uses that copy, and library upgrades rewrite those files without a token
changing, so including them would report changes that change nothing.

Reading every byte of a 16 GB model takes a while, so each weight file's digest is cached in
``data_home()/cache/model_hashes.json`` under its resolved path, keyed by size, mtime, ctime and
inode: a file that was rewritten, replaced or swapped in (even with its old mtime restored) is read
again, an untouched one never is. A corrupt cache is ignored and rebuilt.

The identity is the string ``id2:<config digest>:<weights digest>``, so a mismatch can say whether
the config or the weights changed. Library entries made before this scheme hold a 16-hex hash of
config.json and the safetensors *headers*; ``identity_change`` still checks those with that scheme.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from studio.core import paths
from studio.core.errors import StudioError
from studio.core.fsutil import atomic_write_text, file_sha256
from studio.core.models.folder import has_config

IDENTITY_TAG = "id2"
CACHE_FILE = "model_hashes.json"
_LEGACY = re.compile(r"^[0-9a-f]{16}$")
_VOLATILE_CONFIG_KEYS = ("transformers_version", "_name_or_path")
# transformers' own order for a local folder: the single file first, then a shard index; safetensors
# before pickle. The identity must cover exactly what a load reads, not every file lying around.
_WEIGHT_LAYOUTS = (
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
)
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class BaseIdentity:
    config: str
    weights: str

    def __str__(self) -> str:
        return f"{IDENTITY_TAG}:{self.config}:{self.weights}"

    @classmethod
    def parse(cls, text: str) -> BaseIdentity | None:
        parts = str(text).split(":")
        if len(parts) == 3 and parts[0] == IDENTITY_TAG and all(re.fullmatch(r"[0-9a-f]+", p) for p in parts[1:]):
            return cls(parts[1], parts[2])
        return None


# ---------------------------------------------------------------- what a model folder is made of


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (names, shapes, dtypes), read without the tensors."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise StudioError("This safetensors file is truncated.", path=path)
            (n,) = struct.unpack("<Q", raw)
            if n > 100 * 2**20:
                raise StudioError("This safetensors file has an implausible header; it may be corrupt.", path=path)
            data = fh.read(n)
    except OSError as err:
        raise StudioError(f"Could not read this weights file: {err.strerror or err}.", path=path,
                          detail=str(err)) from None
    try:
        header = json.loads(data)
    except ValueError:
        header = None
    if not isinstance(header, dict) or len(data) != n:
        raise StudioError("This safetensors file has an unreadable header; it may be corrupt.", path=path)
    return header


def _read_json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioError(f"{what} is missing.", path=path) from None
    except (OSError, ValueError) as err:
        raise StudioError(f"{what} is not readable JSON; the model folder may be damaged.", path=path,
                          detail=str(err)) from None
    if not isinstance(data, dict):
        raise StudioError(f"{what} must hold a JSON object.", path=path)
    return data


def weight_files(folder: Path) -> list[Path]:
    """The weight files transformers loads from ``folder`` (plus the shard index, when there is one).

    Raises a StudioError naming the folder when the index is unreadable, names a file that is
    missing, or points outside the folder, and when there are no loadable weights at all.
    """
    folder = Path(folder)
    for single, index_name in _WEIGHT_LAYOUTS:
        if (folder / single).is_file():
            return [folder / single]
        index = folder / index_name
        if not index.is_file():
            continue
        weight_map = _read_json_object(index, "The shard index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise StudioError("The shard index has no weight_map, so the weights cannot be found.", path=index)
        shards = sorted({str(v) for v in weight_map.values()})
        bad = [s for s in shards if Path(s).name != s or s in (".", "..")]
        if bad:
            raise StudioError(f"The shard index points outside the model folder ({bad[0]}).", path=index)
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise StudioError(
                f"The model is incomplete: its shard index lists {', '.join(missing[:3])}"
                f"{' and more' if len(missing) > 3 else ''}, which {'is' if len(missing) == 1 else 'are'} not in "
                "the folder. Copy the missing files in, or download the model again.", path=folder)
        return [index, *(folder / s for s in shards)]
    raise StudioError("This model folder has no weights transformers can load (model.safetensors or a shard "
                      "index with its shards).", path=folder)


def _config_digest(folder: Path) -> str:
    cfg = _read_json_object(Path(folder) / "config.json", "config.json")
    for key in _VOLATILE_CONFIG_KEYS:
        cfg.pop(key, None)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- digests and their cache


def _cache_path() -> Path:
    return paths.data_home() / "cache" / CACHE_FILE


def _load_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stamp(st: os.stat_result) -> list[int]:
    """What must be unchanged for a cached digest to stand. ctime and inode catch a file swapped in
    with its old size and mtime restored (``cp -p``, ``touch -r``), which mtime alone would miss."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _file_digest(path: Path) -> str:
    """sha256 of a file's bytes, streamed so a 10 GB shard never sits in memory."""
    return file_sha256(path)


def _combine(files: list[Path], digests: list[str]) -> str:
    h = hashlib.sha256()
    for f, digest in zip(files, digests, strict=True):
        h.update(f.name.encode() + b"\0" + digest.encode() + b"\n")
    return h.hexdigest()[:40]


def _cached_digest(cache: dict, f: Path) -> str | None:
    hit = cache.get(str(f.resolve()))
    if isinstance(hit, dict) and hit.get("stamp") == _stamp(f.stat()) and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    return None


def cached_identity(folder: Path) -> str | None:
    """The identity if every weight file's digest is already cached and current, else None.

    For the GUI thread: it reads a few stats and one small JSON file, never a weight byte, so showing
    "unchanged since training" can never freeze the window on a 16 GB model. The identity itself is
    taken in workers (training start, the playground's load, export), which fills the cache.
    """
    try:
        files = weight_files(folder)
        cache = _load_cache()
        digests = [_cached_digest(cache, f) for f in files]
        if any(d is None for d in digests):
            return None
        return str(BaseIdentity(_config_digest(folder), _combine(files, digests)))  # type: ignore[arg-type]
    except (OSError, StudioError):
        return None


def _weights_digest(files: list[Path]) -> str:
    with _cache_lock:
        cache = _load_cache()
        dirty = False
        digests = []
        for f in files:
            try:
                digest = _cached_digest(cache, f)
                if digest is None:
                    stamp = _stamp(f.stat())
                    digest = _file_digest(f)
                    if _stamp(f.stat()) == stamp:  # not rewritten while it was read
                        cache[str(f.resolve())] = {"stamp": stamp, "sha256": digest}
                        dirty = True
            except OSError as err:
                raise StudioError(f"Could not read this weights file: {err.strerror or err}.", path=f,
                                  detail=str(err)) from None
            digests.append(digest)
        if dirty:
            for key in [k for k in cache if not Path(k).exists()]:
                del cache[key]  # models that were deleted or moved
            # Only a cache: the identity is right either way, a failed write just costs a re-read.
            with contextlib.suppress(OSError):
                atomic_write_text(_cache_path(), json.dumps(cache, indent=1, sort_keys=True))
    return _combine(files, digests)


def identity_of(folder: Path) -> BaseIdentity:
    folder = Path(folder)
    if not has_config(folder):
        raise StudioError("This base model folder has no config.json; it is not a Hugging Face model folder "
                          "(or it was moved or deleted).", path=folder)
    return BaseIdentity(_config_digest(folder), _weights_digest(weight_files(folder)))


def base_identity(folder: Path) -> str:
    """The identity string the library, the run journal and every check compare."""
    return str(identity_of(folder))


def legacy_header_hash(folder: Path) -> str:
    """The pre-``id2`` scheme (config.json, shard index and safetensors headers; 16 hex), kept only to
    check library entries recorded with it."""
    folder = Path(folder)
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors.index.json"):
        f = folder / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
    for f in sorted(folder.glob("*.safetensors")):
        h.update(f.name.encode() + b"\0" + json.dumps(safetensors_header(f), sort_keys=True).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- checks


def identity_change(recorded: str, folder: Path, *, current: str | None = None) -> str | None:
    """None when ``folder`` still holds the base ``recorded`` describes, else what changed, in words.

    ``current``: the folder's identity taken earlier (a playground compares with what it loaded,
    not with what may have been written to disk since). An empty or unrecognised record also gives
    None: there is nothing to compare, and the callers fall back to their shape checks rather than
    refuse an adapter forever.
    """
    recorded = str(recorded or "").strip()
    if _LEGACY.fullmatch(recorded):
        if legacy_header_hash(folder) == recorded:
            return None
        return "its config.json or the layout of its weight files changed"
    want = BaseIdentity.parse(recorded)
    if want is None:
        return None
    now = BaseIdentity.parse(current or "") or identity_of(folder)
    changed = [what for what, same in (("config.json", now.config == want.config),
                                       ("weights", now.weights == want.weights)) if not same]
    if not changed:
        return None
    return f"its {' and '.join(changed)} changed"


def is_recorded(recorded: str) -> bool:
    """Whether ``recorded`` is an identity this module can check (new or legacy form)."""
    text = str(recorded or "").strip()
    return bool(_LEGACY.fullmatch(text)) or BaseIdentity.parse(text) is not None


def require_unchanged(recorded: str, folder: Path, *, since: str, remedy: str) -> None:
    """Raise a StudioError naming the folder and what changed when it no longer holds ``recorded``."""
    change = identity_change(recorded, folder)
    if change is not None:
        raise StudioError(f"The base model in {Path(folder)} changed since {since} ({change}); {remedy}",
                          path=Path(folder))


__all__ = ["BaseIdentity", "base_identity", "identity_change", "identity_of", "is_recorded", "legacy_header_hash",
           "require_unchanged", "safetensors_header", "weight_files"]
