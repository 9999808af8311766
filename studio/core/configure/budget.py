"""Which memory the estimate is judged against, and the checks that need the model as well as the config.

The Configure room estimates for this machine (its GPU, or its RAM when training on CPU) or for a
GPU size the user plans to train on elsewhere; until the machine has been probed there is nothing
to judge against, and a failed probe leaves the budget unknown rather than guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from studio.core.config import RunConfig
from studio.core.memory import GiB
from studio.core.models.device import DeviceInfo

if TYPE_CHECKING:
    from studio.core.models.introspect import ModelInfo


class Budget(NamedTuple):
    """Device kind to estimate for, the bytes available (None when unknown) and what they are called."""

    kind: str
    bytes: int | None
    name: str


def budget_for(device: str, machine: DeviceInfo | None, *, probe_failed: bool = False,
               planned_gpu_gib: float | None = None) -> Budget | None:
    """The budget for a run that trains on ``device`` (auto, cpu, cuda); None while the machine is
    still being probed."""
    if planned_gpu_gib:
        return Budget("cuda", int(planned_gpu_gib * GiB), "GPU")
    if machine is None:
        if not probe_failed:
            return None
        return Budget("cpu" if device == "auto" else device, None, "this machine's memory is unknown")
    target = machine.kind if device == "auto" else device
    if target == "cpu":
        return Budget("cpu", machine.ram_bytes, "RAM")
    if machine.kind == "cuda":
        return Budget("cuda", machine.memory_bytes, "GPU")
    return Budget("cuda", None, "no CUDA GPU here: pick a GPU size under Plan for")


def model_limits(cfg: RunConfig, info: ModelInfo | None) -> dict[str, str]:
    """Field -> message for what the config cannot check alone because it depends on the model."""
    out: dict[str, str] = {}
    if info is not None and info.context_length and cfg.training.max_seq_len > info.context_length:
        out["training.max_seq_len"] = (
            f"Longer than this model's context window ({info.context_length:,} tokens): it has never seen "
            f"positions past that. Use {info.context_length:,} or less.")
    return out
