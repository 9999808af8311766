"""The GGUF part of a merged export: write the file (or have llama.cpp quantize it), then prove it
against base + adapter in transformers' GGUF reader and in llama.cpp itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from studio.core.library.equivalence import EquivalenceReport, judge_in_dtype
from studio.core.library.gguf_export import LLAMACPP_TYPES, transformers_reader_gap
from studio.core.models.folder import CONFIG_FILE, read_config_file

SIXTEEN_BIT = ("f16", "bf16")


def write_gguf_file(merged: Path, dest: Path, gguf: str, name: str, progress: Any) -> None:
    """The GGUF of type ``gguf`` at ``dest``: written directly, or (k-quants) written as f16 beside it and
    quantized by llama.cpp, the f16 intermediate removed."""
    from studio.core.library.gguf_export import write_gguf

    def step(f: float, m: str) -> None:
        progress(0.7 + 0.1 * f, m)

    if gguf not in LLAMACPP_TYPES:
        write_gguf(merged, dest, gguf, name=name, progress=step)
        return
    from studio.core.library.llamacpp_runner import quantize

    f16 = dest.with_name(f".f16-{dest.name}")
    write_gguf(merged, f16, "f16", name=name, progress=step)
    progress(0.8, f"Quantizing to {gguf.upper()} with llama.cpp")
    try:
        quantize(f16, dest, gguf)
    finally:
        f16.unlink(missing_ok=True)


def prove_gguf(trace: Any, path: Path, gguf: str, tokenizer: Any, progress: Any,
                timings: dict[str, float], dtype_baseline: EquivalenceReport | None = None, *,
                merged: Path | None = None, notes: list[str] | None = None) -> list[EquivalenceReport]:
    """The GGUF against base + adapter twice: read by transformers' GGUF reader, and run by llama.cpp
    itself (the runtime behind Ollama and LM Studio) when llama-cpp-python is installed.

    ``dtype_baseline``: when the merged weights were written in a 16-bit dtype, a 16-bit GGUF made
    from them is judged like the merged folder, against what that dtype costs unmerged
    (``judge_in_dtype``); quantized types keep their agreement rule. ``merged``: the HF folder the GGUF
    was written from; where transformers' GGUF reader is known to rebuild that architecture or tokenizer
    differently from the file (``transformers_reader_gap``), llama.cpp alone judges it and ``notes`` says why."""
    import torch

    from studio.core.library import llamacpp_runner
    from studio.core.library.equivalence import check_equivalence, check_in_llamacpp

    def judged(report: EquivalenceReport) -> EquivalenceReport:
        if dtype_baseline is not None and gguf in SIXTEEN_BIT:
            return judge_in_dtype(report, dtype_baseline)
        return report

    out = []
    gap = None if merged is None else transformers_reader_gap(
        read_config_file(Path(merged) / CONFIG_FILE), Path(merged))
    if gap is None or not llamacpp_runner.available():
        t = time.perf_counter()
        progress(0.84, f"Proving the GGUF {gguf} matches base + adapter (transformers)")
        out.append(judged(check_equivalence(trace, path, tokenizer, kind=gguf, label=f"GGUF {gguf} in transformers",
                                            dtype=torch.float32)))
        timings["gguf_check_s"] = time.perf_counter() - t
    elif notes is not None:
        notes.append(f"GGUF {gguf} proven in llama.cpp only: {gap}")
    if llamacpp_runner.available():
        t = time.perf_counter()
        progress(0.9, f"Proving the GGUF {gguf} in llama.cpp")
        out.append(judged(check_in_llamacpp(trace, path, tokenizer, kind=gguf, label=f"GGUF {gguf} in llama.cpp")))
        timings["gguf_llamacpp_s"] = time.perf_counter() - t
    return out
