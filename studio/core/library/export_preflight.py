"""What an export checks before minutes of merging: can this model become the asked GGUF, can this
machine make that type, and is there room on the destination's disk for what will be written.

A full disk half-way through a merge costs the user the time and leaves nothing; saying so first,
with the sizes, costs a few stat calls.
"""

from __future__ import annotations

import shutil
from math import prod
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.formatting import format_bytes_in
from studio.core.library.gguf_export import LLAMACPP_TYPES, check_exportable
from studio.core.models.identity import safetensors_header, weight_files

# Bytes per weight written: the merged safetensors in each dtype, and each GGUF type (q8_0 keeps a
# 2-byte scale per 32 weights, Q4_K_M averages about 4.9 bits; both keep norms in f32).
_DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0}
_GGUF_BYTES = {"f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_k_m": 4.9 / 8}
MARGIN = 1.1  # tokenizer, records, rounding up of the above


def parameter_count(base: Path) -> int:
    """Weights in the base, from its safetensors headers (no tensor is read)."""
    n = 0
    for f in weight_files(base):
        if f.suffix != ".safetensors":
            continue
        for key, info in safetensors_header(f).items():
            if key != "__metadata__":
                n += prod(info.get("shape") or [1])
    return n


def needed_bytes(params: int, dtype: str, gguf: str | None) -> int:
    """Peak bytes the export writes beside its destination (k-quants pass through an f16 file first)."""
    total = params * _DTYPE_BYTES[dtype]
    if gguf:
        total += params * _GGUF_BYTES[gguf]
        if gguf in LLAMACPP_TYPES:
            total += params * _GGUF_BYTES["f16"]
    return int(total * MARGIN)


def _free_bytes(out_dir: Path) -> int:
    probe = Path(out_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def preflight(base: Path, out_dir: Path, dtype: str, gguf: str | None) -> None:
    """Raise a StudioError naming the destination when the export cannot be made here."""
    if gguf:
        check_exportable(base)
        if gguf in LLAMACPP_TYPES:
            from studio.core.library import llamacpp_runner

            if not llamacpp_runner.available():
                raise StudioError(f"GGUF {gguf.upper()} is made by llama.cpp's own quantizer, which is not installed "
                                  f"here; {llamacpp_runner.INSTALL_HINT}. f16, bf16 and q8_0 need nothing extra.")
    params = parameter_count(base)
    if not params:
        return  # pickle-only bases: their headers cannot be read without loading them
    need, free = needed_bytes(params, dtype, gguf), _free_bytes(out_dir)
    if need > free:
        raise StudioError(
            f"This export needs about {format_bytes_in(need, digits=1)} on the destination's disk and only "
            f"{format_bytes_in(free, digits=1)} is free. Free some space or choose a folder on another disk; nothing was "
            "written.", path=out_dir)
