"""Full fine-tunes in the library: the run's model folder as an entry of kind "full model", and its export.

Disk: a full model can be many GB, so the entry hard-links the run's files instead of copying them.
The library then costs no extra space, yet deleting the run (or its folder being rewritten by a
resume, which writes new files and renames them in) leaves the entry's files intact, because a hard
link keeps the data alive until its last name goes. Only where a link cannot be made (the library on
another filesystem, a filesystem without links) are the files copied. Keeping a mere pointer to the
run folder was rejected: deleting a run to free space would silently break the library entry.

The export needs no merge: the model folder is written out (as stored, or cast to another dtype) with
its tokenizer and generation config, and the same equivalence proof as for merged adapters compares
the export, read back from disk, with the weights the run finished with.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from studio.core import paths
from studio.core.errors import StudioError
from studio.core.fsutil import TMP_PREFIX, atomic_dir, file_sha256
from studio.core.heavy_imports import ensure
from studio.core.library.adapter_files import ADAPTER_CONFIG
from studio.core.library.equivalence import DEFAULT_NEW_TOKENS, DEFAULT_PROMPTS
from studio.core.library.registry import (
    KIND_FULL,
    META_FILE,
    MODEL_SUBDIR,
    AdapterMeta,
    LibraryEntry,
    _folder_size,
    _now,
    library_slot,
    lineage_record,
    write_entry,
)
from studio.core.models.device import SHORT_DTYPE, normalise_dtype
from studio.core.models.folder import (
    CONFIG_FILE,
    PICKLE_SUFFIXES,
    is_loadable,
    load_base,
    open_model_folder,
    stored_dtype,
)
from studio.core.progress import no_progress


def is_model_folder(folder: Path) -> bool:
    """A saved transformers model (config.json + safetensors weights) and not a PEFT adapter."""
    folder = Path(folder)
    return is_loadable(folder) and not (folder / ADAPTER_CONFIG).is_file()


def model_payload(folder: Path) -> list[Path]:
    """The top-level regular files of a model folder, less pickles and temp leftovers; links refused
    (their targets could be anything on the machine and would be shipped with every export)."""
    folder = Path(folder)
    if not is_model_folder(folder):
        raise StudioError("This folder holds no model saved by transformers (config.json and .safetensors "
                          "weights). Pick the run's model folder.", path=folder)
    links = sorted(f.name for f in folder.iterdir() if f.is_symlink())
    if links:
        raise StudioError(f"The model folder contains links ({', '.join(links[:3])}); the studio copies only real "
                          "files. Replace each link with the file it points to, then try again.", path=folder)
    return sorted(f for f in folder.iterdir()
                  if f.is_file() and not f.name.startswith(TMP_PREFIX) and not f.name.endswith(PICKLE_SUFFIXES))


def _link_or_copy(src: Path, dest: Path) -> str:
    """Hard-link ``src`` to ``dest``; copy where the filesystem cannot link. Returns which was done."""
    try:
        os.link(src, dest)
        return "linked"
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
    shutil.copy2(src, dest)
    return "copied"


def register_full_model(model_dir: Path, meta: AdapterMeta | dict, name: str | None = None) -> LibraryEntry:
    """Add a full fine-tune's model folder to the library (hard-linked where possible); returns the entry."""
    model_dir = Path(model_dir)
    files = model_payload(model_dir)
    folder = open_model_folder(model_dir)
    m = asdict(meta) if isinstance(meta, AdapterMeta) else dict(meta)
    root = paths.library_dir()
    root.mkdir(parents=True, exist_ok=True)
    default_name = name or (Path(m["run_dir"]).name if m.get("run_dir") else model_dir.parent.name)
    folder, entry_id, created = library_slot(root, str(default_name), str(m.get("run_dir") or ""))
    record = lineage_record(m, entry_id, folder.name, created, base_model=str(m.get("base_model") or ""),
                            base_model_hash=str(m.get("base_model_hash") or ""))
    record.update(kind=KIND_FULL, method="full", stored="")

    def fill(tmp: Path) -> None:
        dest = tmp / MODEL_SUBDIR
        dest.mkdir()
        how = {_link_or_copy(f, dest / f.name) for f in files}
        record["stored"] = "copied" if "copied" in how else "hard-linked to the run's files"
        record["size_bytes"] = _folder_size(dest)

    return write_entry(folder, record, fill, "Could not add the model to the library")


def full_model_entry_dir(model_dir: Path) -> bool:
    """Whether ``model_dir`` is the model folder of a library entry of kind "full model"."""
    model_dir = Path(model_dir)
    if model_dir.name != MODEL_SUBDIR:
        return False
    try:
        data = json.loads((model_dir.parent / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == KIND_FULL


def export_full_model(model_dir: Path, out_dir: Path, *, dtype: str | None = None, gguf: str | None = None,
                      progress=None, check: bool = True, overwrite: bool = False,
                      prompts: Sequence[str] = DEFAULT_PROMPTS, new_tokens: int = DEFAULT_NEW_TOKENS):
    """Write the full model in ``model_dir`` to ``out_dir`` (no merge): as stored when ``dtype`` is None,
    else cast to ``dtype``; with the equivalence proof against ``model_dir``'s weights when ``check``."""
    if gguf:
        raise StudioError("GGUF export of a full fine-tune is not offered yet. Export the model folder, then convert "
                          "it with llama.cpp's convert_hf_to_gguf.py.")
    from studio.core.destinations import check_destination
    from studio.core.library.merge import EXPORT_RECORD, ExportReport, _disk_error, _write_record

    progress = progress or no_progress
    model_dir = Path(model_dir)
    files = model_payload(model_dir)
    folder = open_model_folder(model_dir)
    out_dir = check_destination(out_dir, marker=EXPORT_RECORD, overwrite=overwrite, what="export", keep=[model_dir])
    ensure()
    import torch
    from transformers import AutoTokenizer

    stored = stored_dtype(model_dir)
    target = normalise_dtype(dtype) if dtype else stored
    t0 = time.perf_counter()
    report = ExportReport(out_dir=out_dir, kind="full", dtype=target, adapter_dir=str(model_dir.resolve()),
                          base_model=_base_of(model_dir), status="unchecked", created=_now())
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir)) if check else None
    trace = None
    if check:
        from studio.core.library.equivalence import reference_trace

        progress(0.05, "Recording reference outputs of the trained model")
        reference = load_base(folder, torch.float32)
        trace = reference_trace(reference, tokenizer, prompts, new_tokens=new_tokens)
        del reference
    try:
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            if target == stored:
                progress(0.3, "Copying the model files")
                for f in files:
                    shutil.copy2(f, tmp / f.name)
                sums = {f.name: file_sha256(f) for f in files if f.suffix == ".safetensors"} if check else {}
                if sums and any(file_sha256(tmp / n) != s for n, s in sums.items()):
                    raise StudioError("A copied weights file differs from the original; the disk may be failing.",
                                      path=out_dir)
            else:
                progress(0.3, f"Writing the model in {target}")
                model = load_base(folder, target)
                model.save_pretrained(tmp, max_shard_size="2GB")
                del model
                for f in files:
                    if not f.name.endswith(".safetensors") and f.name not in (CONFIG_FILE, "model.safetensors.index.json",
                                                                              "generation_config.json"):
                        shutil.copy2(f, tmp / f.name)
            if trace is not None:
                from studio.core.library.equivalence import check_equivalence

                progress(0.6, "Proving the export matches the trained model")
                kind = SHORT_DTYPE[target]
                report.equivalence.append(check_equivalence(trace, tmp, tokenizer, kind=kind, label=f"full {kind}",
                                                            dtype=torch.float32))
                report.status = "passed" if all(e.passed for e in report.equivalence) else "failed"
            report.files = [*sorted(p.name for p in tmp.iterdir()), EXPORT_RECORD]
            report.size_bytes = _folder_size(tmp)
            report.timings = {"total_s": round(time.perf_counter() - t0, 3)}
            _write_record(tmp, report, {"merge_method": "none (full model)"})
    except OSError as err:
        raise _disk_error(err, out_dir) from None
    progress(1.0, "Export complete" if report.status != "failed" else "Export written, but its check FAILED")
    return report


def _base_of(model_dir: Path) -> str:
    try:
        data = json.loads((model_dir.parent / META_FILE).read_text(encoding="utf-8"))
        return str(data.get("base_model", ""))
    except (OSError, ValueError):
        return ""
