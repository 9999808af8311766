"""Which checkpoints of a run can be resumed from.

The Trainer writes a checkpoint folder file by file (weights, optimizer, scheduler, RNG state, then
trainer_state.json). A crash, a full disk or a hand-deleted file can leave a folder that exists but
cannot be loaded, and resuming from it dies deep inside torch with a raw error. So every checkpoint
is checked cheaply (safetensors headers against the file size, zip directories of torch files, never
the tensors themselves) and a resume uses the newest intact one, naming the ones it skipped.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

from studio.core.errors import StudioError

PREFIX = "checkpoint-"
SET_ASIDE_PREFIX = "damaged-"  # not matched by the Trainer's "checkpoint-*" rotation nor by ours
STATE_FILE = "trainer_state.json"
# One of these holds the weights: a LoRA adapter, a full model, or a sharded full model.
WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json",
           "adapter_model.bin", "pytorch_model.bin")
# Without these a resume silently restarts the optimizer and the schedule: not a resume.
REQUIRED = ("optimizer.pt", "scheduler.pt")
TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def step_of(folder: Path) -> int | None:
    """The step a ``checkpoint-N`` folder was saved at; None for any other name."""
    suffix = folder.name.removeprefix(PREFIX)
    return int(suffix) if folder.name.startswith(PREFIX) and suffix.isdigit() else None


def saved_step(ckpt: Path) -> tuple[int, int]:
    """(global step, planned total steps) from an intact checkpoint's trainer_state.json."""
    data = json.loads((Path(ckpt) / STATE_FILE).read_text(encoding="utf-8"))
    return int(data["global_step"]), int(data.get("max_steps") or 0)


def _safetensors_problem(path: Path) -> str | None:
    from studio.core.models.identity import safetensors_header

    try:
        header = safetensors_header(path)
        with open(path, "rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except StudioError:
        return f"{path.name} is truncated or unreadable"
    except (OSError, KeyError, TypeError, ValueError, IndexError, AttributeError):
        return f"{path.name} has an unreadable header"
    if path.stat().st_size < 8 + header_len + end:
        return f"{path.name} is truncated"
    return None


def _torch_file_problem(path: Path) -> str | None:
    """torch.save writes a zip whose directory sits at the very end: a cut file loses it."""
    try:
        with zipfile.ZipFile(path) as zf:
            if not zf.infolist():
                return f"{path.name} is empty"
    except (zipfile.BadZipFile, OSError, ValueError):
        return f"{path.name} is truncated or damaged"
    return None


def problem(ckpt: Path) -> str | None:
    """Why a resume cannot start from ``ckpt``, in words; None when it is intact."""
    ckpt = Path(ckpt)
    state = ckpt / STATE_FILE
    if not state.is_file():
        return "it was never finished (no trainer_state.json)"
    try:
        saved_step(ckpt)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its trainer_state.json is unreadable"
    present = [name for name in WEIGHTS if (ckpt / name).is_file()]
    if not present:
        return "its weights are missing"
    missing = [name for name in REQUIRED if not (ckpt / name).is_file()]
    if missing:
        return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
    if "model.safetensors.index.json" in present:
        try:
            shards = set(json.loads((ckpt / "model.safetensors.index.json").read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return "model.safetensors.index.json is unreadable"
        for shard in sorted(shards):
            if not (ckpt / shard).is_file():
                return f"weight shard {shard} is missing"
    for f in sorted(ckpt.iterdir()):
        why = None
        if f.suffix == ".safetensors":
            why = _safetensors_problem(f)
        elif f.suffix in TORCH_SUFFIXES:
            why = _torch_file_problem(f)
        if why:
            return why
    return None


def newest_intact(ckpt_root: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint a resume can start from, and the newer ones skipped with the reason."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return None, []
    found = [(step, p) for p in root.iterdir() if p.is_dir() and (step := step_of(p)) is not None]
    skipped: list[tuple[Path, str]] = []
    for _step, ckpt in sorted(found, reverse=True):
        why = problem(ckpt)
        if why is None:
            return ckpt, skipped
        skipped.append((ckpt, why))
    return None, skipped


def set_aside(ckpt: Path) -> Path:
    """Rename a damaged checkpoint out of the way (kept for a look, not deleted), so the Trainer
    neither counts it among the checkpoints it keeps nor trips over it when it saves that step again."""
    ckpt = Path(ckpt)
    target = ckpt.with_name(SET_ASIDE_PREFIX + ckpt.name)
    n = 1
    while target.exists():
        n += 1
        target = ckpt.with_name(f"{SET_ASIDE_PREFIX}{n}-{ckpt.name}")
    os.replace(ckpt, target)
    return target
