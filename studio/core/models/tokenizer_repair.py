"""Bring a model imported before the studio rebuilt a GGUF's split rules up to date: tokenizer only.

Imports made before ``gguf_fidelity.rebuild_pre_tokenizer`` kept transformers' GPT-2 split for files
that name other rules (the bundled SmolLM2's "smollm": every digit on its own), so whitespace before
a number came out as other tokens than llama.cpp, and the model's own training, produce; the import
recorded that mismatch in ``studio_source.json``. Converting the whole model again would take a
while and rewrite weights nothing changed in, while the split lives in ``tokenizer.json`` alone. So
that one file is rewritten (atomically), and then the record and the model card say what changed;
a crash in between leaves the record saying "mismatch", and the next look finishes the job.

Adapters trained before keep tokenizing as they were trained: each keeps its own tokenizer copy
(see ``identity``), and the base's weights, and with them its identity, do not change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.core.fsutil import atomic_write_text
from studio.core.models.gguf_import import SOURCE_RECORD, model_card


def _record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / SOURCE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _unrecorded_source(folder: Path, record: dict[str, Any] | None) -> Path | None:
    """The source GGUF of an import made before imports checked the split (no "pre_tokenizer" entry), when
    that file is still where it was imported from; None otherwise (nothing left to learn the rules from)."""
    if record is None or "pre_tokenizer" in record or record.get("pre_tokenizer_checked"):
        return None
    src = Path(str(record.get("imported_from") or ""))
    return src if src.suffix.lower() == ".gguf" and src.is_file() and (folder / "tokenizer.json").is_file() else None


def needs_repair(folder: Path, *, unrecorded: bool = True) -> bool:
    """Whether ``folder`` is a GGUF import whose recorded split differs from rules the studio can rebuild,
    or (``unrecorded``) one imported before the split was recorded whose source GGUF can still tell."""
    from studio.core.library.gguf_pretokenizer import rules_for

    folder = Path(folder)
    record = _record(folder)
    if unrecorded and _unrecorded_source(folder, record) is not None:
        return True
    pre = (record or {}).get("pre_tokenizer")
    return (isinstance(pre, dict) and pre.get("matches") is False and rules_for(pre.get("gguf")) is not None
            and (folder / "tokenizer.json").is_file())


def _record_split(folder: Path, record: dict[str, Any], src: Path) -> None:
    """Check an unrecorded import's split against its source GGUF (reads the file's header, a second or
    two) and record the result as an import now would, so the repair can act and later starts skip this."""
    from types import SimpleNamespace

    from tokenizers import Tokenizer

    from studio.core.models.gguf_fidelity import pre_tokenizer_check, read_header

    backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    check = pre_tokenizer_check(SimpleNamespace(backend_tokenizer=backend), read_header(src))
    if check is None:   # not a byte-level BPE vocabulary: its split is not named, nothing to compare
        record["pre_tokenizer_checked"] = True
    else:
        record["pre_tokenizer"] = check
    atomic_write_text(folder / SOURCE_RECORD, json.dumps(record, indent=2))


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError):
        return False


def repair_pre_tokenizer(folder: Path, *, unrecorded: bool = True) -> str | None:
    """Rewrite ``folder``'s tokenizer.json with the split rules its GGUF names, when an earlier import
    recorded that they differ; what changed, in words for a status line, or None when nothing did.

    Cheap when there is nothing to do (one small JSON read), so callers may run it on every start. An
    import older than the record is first checked against its source GGUF (``unrecorded``; a second or
    two, once): callers on the GUI thread pass ``unrecorded=False`` and leave that to a worker."""
    folder = Path(folder)
    src = _unrecorded_source(folder, _record(folder)) if unrecorded else None
    if src is not None:
        try:
            _record_split(folder, _record(folder) or {}, src)
        except Exception:   # an unreadable source or tokenizer: left as it is, asked again next start
            return None
    if not needs_repair(folder, unrecorded=False):
        return None
    from tokenizers import Tokenizer

    from studio.core.library.gguf_pretokenizer import llamacpp_pre_name, splits_like
    from studio.core.models.gguf_fidelity import rebuild_pre_tokenizer

    record = _record(folder) or {}
    name = record["pre_tokenizer"]["gguf"]
    tok_path = folder / "tokenizer.json"
    try:
        backend = Tokenizer.from_file(str(tok_path))
    except Exception:
        return None   # not a file this could read: left as it is, still recorded as a mismatch
    fix = rebuild_pre_tokenizer(backend, name)
    if fix is None and not splits_like(backend, name):
        return None   # rules that cannot be made to agree (a normaliser rewrites the text)
    if fix is not None:
        atomic_write_text(tok_path, backend.to_str(pretty=True))
    done = fix or f"tokenizer: text split by llama.cpp's '{name}' rules, as the file asks"
    record["pre_tokenizer"] = {"gguf": name, "imported": llamacpp_pre_name(backend), "matches": True,
                               "updated_in_place": True}
    record["config_fixes"] = [*record.get("config_fixes", []), f"{done} (tokenizer.json updated after the import)"]
    atomic_write_text(folder / SOURCE_RECORD, json.dumps(record, indent=2))
    atomic_write_text(folder / "README.md", model_card(record, "included" if _has_chat_template(folder) else None))
    return (f"Tokenizer of {folder.name} updated: text is now split by the GGUF's '{name}' rules, as llama.cpp "
            "does (adapters trained before keep their own tokenizer)")
