"""The handful of run settings the arithmetic needs, resolved from a RunConfig (and a dataset's lengths)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from studio.core.config import PREFERENCE_OBJECTIVES, RunConfig
from studio.core.memory.dataset_lengths import DatasetLengths
from studio.core.models.device import resolve_dtype
from studio.core.models.introspect import ModelInfo, resolve_targets


@dataclass(frozen=True)
class Plan:
    """The handful of settings the arithmetic needs; cheap to vary for the suggestion searches."""

    device: str
    method: str
    dtype: str
    batch: int
    seq: int
    grad_ckpt: bool
    optimizer: str
    targets: tuple[str, ...]
    r: int
    dropout: float
    dora: bool
    double_quant: bool
    compute_dtype: str
    # The dataset, when one is known: the widest row the trainer will see (already truncated, or the
    # whole token count when packing) and how many rows there are to batch. 0 = no dataset: every
    # row is assumed to fill max_seq_len (the worst case).
    data_width: int = 0
    data_rows: int = 0
    packing: bool = False
    # sft, or a preference objective (dpo, orpo): batch counts pairs, and TRL forwards both answers of
    # each pair in one batch (see memory.objective).
    objective: str = "sft"

    @property
    def width(self) -> int:
        """Tokens per row of the widest batch: group_by_length pads a batch to its longest row."""
        return min(self.seq, self.data_width) if self.data_width else self.seq

    @property
    def rows(self) -> int:
        """Rows in the widest batch: the batch size, unless the (packed) dataset has fewer rows."""
        if not self.data_rows:
            return self.batch
        available = math.ceil(self.data_width / self.seq) if self.packing else self.data_rows
        return max(1, min(self.batch, available))

    @property
    def forward_rows(self) -> int:
        """Rows one forward pass carries: a preference batch holds chosen and rejected of each pair."""
        return self.rows * (2 if self.objective in PREFERENCE_OBJECTIVES else 1)

    @property
    def autocast(self) -> bool:
        # The engine turns on Trainer bf16/fp16 (autocast) on CUDA for adapter methods on a 16-bit base.
        return self.device == "cuda" and self.method != "full" and self.dtype != "float32"


def make_plan(info: ModelInfo, cfg: RunConfig, device_kind: str, lengths: DatasetLengths | None = None) -> Plan:
    targets: tuple[str, ...] = ()
    if cfg.method != "full":
        targets = tuple(resolve_targets(info, cfg.lora.target_modules))
    return Plan(
        device=device_kind,
        method=cfg.method,
        # As the engine picks, on a GPU with bf16 (fp16 would cost the same bytes).
        dtype=resolve_dtype(cfg.model.dtype, device_kind, bf16=True),
        batch=cfg.training.batch_size,
        seq=cfg.training.max_seq_len,
        grad_ckpt=cfg.training.grad_checkpointing,
        optimizer=cfg.training.optimizer,
        targets=targets,
        r=cfg.lora.r,
        # TRL's DPO/ORPO trainers set every dropout to p=0 (disable_dropout, kept by training.preference),
        # and torch returns a p=0 dropout's input itself: no copy, no mask.
        dropout=0.0 if cfg.objective in PREFERENCE_OBJECTIVES else cfg.lora.dropout,
        dora=cfg.lora.use_dora,
        double_quant=cfg.quant.double_quant,
        compute_dtype=cfg.quant.compute_dtype,
        objective=cfg.objective,
        **(lengths.plan_fields(cfg) if lengths is not None and lengths.lengths else {}),
    )

