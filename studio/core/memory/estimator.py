"""The estimate: the phases of a training step, their breakdowns and the peak over them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from studio.core.config import PREFERENCE_OBJECTIVES, RunConfig
from studio.core.memory.constants import (
    ADAPTER_BYTES,
    BREAKDOWN_KEYS,
    CPU_ADAM_TEMPORARIES,
    DTYPE_BYTES,
    FP32,
    LOSS_BACKWARD_BYTES,
    LOSS_FP32_COPIES_FWD,
    PHASES,
    SAFETENSORS_HEADER_PER_TENSOR,
    DeviceKind,
)
from studio.core.memory.dataset_lengths import DatasetLengths
from studio.core.memory.objective import objective_terms
from studio.core.memory.plan import Plan, make_plan
from studio.core.memory.terms import (
    _activations,
    _adapter_tensors,
    _optimizer_bytes,
    _overhead_parts,
    _weights_bytes,
    lora_params,
)
from studio.core.models.introspect import ModelInfo


@dataclass(frozen=True)
class Estimate:
    device_kind: str
    method: str
    dtype: str
    trainable_params: int
    total_params: int  # as PEFT counts it: base parameters + adapter parameters
    trainable_pct: float
    adapter_file_bytes: int  # adapter_model.safetensors (full fine-tuning: the whole model file)
    bytes: dict[str, int]  # breakdown of the peak phase; sums to total_bytes
    total_bytes: int
    peak_phase: str
    phases: dict[str, int]  # total of each phase
    phase_breakdown: dict[str, dict[str, int]] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    overhead_parts: dict[str, int] = field(default_factory=dict)  # what ``overhead`` is made of, before workspaces
    # The widest batch the estimate assumed: rows x tokens per row, from the dataset's lengths
    # ("dataset") or with every row at max_seq_len ("max_len", the worst case).
    batch_rows: int = 0
    batch_tokens: int = 0
    basis: str = "max_len"
    # sft, dpo or orpo: a preference batch forwards 2 x batch_rows rows (chosen and rejected of each pair)
    objective: str = "sft"
    # What the objective adds, by cause (empty for sft): the rejected answers' half of the activations,
    # and the working set of DPO's reference forward while it runs.
    objective_parts: dict[str, int] = field(default_factory=dict)

    @property
    def forward_rows(self) -> int:
        """Rows of the widest forward: chosen and rejected of each pair for a preference objective."""
        return self.batch_rows * (2 if self.objective in PREFERENCE_OBJECTIVES else 1)

    def fits(self, budget_bytes: int) -> bool:
        return self.total_bytes <= budget_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_kind": self.device_kind,
            "method": self.method,
            "dtype": self.dtype,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "trainable_pct": self.trainable_pct,
            "adapter_file_bytes": self.adapter_file_bytes,
            "bytes": dict(self.bytes),
            "total_bytes": self.total_bytes,
            "peak_phase": self.peak_phase,
            "phases": dict(self.phases),
            "targets": list(self.targets),
            "overhead_parts": dict(self.overhead_parts),
            "batch_rows": self.batch_rows,
            "batch_tokens": self.batch_tokens,
            "basis": self.basis,
            "objective": self.objective,
            "forward_rows": self.forward_rows,
            "objective_parts": dict(self.objective_parts),
        }

    def scaled(self, factor: float) -> Estimate:
        """This estimate with every figure multiplied by ``factor`` (the machine's correction)."""
        def mul(d: dict[str, int]) -> dict[str, int]:
            return {k: int(v * factor) for k, v in d.items()}

        return replace(self, bytes=mul(self.bytes), total_bytes=int(self.total_bytes * factor),
                       phases=mul(self.phases), phase_breakdown={k: mul(v) for k, v in self.phase_breakdown.items()},
                       overhead_parts=mul(self.overhead_parts))



# The estimate


def estimate_plan(info: ModelInfo, p: Plan) -> Estimate:
    adapted = info.modules_named(p.targets) if p.method != "full" else []
    wb = DTYPE_BYTES[p.dtype]
    if p.method == "full":
        adapter_params = 0
        trainable = info.total_params
        grad_bytes_per = wb
    else:
        adapter_params = sum(lora_params(m, p.r, p.dora) for m in adapted)
        trainable = adapter_params
        grad_bytes_per = ADAPTER_BYTES
    total_params = info.total_params + adapter_params

    weights = _weights_bytes(info, p)
    adapter = adapter_params * ADAPTER_BYTES
    gradients = trainable * grad_bytes_per
    optimizer = _optimizer_bytes(info, p, adapted)
    activations, workspace, d = _activations(info, p, adapted)

    tv = p.rows * p.width * info.vocab_size
    logits_fwd = tv * (d.logits + (LOSS_FP32_COPIES_FWD * FP32 if d.logits < FP32 else 0) + FP32)
    logits_bwd = tv * LOSS_BACKWARD_BYTES
    pref = objective_terms(info, p, d.logits, d.res)  # DPO / ORPO: TRL's own head and batching
    if pref is not None:
        logits_fwd, logits_bwd = pref.logits_forward, pref.logits_backward
    # Full fine-tuning: the head's weight gradient appears while the loss gradient is still alive.
    head_grad = 0
    if p.method == "full" and info.head is not None:
        head_grad = info.head.d_in * info.head.d_out * wb

    overhead_parts = _overhead_parts(info, p, adapted)
    overhead = sum(overhead_parts.values())
    if p.method == "qlora" and info.linear_modules:
        # bitsandbytes dequantises one weight to the compute dtype for each matmul
        biggest = max(m.d_in * m.d_out for m in info.linear_modules)
        workspace += biggest * DTYPE_BYTES[p.compute_dtype]
    if p.dora and adapted:
        # DoRA's weight norm materialises W + scale * B @ A for one layer at a time
        workspace += max(m.d_in * m.d_out for m in adapted) * max(wb, FP32)
    opt_ws = 0  # bitsandbytes 8-bit optimizers update in place
    if p.optimizer == "adamw":
        if p.device == "cuda":
            opt_ws = trainable * grad_bytes_per  # foreach AdamW: one state-sized temporary (sqrt of exp_avg_sq)
        elif p.method == "full":
            biggest = max([m.d_in * m.d_out for m in info.linear_modules] + [info.embedding_params])
            opt_ws = CPU_ADAM_TEMPORARIES * biggest * wb  # the CPU loop updates one tensor at a time
        else:
            opt_ws = CPU_ADAM_TEMPORARIES * max((n for m in adapted for n in _adapter_tensors(m, p)),
                                                default=0) * ADAPTER_BYTES

    zero = dict.fromkeys(BREAKDOWN_KEYS, 0)
    base = {**zero, "weights": weights, "adapter": adapter, "optimizer": optimizer, "overhead": overhead}
    fwd = {**base, "activations": activations, "logits": logits_fwd}
    bwd_loss = {**base, "activations": activations, "logits": logits_bwd, "gradients": head_grad}
    bwd_layers = {**base, "activations": activations, "gradients": head_grad, "overhead": overhead + workspace}
    bwd_end = {**base, "gradients": gradients, "overhead": overhead + workspace}
    candidates = [bwd_loss, bwd_layers, bwd_end]
    if pref is not None and pref.reference:
        # DPO's reference forward runs between the policy forward and the backward (the meter's backward phase)
        candidates.append({**base, "activations": activations, "logits": pref.reference})
    bwd = max(candidates, key=lambda b: sum(b.values()))
    opt = {**base, "gradients": gradients, "overhead": overhead + opt_ws}
    breakdown = {"forward_end": fwd, "backward": bwd, "optimizer": opt}
    phases = {k: int(sum(v.values())) for k, v in breakdown.items()}
    peak_phase = max(PHASES, key=lambda k: phases[k])

    if p.method == "full":
        file_bytes = info.total_params * wb
    else:
        n_tensors = sum(m.count * (3 if p.dora else 2) for m in adapted)
        file_bytes = adapter_params * ADAPTER_BYTES + n_tensors * SAFETENSORS_HEADER_PER_TENSOR
    return Estimate(
        device_kind=p.device,
        method=p.method,
        dtype=p.dtype,
        trainable_params=int(trainable),
        total_params=int(total_params),
        trainable_pct=100.0 * trainable / total_params if total_params else 0.0,
        adapter_file_bytes=int(file_bytes),
        bytes={k: int(v) for k, v in breakdown[peak_phase].items()},
        total_bytes=phases[peak_phase],
        peak_phase=peak_phase,
        phases=phases,
        phase_breakdown={k: {kk: int(vv) for kk, vv in v.items()} for k, v in breakdown.items()},
        targets=p.targets,
        overhead_parts=overhead_parts,
        batch_rows=p.rows,
        batch_tokens=p.width,
        basis="dataset" if p.data_width else "max_len",
        objective=p.objective,
        objective_parts={} if pref is None else {"rejected_activations": activations // 2,
                                                 "reference_forward": pref.reference},
    )


def estimate(info: ModelInfo, cfg: RunConfig, *, device_kind: DeviceKind = "cuda",
             lengths: DatasetLengths | None = None) -> Estimate:
    """Peak training memory of ``cfg`` on ``info`` (see the package docstring for the phase model).

    With ``lengths`` (the dataset's token counts) the activations and logits are those of the
    widest batch the trainer will form on that dataset; without, every row fills max_seq_len.

    Raises StudioError when the LoRA targets name modules the model does not have.
    """
    if device_kind not in ("cuda", "cpu"):
        raise ValueError(f"device_kind must be 'cuda' or 'cpu', not {device_kind!r}")
    return estimate_plan(info, make_plan(info, cfg, device_kind, lengths))

