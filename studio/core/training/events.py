"""Events the engine emits while it trains.

Frozen, JSON-serialisable dataclasses: the journal writes them, the CLI prints them, the Qt worker
turns them into signals. Because they round-trip through JSON, the engine can later run in a
subprocess or on another machine without the panes changing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    t: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_id: str
    run_dir: str
    model: str
    dataset: list[str]
    dataset_fingerprint: str
    method: str
    device: str
    total_steps: int
    train_rows: int
    eval_rows: int
    trainable_params: int
    total_params: int
    resumed_from_step: int = 0
    # The estimator's peak on the same scale as Step.memory_bytes (CUDA: allocated tensors without
    # the context; CPU: resident set), so the two can share one plot; 0 when no estimate was possible.
    estimated_peak_bytes: int = 0
    memory_budget_bytes: int = 0  # the device's memory (GPU total, or system RAM on CPU)
    # The estimate of each phase of a step (memory.constants.PHASES), on the scale above.
    estimated_phase_bytes: dict[str, int] = field(default_factory=dict)
    # CPU: the process's resident set when the run began; what it held beyond the command line's imports
    # (a desktop window) is part of the estimate above (memory_watch.estimate_run).
    process_start_bytes: int = 0
    precision: str = ""  # weights dtype and mixed-precision mode the run trains in, e.g. "bfloat16 + bf16 autocast"
    trackers: list[str] = field(default_factory=list)  # external trackers fed alongside the journal
    base_identity: str = ""  # the base model's identity (studio.core.models.identity); resume checks it
    # sft | dpo | orpo (RunConfig.objective). Journals written before the field read as "sft"; runs.summarize
    # tells an older preference run by the rewards its evals journaled.
    objective: str = "sft"


@dataclass(frozen=True)
class Step(Event):
    kind: ClassVar[str] = "step"
    step: int
    total_steps: int
    epoch: float
    loss: float
    lr: float
    grad_norm: float | None = None
    tokens_per_s: float = 0.0
    tokens_seen: int = 0
    memory_bytes: int = 0
    # Preference objectives: the reward statistics TRL logs for the step (``reward_fields``); empty for SFT.
    rewards: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation(Event):
    kind: ClassVar[str] = "eval"
    step: int
    eval_loss: float
    perplexity: float  # NaN for preference objectives, whose eval loss is not a next-token loss
    # Preference objectives: rewards on the eval pairs; at step 0 "accuracy" is the base's preference accuracy.
    rewards: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCheck(Event):
    """The before/after measures of one side (training.before_after): "before" at step 0 on the model
    the run starts from, "after" on the weights it saves."""

    kind: ClassVar[str] = "model_check"
    step: int
    phase: str  # before | after
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class Log(Event):
    kind: ClassVar[str] = "log"
    level: str
    message: str


@dataclass(frozen=True)
class StateChanged(Event):
    """Phases a user sees: loading, evaluating, training, paused, saving."""

    kind: ClassVar[str] = "state"
    state: str
    detail: str = ""


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    status: str  # completed | stopped | failed
    reason: str
    step: int
    adapter_path: str = ""
    train_loss: float | None = None
    eval_loss: float | None = None
    duration_s: float = 0.0
    peak_memory_bytes: int = 0
    # The largest peak each phase of a step reached (memory_watch.PhaseMeter), beside RunStarted's estimate.
    measured_phase_bytes: dict[str, int] = field(default_factory=dict)
    library_id: str = ""
    best_checkpoint: str = ""  # the checkpoint the saved adapter comes from when the best one was kept
    best_eval_loss: float | None = None
    early_stopped: bool = False
    # "Will it stop?" (training.stop_check): the share of checked eval prompts whose greedy answer ended on
    # EOS / end-of-turn within eos_limit new tokens; None (and 0 checked) when there was nothing to check.
    eos_share: float | None = None
    eos_checked: int = 0
    eos_limit: int = 0
    # training.before_after.report: {measure: {"before": x, "after": y}} on the eval split.
    before_after: dict[str, dict[str, float]] = field(default_factory=dict)


# TRL's preference metrics (DPOTrainer, ORPOTrainer) under the names the journal keeps: the implicit
# rewards of the chosen and rejected answers, their margin, and the share of pairs ranked right.
REWARD_KEYS: dict[str, str] = {
    "rewards/chosen": "chosen", "rewards/rejected": "rejected",
    "rewards/margins": "margin", "rewards/accuracies": "accuracy",
}


def reward_fields(logs: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The reward statistics in a trainer's log (``prefix`` "eval_" for an evaluation's), as journal keys."""
    return {name: float(logs[prefix + key]) for key, name in REWARD_KEYS.items() if prefix + key in logs}


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls for cls in (RunStarted, Step, Evaluation, ModelCheck, Checkpoint, Log, StateChanged,
                              RunFinished)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    cls = EVENT_TYPES[data["type"]]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
