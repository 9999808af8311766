"""The Trainer's arguments for a run: one mapping from the run config, shared by every objective.

Supervised runs build ``TrainingArguments`` from it and preference runs TRL's ``DPOConfig`` /
``ORPOConfig`` (subclasses of it), so logging, evaluation, checkpoints, best-checkpoint keeping and
precision are the same whichever loss trains. Imported by the engine after the ML stack is loaded.
"""

from __future__ import annotations

from pathlib import Path

from studio.core.config import PREFERENCE_OBJECTIVES, RunConfig
from studio.core.training import runs

OPTIMIZERS = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "paged_adamw_8bit": "paged_adamw_8bit"}


def trainer_arguments(cfg: RunConfig, run_dir: Path, device: str, amp: str, *, eval_on: bool, save_on: bool,
                      keep_best: bool) -> dict:
    """Keyword arguments of ``TrainingArguments`` (and the TRL configs built on it) for ``cfg``."""
    t = cfg.training
    return dict(
        output_dir=str(run_dir / runs.CHECKPOINTS_DIR),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.scheduler,
        weight_decay=t.weight_decay,
        optim=OPTIMIZERS[t.optimizer],
        max_grad_norm=t.max_grad_norm if t.max_grad_norm > 0 else 1e9,
        **checkpointing_args(t.grad_checkpointing),
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # a NaN must reach us, not be averaged away
        eval_strategy="steps" if eval_on else "no",
        eval_steps=t.eval_steps if eval_on else None,
        save_strategy="steps" if save_on else "no",
        save_steps=t.save_steps if save_on else 500,
        save_total_limit=2,
        load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss" if keep_best else None,
        greater_is_better=False if keep_best else None,
        seed=t.seed,
        data_seed=t.seed,
        use_cpu=device == "cpu",
        bf16=amp == "bf16",
        fp16=amp == "fp16",
        report_to="none",  # trackers are added as callbacks, writing into the run folder
        run_name=run_dir.name,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # Length grouping needs each row's input_ids; a preference row holds a prompt and two answers.
        train_sampling_strategy="random" if cfg.objective in PREFERENCE_OBJECTIVES else "group_by_length",
        ddp_find_unused_parameters=False,
    )


def checkpointing_args(on: bool) -> dict:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing; speak whichever it knows.

    When off, it says so: TRL's configs turn checkpointing on by default, the studio leaves it to the user."""
    import inspect

    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments.__init__).parameters
    key = "activation_checkpointing" if "activation_checkpointing" in params else "gradient_checkpointing"
    if not on:
        return {key: False}
    return {key: True, f"{key}_kwargs": {"use_reentrant": False}}
