"""A run folder's life around the training loop: who may write it, what a resume starts from, and
what a failure leaves behind.

Kept beside the engine (which runs the loop) so each rule has one home: a new run never writes into
a folder that holds one, a completed run is not trained again, a resume starts from the newest intact
checkpoint on the base it started on, and a full disk or a diverged run says what is left to resume.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from studio.core.config import RunConfig
from studio.core.errors import StudioError
from studio.core.models.folder import has_config
from studio.core.training import checkpoints, runs


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


@dataclass
class TrainResult:
    status: str
    reason: str
    run_dir: Path
    adapter_dir: Path | None
    step: int
    train_loss: float | None
    eval_loss: float | None
    library_id: str = ""


def check_run_folder(run_dir: Path, resume: bool, is_main: bool) -> TrainResult | None:
    """Refuse a new run into a folder that already holds one (two histories in one journal, the old
    checkpoints taken for the new run's); for a resume of a completed run, the result it already has:
    resuming it would train past its last step and add the adapter to the library a second time."""
    if not resume:
        if is_main and (run_dir / runs.EVENTS_FILE).exists():
            raise StudioError(
                "This folder already holds a training run. Resume it (studio train --resume FOLDER, or Resume "
                "in the Runs list), or train into a new folder.",
                path=run_dir,
            )
        return None
    events = runs.read_events(run_dir)
    summary = runs.summarize(run_dir, events)
    if summary.status != "completed":
        return None
    library_id = next((ev.library_id for ev in reversed(events) if ev.kind == "run_finished"), "")
    return TrainResult(
        "completed", f"This run already completed at step {summary.step}; there is nothing to resume. "
        "Start a new run to train further.", run_dir, Path(summary.adapter_path) if summary.adapter_path else None,
        summary.step, summary.train_loss, summary.eval_loss, library_id,
    )


def resume_checkpoint(run_dir: Path) -> tuple[Path, list[str]]:
    """The newest intact checkpoint, and what to tell the user about newer damaged ones, which are
    renamed out of the way (kept, not deleted) so the Trainer does not count or trip over them."""
    ckpt, skipped = checkpoints.newest_intact(run_dir / runs.CHECKPOINTS_DIR)
    if ckpt is None:
        if skipped:
            listed = "; ".join(f"{p.name}: {why}" for p, why in skipped)
            raise StudioError(f"No checkpoint of this run can be resumed from ({listed}). Start the run again instead.",
                              path=run_dir)
        raise StudioError("This run has no finished checkpoint to resume from; start it again instead.", path=run_dir)
    notes = []
    for path, why in skipped:
        moved = checkpoints.set_aside(path) if _rank() == 0 else path
        notes.append(f"{path.name} cannot be resumed from ({why}); kept it as {moved.name} and resuming from "
                     f"{ckpt.name}, the newest intact checkpoint.")
    return ckpt, notes


def finish_without_training(trainer, ckpt: Path, keep_best: bool) -> None:
    """Load a checkpoint that already reached the planned last step (a run killed while saving its
    adapter) instead of training from it: the Trainer would run one more step past the end."""
    from transformers import TrainerState

    trainer._load_from_checkpoint(str(ckpt))
    trainer.state = TrainerState.load_from_json(str(ckpt / checkpoints.STATE_FILE))
    best = trainer.state.best_model_checkpoint
    if keep_best and best and Path(best).is_dir() and Path(best) != ckpt:
        trainer._load_from_checkpoint(best)


def base_identity_for_run(cfg: RunConfig, run_dir: Path, resume: bool) -> str:
    """The base's identity, journaled with RunStarted; a resume refuses a base that changed since the
    run started, because its checkpoints are deltas for the weights it started on."""
    from studio.core.models.identity import base_identity, require_unchanged

    path = Path(cfg.model.path)
    if not has_config(path):
        return ""  # _load_model says what is wrong with the folder
    if resume:
        recorded = next((ev.base_identity for ev in runs.read_events(run_dir)
                         if ev.kind == "run_started" and getattr(ev, "base_identity", "")), "")
        require_unchanged(recorded, path, since="this run started",
                          remedy="restore it or start a new run.")
    return base_identity(path)


def disk_full_error(run_dir: Path, step: int, err: BaseException) -> StudioError:
    """The run's disk filled up: drop the checkpoint that was being written when it did (it cannot be
    resumed from and holds space the user needs back) and say what is left to resume from."""
    import shutil

    ckpt_root = run_dir / runs.CHECKPOINTS_DIR
    partial = ckpt_root / f"{checkpoints.PREFIX}{step}"
    if partial.is_dir() and checkpoints.problem(partial) is not None:
        shutil.rmtree(partial, ignore_errors=True)
    last = runs.last_checkpoint(run_dir)
    keep = (f"The last complete checkpoint ({last.name}) is intact: free some space, then resume the run."
            if last else "No checkpoint was complete yet: free some space, then start the run again.")
    return StudioError(f"The disk is full: the run stopped at step {step}. {keep}", path=run_dir, detail=str(err))


def divergence_message(loss: float, bad_grad: tuple[int, float] | None, step: int, cfg: RunConfig, fp16: bool,
                        run_dir: Path) -> str:
    """Why a diverged run failed, at which step, what to change, and what it leaves to resume from."""
    if not math.isfinite(loss):
        what = f"Loss became {loss} at step {step}"
    else:
        bad_step, norm = bad_grad if bad_grad else (step, float("nan"))
        what = f"The gradients became non-finite (norm {norm}) at step {bad_step}, so that step was not applied"
    if fp16:
        cause = "fp16 overflow: switch to bf16 or fp32"
    else:
        t = cfg.training
        alpha = f" or LoRA alpha ({cfg.lora.alpha:g})" if cfg.method != "full" else ""
        cause = (f"the learning rate ({t.lr:g}){alpha} is probably too high: try 10x lower"
                 + ("" if t.max_grad_norm > 0 else ", or turn gradient clipping on (max_grad_norm 1.0)"))
    last = runs.last_checkpoint(run_dir)
    kept = (f" The last good checkpoint, {last.name}, is kept; nothing was added to the library."
            if last else " No checkpoint was saved; nothing was added to the library.")
    return f"{what}; {cause}.{kept}"
