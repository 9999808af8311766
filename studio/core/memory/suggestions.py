"""Ways to make a run fit (or use the machine better), each with the estimate it leads to."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from studio.core.config import RunConfig
from studio.core.memory.constants import DeviceKind
from studio.core.memory.dataset_lengths import DatasetLengths
from studio.core.memory.estimator import Estimate, estimate_plan
from studio.core.memory.plan import Plan, make_plan
from studio.core.memory.verdict import green_limit
from studio.core.models.introspect import ModelInfo


@dataclass(frozen=True)
class Suggestion:
    kind: str  # "batch_size" | "max_seq_len" | "qlora" | "grad_checkpointing" | "qlora+grad_checkpointing" | "optimizer"
    text: str
    overrides: dict[str, Any]  # dotted RunConfig keys, for studio.core.config.apply_overrides
    estimate: Estimate
    fits: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "overrides": dict(self.overrides), "fits": self.fits,
                "total_bytes": self.estimate.total_bytes}


# Suggestions


def _largest(lo: int, hi: int, fits) -> int | None:
    """Largest n in [lo, hi] with fits(n), assuming memory grows with n; None if even lo fails."""
    if not fits(lo):
        return None
    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def suggestions(info: ModelInfo, cfg: RunConfig, budget_bytes: int, *, device_kind: DeviceKind = "cuda",
                lengths: DatasetLengths | None = None, factor: float = 1.0) -> list[Suggestion]:
    """Ways to fit ``budget_bytes`` (or to use it better), each with the estimate it leads to.

    Fitting suggestions come first. Changes that help but do not fit on their own are still
    listed, so the user sees how far each lever goes. "Fits" means the green zone (see
    :mod:`studio.core.memory.verdict`): a suggestion never lands where the run would be amber or red.
    ``factor`` is this machine's correction (:mod:`studio.core.memory.calibration`), applied to
    every estimate before it is judged.
    """
    p = make_plan(info, cfg, device_kind, lengths)
    limit = green_limit(budget_bytes)
    current = estimate_plan(info, p).scaled(factor)
    out: list[Suggestion] = []

    def add(kind: str, text: str, overrides: dict[str, Any], plan: Plan) -> None:
        est = estimate_plan(info, plan).scaled(factor)
        if est.total_bytes >= current.total_bytes and kind not in ("batch_size", "max_seq_len"):
            return  # not an improvement
        out.append(Suggestion(kind, text, overrides, est, est.total_bytes <= limit))

    def fits_plan(plan: Plan) -> bool:
        return estimate_plan(info, plan).total_bytes * factor <= limit

    batch_cap = 4096  # TrainingSection.batch_size's upper bound
    max_batch = _largest(1, batch_cap, lambda b: fits_plan(replace(p, batch=b)))
    if max_batch is not None and max_batch != p.batch:
        text = (f"Batch size up to {max_batch} fits." if max_batch < batch_cap
                else f"Any batch size up to the maximum ({batch_cap}) fits.")
        add("batch_size", text, {"training.batch_size": max_batch}, replace(p, batch=max_batch))
    seq_cap = max(info.context_length or 0, p.seq, 8)
    if p.data_width and not p.packing:
        # Rows no longer than this are never truncated: a longer max_seq_len changes nothing.
        seq_cap = max(min(seq_cap, p.data_width), 8)
    max_seq = _largest(8, seq_cap, lambda s: fits_plan(replace(p, seq=s)))
    if max_seq is not None and max_seq != p.seq:
        text = (f"Sequence length up to {max_seq} fits at batch {p.batch}." if max_seq < seq_cap
                else f"The model's full context ({seq_cap} tokens) fits at batch {p.batch}.")
        add("max_seq_len", text, {"training.max_seq_len": max_seq}, replace(p, seq=max_seq))
    if not p.grad_ckpt:
        add("grad_checkpointing", "Turn on gradient checkpointing: activations are recomputed instead of kept.",
            {"training.grad_checkpointing": True}, replace(p, grad_ckpt=True))
    if p.method != "qlora":
        targets = p.targets or tuple(info.target_names)
        q = replace(p, method="qlora", targets=targets)
        over: dict[str, Any] = {"method": "qlora"}
        if p.method == "full":
            over["lora.target_modules"] = ["all-linear"]
        add("qlora", "Switch to QLoRA: the base weights are stored in 4 bit.", over, q)
        if not p.grad_ckpt:
            add("qlora+grad_checkpointing", "Switch to QLoRA and turn on gradient checkpointing.",
                {**over, "training.grad_checkpointing": True}, replace(q, grad_ckpt=True))
    if p.optimizer == "adamw" and p.method == "full":
        add("optimizer", "Use 8-bit AdamW: optimizer states take 2 bytes per parameter instead of 4-8.",
            {"training.optimizer": "adamw_8bit"}, replace(p, optimizer="adamw_8bit"))
    out.sort(key=lambda s: (not s.fits, s.estimate.total_bytes if not s.fits else 0))
    return out

