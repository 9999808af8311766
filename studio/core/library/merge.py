"""Merge & export: turn base + adapter into a model folder (and GGUF) that any tool opens, with proof.

The base is always loaded unquantised, so a QLoRA adapter is merged into 16/32-bit weights, never
into 4-bit ones (rounding the merged update back to NF4 would throw most of it away). The
reference outputs are taken from the unmerged PeftModel *before* merging, so one model load serves
both sides of the equivalence check, and the candidate is read back from the files just written —
what is proven is the export on disk, not an object in memory.

Everything is written into a temp folder beside the destination and renamed into place at the end:
a crash, a kill or a full disk leaves no half-written export.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import shutil
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio.core import paths
from studio.core.datasets.tokenizer import adds_bos, has_tokenizer_files
from studio.core.destinations import check_destination
from studio.core.errors import StudioError, is_disk_full
from studio.core.formatting import format_bytes_in
from studio.core.fsutil import atomic_dir, atomic_file, file_sha256, sweep_partials
from studio.core.heavy_imports import ensure
from studio.core.library.adapter_files import AdapterFiles, read_adapter, resolve_base
from studio.core.library.adapter_keys import check_peft_loads_all
from studio.core.library.equivalence import (
    DEFAULT_NEW_TOKENS,
    DEFAULT_PROMPTS,
    EquivalenceReport,
    adapter_effect_kept,
    judge_in_dtype,
)
from studio.core.library.export_preflight import preflight
from studio.core.library.gguf_export import GGUF_TYPES, gguf_file_name
from studio.core.library.gguf_step import prove_gguf, write_gguf_file
from studio.core.library.lora_merge import copy_tokenizer_files, plan_direct_merge, write_merged
from studio.core.library.ollama import MODELFILE, ollama_modelfile, stop_tokens
from studio.core.library.registry import adapter_payload, recorded_base_identity
from studio.core.models.device import SHORT_DTYPE, normalise_dtype
from studio.core.models.folder import (
    AT_EXPORT,
    ModelFolder,
    check_safety,
    load_with_adapter,
    open_model_folder,
)
from studio.core.models.identity import require_unchanged, safetensors_header
from studio.core.progress import Progress, no_progress

EXPORT_RECORD = "studio_export.json"
GGUF_SUBDIR = "gguf"

ADAPTER_KEPT_MIN = 0.5  # below this share of the adapter's effect, the export dtype has lost the adapter


@dataclass
class ExportReport:
    out_dir: Path
    kind: str  # "merged" | "adapter"
    dtype: str | None
    adapter_dir: str
    base_model: str
    status: str  # "passed" | "failed" | "unchecked"
    files: list[str] = field(default_factory=list)
    gguf_files: list[str] = field(default_factory=list)
    gguf_sizes: dict[str, int] = field(default_factory=dict)  # bytes of each GGUF file
    equivalence: list[EquivalenceReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    size_bytes: int = 0
    created: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir), "kind": self.kind, "dtype": self.dtype, "adapter_dir": self.adapter_dir,
            "base_model": self.base_model, "status": self.status, "files": self.files, "gguf_files": self.gguf_files,
            "gguf_sizes": self.gguf_sizes,
            "equivalence": [e.to_dict() for e in self.equivalence], "notes": self.notes, "timings": self.timings,
            "size_bytes": self.size_bytes, "created": self.created,
        }

    def summary(self) -> str:
        head = {
            "passed": "Export verified",
            "failed": "EXPORT FAILED its equivalence check — do not ship it",
            "unchecked": "Export written (equivalence not checked)",
        }[self.status]
        lines = [f"{head}: {self.kind} model, {self.dtype or 'adapter files'}, {format_bytes_in(self.size_bytes, 'MiB', 1)}"]
        lines += [f"  {name}: {format_bytes_in(size, 'MiB', 1)}" for name, size in self.gguf_sizes.items()]
        lines += [f"  {e.summary()}" for e in self.equivalence]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# ---------------------------------------------------------------- checks before any heavy work


def _check_base(base: Path, *, allow_pickle: bool, trust_remote_code: bool) -> ModelFolder:
    """Refuse what would run foreign code or mis-merge, before any heavy work."""
    folder = open_model_folder(base)
    if folder.quantised:
        raise StudioError(
            "The base model folder holds quantised weights. Merging needs the 16-bit base: point the adapter at "
            "the original (unquantised) model.", path=base,
        )
    check_safety(folder, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, words=AT_EXPORT,
                 weights_required=False)
    if not folder.safetensors and not folder.pickle:
        raise StudioError("The base model folder has no weights (*.safetensors).", path=base)
    return folder


def _compute_dtype(target: str, base: Path) -> str:
    """fp32 when it fits comfortably in RAM: the merge is then exact to fp32 and the check measures the
    export's rounding alone, not the noise of 16-bit arithmetic. Big models merge in their own dtype."""
    if target == "float32":
        return target
    try:
        import psutil

        weights = sum(f.stat().st_size for f in base.glob("*.safetensors")) or sum(
            f.stat().st_size for f in base.glob("*.bin"))
        # fp32 copy of 16-bit weights (×2), plus the reload for the check after the first is freed.
        return "float32" if weights * 2 * 1.5 < 0.6 * psutil.virtual_memory().available else target
    except Exception:
        return target


def _adapter_vocab(adapter: AdapterFiles) -> int | None:
    """Vocabulary size the adapter saved embeddings for (training that added tokens resizes them)."""
    header = safetensors_header(adapter.weights)
    for key, info in header.items():
        if key != "__metadata__" and key.endswith(("embed_tokens.weight", "wte.weight")) and "lora_" not in key:
            return int(info["shape"][0])
    return None


# ---------------------------------------------------------------- the export


def _write_record(folder: Path, report: ExportReport, extra: dict) -> None:
    data = {"studio_export": 1, **report.to_dict(), **extra}
    data["out_dir"] = str(report.out_dir)
    (folder / EXPORT_RECORD).write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def _disk_error(err: BaseException, out_dir: Path) -> StudioError:
    """A failed write, in words. A full disk shows up as OSError, as safetensors' SafetensorError or as
    a wrapped RuntimeError depending on the writer, so ``is_disk_full`` decides, not the type."""
    if is_disk_full(err):
        return StudioError(
            "The disk is full, so the export was abandoned and its partial files removed: nothing was written "
            "to this folder. Free some space (a merged model needs about twice the base model's size) and try "
            "again.", path=out_dir, detail=str(err))
    return StudioError(f"Could not write the export: {getattr(err, 'strerror', None) or err}.", path=out_dir,
                       detail=str(err))


def export_model(
    adapter_dir: Path,
    out_dir: Path,
    *,
    merge: bool = True,
    dtype: str = "bfloat16",
    gguf: str | None = None,
    progress: Progress | None = None,
    check: bool = True,
    overwrite: bool = False,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    new_tokens: int = DEFAULT_NEW_TOKENS,
) -> ExportReport:
    """Export ``adapter_dir`` to ``out_dir``: merged model (+ optional GGUF and Modelfile), or adapter only.

    ``check`` runs the equivalence proof; a failed proof does not hide the export but marks it
    ``failed`` in the report and in ``studio_export.json`` so nobody ships it by mistake.
    """
    adapter_dir = Path(adapter_dir)
    report_progress = progress or no_progress
    from studio.core.library.full_model import export_full_model, is_model_folder

    if is_model_folder(adapter_dir):  # a full fine-tune: no merge, a dtype only when asked (full_model.py)
        return export_full_model(adapter_dir, out_dir, dtype=dtype if merge else None, gguf=gguf, check=check,
                                 progress=report_progress, overwrite=overwrite, prompts=prompts, new_tokens=new_tokens)
    adapter = read_adapter(adapter_dir)
    files = adapter_payload(adapter_dir)  # refuses links before anything is read through them
    # Only an earlier export (marked by its record) is ever replaced; see studio.core.destinations.
    out_dir = check_destination(out_dir, marker=EXPORT_RECORD, overwrite=overwrite, what="export", keep=[adapter_dir])
    sweep_partials(paths.exports_dir())  # what killed exports left in the default export folder
    if gguf is not None and gguf not in GGUF_TYPES:
        raise StudioError(f"Unknown GGUF type '{gguf}'; choose one of {', '.join(GGUF_TYPES)}.")
    if not merge:
        if gguf:
            raise StudioError("GGUF needs a merged model; export with merge turned on.")
        return _export_adapter(adapter, files, out_dir, report_progress, check=check, overwrite=overwrite)
    target = normalise_dtype(dtype)
    base = resolve_base(adapter)
    preflight(base, out_dir, target, gguf)  # before minutes of merging: the GGUF type, this machine, disk space
    require_unchanged(recorded_base_identity(adapter_dir), base, since="this adapter was trained",
                      remedy="restore the original model files, or retrain the adapter on the model as it is now.")
    check_destination(out_dir, marker=EXPORT_RECORD, overwrite=overwrite, what="export", keep=[base])
    base_folder = _check_base(base, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    try:
        return _export_merged(adapter, out_dir, base_folder, target, gguf, report_progress, check=check,
                              overwrite=overwrite, trust_remote_code=trust_remote_code,
                              prompts=prompts, new_tokens=new_tokens)
    except Exception as err:
        if is_disk_full(err):
            raise _disk_error(err, out_dir) from None
        raise


def _load_tokenizer(adapter_dir: Path, base: Path, trust_remote_code: bool) -> Any:
    ensure()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_tokenizer_source(adapter_dir, base)), trust_remote_code=trust_remote_code)


def _export_merged(
    adapter: AdapterFiles, out_dir: Path, base_folder: ModelFolder, target: str, gguf: str | None,
    progress: Progress, *, check: bool, overwrite: bool, trust_remote_code: bool, prompts: Sequence[str],
    new_tokens: int,
) -> ExportReport:
    adapter_dir, base = adapter.folder, base_folder.path
    ensure("peft")
    import torch

    from studio.core.library.equivalence import check_equivalence

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plan, why_not = (plan_direct_merge(adapter, base, trust_remote_code=trust_remote_code) if base_folder.safetensors
                     else (None, "pickle weights"))
    if plan is None:  # PEFT merges; the same check refuses an adapter PEFT would load only in part
        check_peft_loads_all(adapter_dir, base, trust_remote_code=trust_remote_code)
    # fp32 only pays off when the proof runs (see _compute_dtype); otherwise merge in the target dtype.
    compute = _compute_dtype(target, base) if check else target
    # Loaded only if something needs it (the proof, GGUF, a missing eos in the generation config).
    tokenizer = functools.cache(lambda: _load_tokenizer(adapter_dir, base, trust_remote_code))

    peft_model = trace = base_logits = unmerged = None
    if check or plan is None:
        # The PeftModel is the reference the proof compares against, and the fallback merge.
        progress(0.02, f"Loading base model {base.name} ({compute})")
        peft_model = load_with_adapter(base_folder, adapter_dir, compute, trust_remote_code=trust_remote_code,
                                       vocab=_adapter_vocab(adapter))
        timings["load_s"] = time.perf_counter() - t0
        if check:
            from studio.core.library.equivalence import reference_trace

            t = time.perf_counter()
            progress(0.22, "Recording reference outputs of base + adapter")
            trace = reference_trace(peft_model, tokenizer(), prompts, new_tokens=new_tokens)
            if target != compute:  # the adapter's own effect, to tell a dtype that rounds it away
                base_logits = _logits_without_adapter(peft_model, trace)
            timings["reference_s"] = time.perf_counter() - t

    report = ExportReport(out_dir=out_dir, kind="merged", dtype=target, adapter_dir=str(adapter_dir.resolve()),
                          base_model=str(base), status="unchecked", created=_now())
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        t = time.perf_counter()
        if plan is not None:
            if peft_model is not None:
                peft_model = None  # free the reference copy before the shards are read
                gc.collect()
            progress(0.35, f"Merging adapter into the weights ({target})")
            gen = write_merged(plan, tmp, target, lambda f, m: progress(0.35 + 0.2 * f, m))
            copy_tokenizer_files(_tokenizer_source(adapter_dir, base), tmp)
            method = "direct"
        else:
            progress(0.35, "Merging adapter into the weights")
            merged = peft_model.merge_and_unload()
            if compute != target:
                merged = merged.to(getattr(torch, target))
            gen = merged.generation_config
            progress(0.45, f"Writing safetensors ({target})")
            merged.save_pretrained(tmp, max_shard_size="2GB")
            tokenizer().save_pretrained(tmp)
            del merged
            peft_model = None  # free the first copy before the candidate is loaded
            gc.collect()
            method = "peft"
        if gen is not None:
            if gen.eos_token_id is None and tokenizer().eos_token_id is not None:
                gen.eos_token_id = tokenizer().eos_token_id
            gen.save_pretrained(tmp)
        timings["merge_save_s"] = time.perf_counter() - t
        if trace is not None:
            t = time.perf_counter()
            progress(0.6, "Proving the merged model matches base + adapter")
            merged_logits: list = []
            merged_eq = check_equivalence(trace, tmp, tokenizer(), kind=SHORT_DTYPE[target], label=f"merged {SHORT_DTYPE[target]}",
                                          dtype=getattr(torch, compute), keep_logits=merged_logits)
            if target != compute:
                progress(0.65, f"Measuring what {SHORT_DTYPE[target]} itself costs, unmerged")
                unmerged = _unmerged_in_dtype(adapter, base_folder, target, trace, tokenizer(), trust_remote_code)
                merged_eq = judge_in_dtype(merged_eq, unmerged)
                kept = adapter_effect_kept(trace, base_logits, merged_logits) if base_logits else None
                if kept is not None and kept < ADAPTER_KEPT_MIN:
                    report.notes.append(
                        f"{SHORT_DTYPE[target]} keeps only {kept * 100:.0f}% of what the adapter changes (its small updates "
                        "round away in 16-bit weights): export in fp32, or export the adapter alone")
            report.equivalence.append(merged_eq)
            del merged_logits
            timings["check_s"] = time.perf_counter() - t
        if gguf:
            t = time.perf_counter()
            name = gguf_file_name(gguf, out_dir.name)
            # A subfolder of its own: beside tokenizer_config.json, transformers' GGUF loader would take
            # the HF tokenizer files and drop the GGUF's chat template.
            gdir = tmp / GGUF_SUBDIR
            gdir.mkdir()
            write_gguf_file(tmp, gdir / name, gguf, out_dir.name, progress)
            modelfile = ollama_modelfile(tokenizer(), name, stop_tokens(gen, tokenizer()), add_bos=adds_bos(tokenizer()))
            (gdir / MODELFILE).write_text(modelfile, encoding="utf-8")
            report.gguf_files.append(f"{GGUF_SUBDIR}/{name}")
            report.gguf_sizes[f"{GGUF_SUBDIR}/{name}"] = (gdir / name).stat().st_size
            timings["gguf_s"] = time.perf_counter() - t
            if trace is not None:
                report.equivalence += prove_gguf(trace, gdir / name, gguf, tokenizer(), progress, timings,
                                                 dtype_baseline=unmerged, merged=tmp, notes=report.notes)
                if not any(e.label.endswith("llama.cpp") for e in report.equivalence):
                    report.notes.append("llama.cpp is not installed here, so the GGUF was proven with transformers' "
                                        "GGUF reader only; install the llamacpp extra to prove it in llama.cpp")
        if check and compute != "float32":
            report.notes.append(f"merged and checked in {compute}: an fp32 copy of this model would not fit in RAM")
        if plan is None:
            report.notes.append(f"merged through PEFT (the direct merge does not handle {why_not})")
        if trace is not None:
            report.status = "passed" if all(e.passed for e in report.equivalence) else "failed"
        report.timings = {k: round(v, 3) for k, v in timings.items()}
        report.files = [*sorted(p.name for p in tmp.iterdir()), EXPORT_RECORD]
        report.size_bytes = _folder_size(tmp)
        progress(0.97, "Writing export record")
        _write_record(tmp, report, {"adapter_config": adapter.config, "merge_method": method})
    report.timings["total_s"] = round(time.perf_counter() - t0, 3)
    progress(1.0, "Export complete" if report.status != "failed" else "Export written, but its check FAILED")
    return report


def _logits_without_adapter(peft_model: Any, trace: Any) -> list:
    """The base's logits (adapter switched off) on the reference sequences, in the reference's dtype."""
    import torch

    with torch.inference_mode(), peft_model.disable_adapter():
        return [peft_model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().cpu()
                for ids in trace.sequences]


def _unmerged_in_dtype(adapter: AdapterFiles, base_folder: ModelFolder, target: str, trace: Any, tokenizer: Any,
                       trust_remote_code: bool) -> EquivalenceReport:
    """Base + adapter computed in ``target`` with no merge, against the fp32 reference: the error the
    dtype itself costs, which the merged export is judged against."""
    from studio.core.library.equivalence import check_equivalence

    model = load_with_adapter(base_folder, adapter.folder, target, trust_remote_code=trust_remote_code,
                              vocab=_adapter_vocab(adapter))
    try:
        return check_equivalence(trace, model, tokenizer, kind="fp32", label=f"unmerged {SHORT_DTYPE[target]}")
    finally:
        del model
        gc.collect()


def _tokenizer_source(adapter_dir: Path, base: Path) -> Path:
    """The adapter's own tokenizer when training saved one (it may carry a changed template or pad)."""
    return adapter_dir if has_tokenizer_files(adapter_dir) else base


def _export_adapter(adapter: AdapterFiles, files: list[Path], out: Path, progress: Progress, *, check: bool,
                    overwrite: bool) -> ExportReport:
    """The adapter alone (``files``, its standard PEFT files), as a folder or a .zip; verified by checksum."""
    report = ExportReport(out_dir=out, kind="adapter", dtype=None, adapter_dir=str(adapter.folder.resolve()),
                          base_model=adapter.base_model, status="unchecked", created=_now(),
                          files=[f.name for f in files] + [EXPORT_RECORD])
    sums = {f.name: file_sha256(f) for f in files} if check else {}
    try:
        if out.suffix.lower() == ".zip":
            with atomic_file(out, overwrite=overwrite) as tmp_zip:
                progress(0.1, "Writing adapter archive")
                with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    for i, f in enumerate(files):
                        zf.write(f, f.name)
                        progress(0.1 + 0.8 * (i + 1) / len(files), f"Added {f.name}")
                    if check:
                        report.status = "passed" if all(
                            hashlib.sha256(zf.read(n)).hexdigest() == s for n, s in sums.items()) else "failed"
                        report.notes.append("archive contents verified identical to the adapter (sha256)")
                    report.size_bytes = sum(f.stat().st_size for f in files)
                    zf.writestr(EXPORT_RECORD, json.dumps({"studio_export": 1, **report.to_dict(), "sha256": sums},
                                                          indent=2, default=str))
        else:
            with atomic_dir(out, overwrite=overwrite) as tmp:
                for i, f in enumerate(files):
                    shutil.copy2(f, tmp / f.name)
                    progress(0.1 + 0.8 * (i + 1) / len(files), f"Copied {f.name}")
                if check:
                    report.status = "passed" if all(file_sha256(tmp / n) == s for n, s in sums.items()) else "failed"
                    report.notes.append("copied files verified identical to the adapter (sha256)")
                report.size_bytes = _folder_size(tmp)
                _write_record(tmp, report, {"sha256": sums})
    except OSError as err:
        raise _disk_error(err, out) from None
    progress(1.0, "Export complete")
    return report


__all__ = ["EXPORT_RECORD", "ExportReport", "export_model", "ollama_modelfile"]
