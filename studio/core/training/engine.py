"""The training engine: ``train(cfg, emit=..., control=...)`` on transformers' Trainer + peft.

Qt-free and thread-agnostic: the GUI runs it in a QThread, the CLI in the main thread, and
``accelerate launch`` / ``torchrun`` in several processes (only rank 0 journals and emits). Every
event is written to the run's journal before the caller sees it. Stop and pause are flags read at
step boundaries, so they work from any thread without a queued call that a busy loop never runs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from studio.core.config import PREFERENCE_OBJECTIVES, RunConfig, with_absolute_paths
from studio.core.control import Control
from studio.core.datasets.fingerprint import dataset_fingerprint
from studio.core.errors import StudioError, describe_exception, is_disk_full
from studio.core.fsutil import atomic_dir, atomic_write_text
from studio.core.heavy_imports import ensure
from studio.core.library.adapter_files import ADAPTER_CONFIG, point_at_base, read_adapter
from studio.core.training import before_after, checkpoints, memory_watch, run_folder, runs, trackers
from studio.core.training.events import (
    Checkpoint,
    Evaluation,
    Event,
    Log,
    RunFinished,
    RunStarted,
    StateChanged,
    Step,
    reward_fields,
)
from studio.core.training.library_entry import register
from studio.core.training.model_setup import (
    apply_peft,
    count_params,
    load_model,
    lora_config,
    mixed_precision,
    pick_device,
    precision_label,
    prepare_base,
    quant_label,
)
from studio.core.training.run_folder import TrainResult
from studio.core.training.warn_capture import warnings_to_log

Emit = Callable[[Event], None]


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def quiet_libraries() -> None:
    """Our events are the progress report; silence the libraries' own bars and a CPU-kernel notice
    from bitsandbytes that asks users to install a hub-downloading package we must not use."""
    import logging

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _default_run_dir(cfg: RunConfig) -> Path:
    """A new run folder; under a multi-process launcher every rank must agree on it without talking."""
    name = runs.run_name(cfg.name, list(cfg.dataset.train), cfg.model.path)
    launch_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if launch_id and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from studio.core import paths

        return paths.runs_dir() / f"{name}-{launch_id}"
    return runs.new_run_dir(name)


def train(
    cfg: RunConfig,
    *,
    run_dir: Path | None = None,
    emit: Emit | None = None,
    control: Control | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train per ``cfg``; journal to ``run_dir`` (new if None). ``resume`` continues ``run_dir``'s last checkpoint."""
    control = control or Control()
    is_main = _rank() == 0
    cfg = with_absolute_paths(cfg)  # the run's config.yaml must mean the same files from any folder
    if resume:
        if run_dir is None:
            raise StudioError("Resuming needs the run folder.")
        run_dir = Path(run_dir).absolute()
        if not (run_dir / runs.EVENTS_FILE).is_file():
            raise StudioError("This folder holds no run to resume (it has no events.jsonl). Pick a run folder.",
                              path=run_dir)
    else:
        run_dir = (Path(run_dir) if run_dir else _default_run_dir(cfg)).absolute()
        run_dir.mkdir(parents=True, exist_ok=True)
    if is_main:
        runs.claim(run_dir)  # before anything is written: a folder a live run is writing is refused
    try:
        done = run_folder.check_run_folder(run_dir, resume, is_main)
        resume_from, notes = run_folder.resume_checkpoint(run_dir) if resume and done is None else (None, [])
    except BaseException:
        if is_main:
            runs.release(run_dir)
        raise
    if done is not None:  # nothing to train; the journal of a finished run stays as it was
        if is_main:
            runs.release(run_dir)
            if emit is not None:
                emit(Log(level="info", message=done.reason))
        return done
    journal = runs.Journal(run_dir) if is_main else None
    started = time.time()

    def send(ev: Event) -> None:
        if journal is not None:
            journal.append(ev)
        if emit is not None and is_main:
            emit(ev)

    # How far the run got; _train keeps it current so a failure reports the real step, loss and peak.
    progress: dict = {"step": 0, "loss": None, "eval": None, "peak": 0}

    def send_failure(reason: str) -> None:
        ev = RunFinished(status="failed", reason=reason, step=progress["step"], train_loss=progress["loss"],
                         eval_loss=progress["eval"], duration_s=time.time() - started,
                         peak_memory_bytes=progress["peak"], measured_phase_bytes=dict(progress.get("phases") or {}))
        try:
            send(ev)
        except OSError:  # a journal the full disk refuses: the caller must still hear why the run ended
            if emit is not None and is_main:
                emit(ev)

    try:
        if is_main:
            if not resume:
                atomic_write_text(run_dir / runs.CONFIG_FILE, cfg.to_yaml())
            for note in notes:
                send(Log(level="warning", message=note))
        return _train(cfg, run_dir, send, control, resume, started, resume_from=resume_from, progress=progress)
    except StudioError as err:
        send_failure(err.user_text())
        raise
    except Exception as err:
        if not is_disk_full(err, run_dir):
            send_failure(describe_exception(err)[0])
            raise
        full = run_folder.disk_full_error(run_dir, progress["step"], err)
        send_failure(full.user_text())
        raise full from None
    except BaseException as err:
        send_failure(describe_exception(err)[0])
        raise
    finally:
        try:
            if journal is not None:
                journal.close()
        finally:
            if is_main:
                runs.release(run_dir)


def _train(cfg: RunConfig, run_dir: Path, send: Emit, control: Control, resume: bool, started: float,
           *, resume_from: Path | None = None, progress: dict | None = None) -> TrainResult:
    send(StateChanged(state="loading", detail="Loading model and tokenizer"))
    quiet_libraries()
    ensure("training")
    import torch
    from transformers import PrinterCallback, TrainerCallback, TrainingArguments, set_seed

    from studio.core.training.arguments import trainer_arguments
    from studio.core.training.hf_trainer import StudioTrainer, halt_without_saving

    set_seed(cfg.training.seed)
    device, dtype_name = pick_device(cfg)
    memory_watch.reset_peak(device)
    meter = memory_watch.PhaseMeter(device)
    start_rss = memory_watch.current_rss_bytes() if device != "cuda" else 0
    use_trackers, note = trackers.resolve(list(cfg.training.report_to))
    if note:
        send(Log(level="warning", message=note))
    base_id = run_folder.base_identity_for_run(cfg, run_dir, resume) if _rank() == 0 else ""
    model, tokenizer = load_model(cfg, device, dtype_name)

    from studio.core.training.data import PadCollator, build_features
    from studio.core.training.pair_data import build_pair_features

    prefer = cfg.objective in PREFERENCE_OBJECTIVES
    send(StateChanged(state="loading", detail="Rendering dataset with the chat template"))
    build = build_pair_features if prefer else build_features
    feats = build(cfg, tokenizer, log=lambda m: send(Log(level="warning", message=m)))
    # Estimated from the rows this run batches (the widest batch, not rows at max_seq_len).
    lengths = feats.row_lengths() if prefer else [len(f["input_ids"]) for f in feats.train]
    run_est, note = memory_watch.estimate_run(cfg, device, lengths, start_rss)
    if note:
        send(Log(level="warning", message=note))
    model.register_forward_hook(meter.forward_end)
    parent_id, peft_config = "", None
    if prefer:  # TRL wraps the base itself, so its reference is the base with the adapter off
        from studio.core.training import preference

        model = prepare_base(cfg, model)
        started_from, parent_id = preference.start_adapter(cfg, model)
        model, peft_config = (started_from, None) if started_from is not None else (model, lora_config(cfg, model))
    else:
        model = apply_peft(cfg, model)
    trainable, total = count_params(model)
    collator = PadCollator(tokenizer.pad_token_id)

    t = cfg.training
    has_eval = bool(feats.eval)
    stop_feats = feats.stop_check_view() if prefer else feats
    eval_on = has_eval and t.eval_steps > 0
    save_on = t.save_steps > 0
    # Keeping the best checkpoint needs evaluation and saving on the same grid.
    keep_best = eval_on and save_on and t.save_steps % t.eval_steps == 0
    if t.early_stopping_patience and not keep_best:
        raise StudioError(
            "Early stopping needs an eval set, eval steps > 0, and save steps a multiple of eval steps."
        )
    amp = mixed_precision(device, dtype_name, cfg.method)
    fp16 = amp == "fp16"
    arguments = trainer_arguments(cfg, run_dir, device, amp, eval_on=eval_on, save_on=save_on, keep_best=keep_best)

    # Shared with train() (``progress``): step, loss, eval and peak are what a failure reports.
    state: dict = progress if progress is not None else {}
    state.update({"t_last": time.time(), "tok_last": 0, "step": 0, "peak": 0, "loss": None, "eval": None,
                  "nan": None, "bad_grad": None, "eval_step": -1, "base_identity": base_id,
                  "has_eval": bool(feats.eval), "eval_every": t.eval_steps if feats.eval else 0,
                  "phases": meter.peaks, "parent_id": parent_id, "rewards": {}})

    def bad_grad_norm(step: int, norm: float) -> None:
        state["bad_grad"] = (step, norm)

    class Bridge(TrainerCallback):
        def on_train_begin(self, args, tstate, tcontrol, **kw):
            send(RunStarted(
                run_id=run_dir.name, run_dir=str(run_dir), model=cfg.model.path, dataset=list(cfg.dataset.train),
                dataset_fingerprint=dataset_fingerprint(cfg.dataset.train, cfg.dataset.eval),
                method=cfg.method, objective=cfg.objective, device=device_label,
                total_steps=tstate.max_steps, train_rows=len(feats.train), eval_rows=len(feats.eval),
                trainable_params=trainable, total_params=total, resumed_from_step=tstate.global_step,
                estimated_peak_bytes=run_est.peak_bytes if run_est else 0,
                estimated_phase_bytes=dict(run_est.phase_bytes) if run_est else {},
                process_start_bytes=start_rss,
                memory_budget_bytes=run_est.budget_bytes if run_est else 0,
                precision=precision_label(device, dtype_name, cfg.method, quant=quant_label(cfg, device)),
                trackers=list(use_trackers),
                base_identity=base_id,
            ))
            send(StateChanged(state="training"))
            self.rebase()

        def rebase(self) -> None:
            """Start the next tokens/s interval now: a pause or an eval (whose batches the collator also
            counts) between two steps is not training time."""
            state["t_last"] = time.time()
            state["tok_last"] = collator.tokens_seen * max(1, int(os.environ.get("WORLD_SIZE", "1")))

        def on_step_begin(self, args, tstate, tcontrol, **kw):
            meter.step_begin()

        def on_pre_optimizer_step(self, args, tstate, tcontrol, **kw):
            meter.backward_end()

        def on_optimizer_step(self, args, tstate, tcontrol, **kw):
            meter.optimizer_end()

        def on_log(self, args, tstate, tcontrol, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs:
                return
            now = time.time()
            toks = collator.tokens_seen * max(1, int(os.environ.get("WORLD_SIZE", "1")))
            rate = (toks - state["tok_last"]) / max(1e-6, now - state["t_last"])
            state["t_last"], state["tok_last"] = now, toks
            mem = meter.peak()
            state["peak"] = max(state["peak"], mem)
            loss = float(logs["loss"])
            state["loss"], state["step"] = loss, tstate.global_step
            gn = logs.get("grad_norm")
            send(Step(step=tstate.global_step, total_steps=tstate.max_steps, epoch=float(tstate.epoch or 0.0),
                      loss=loss, lr=float(logs.get("learning_rate", 0.0)),
                      grad_norm=None if gn is None else float(gn), tokens_per_s=rate, tokens_seen=toks, memory_bytes=mem,
                      rewards=reward_fields(logs)))
            if not math.isfinite(loss) or state["bad_grad"]:
                state["nan"] = run_folder.divergence_message(loss, state["bad_grad"], tstate.global_step, cfg, fp16, run_dir)
                halt_without_saving(tcontrol)
                return
            if control.paused and not control.stop_requested:
                # Hold here, after this step's loss is out and before its eval/save, so the curve
                # shows the step the run is paused at and a stop from pause still checkpoints it.
                send(StateChanged(state="paused", detail=f"Paused at step {tstate.global_step}"))
                control.wait_while_paused()
                if not control.stop_requested:
                    send(StateChanged(state="training", detail="Resumed"))
                    self.rebase()
            if control.stop_requested:  # requested while this step ran: save this step, not the next
                tcontrol.should_training_stop = True
                tcontrol.should_save = True

        def on_evaluate(self, args, tstate, tcontrol, metrics=None, **kw):
            if metrics and "eval_loss" in metrics:
                loss = float(metrics["eval_loss"])
                state["eval"], state["eval_step"] = loss, tstate.global_step
                state["rewards"] = reward_fields(metrics, "eval_")
                send(Evaluation(step=tstate.global_step, eval_loss=loss, rewards=state["rewards"],
                                perplexity=math.nan if prefer else math.exp(min(loss, 50.0))))
            self.rebase()

        def on_save(self, args, tstate, tcontrol, **kw):
            path = Path(args.output_dir) / f"checkpoint-{tstate.global_step}"
            send(Checkpoint(step=tstate.global_step, path=str(path)))

        def on_step_end(self, args, tstate, tcontrol, **kw):
            state["step"] = tstate.global_step
            if state["bad_grad"]:
                # The step changed nothing (its gradients were dropped); log it so on_log names it,
                # then end here, before an eval or a checkpoint of a run that has diverged.
                halt_without_saving(tcontrol)
                tcontrol.should_log = True
                return
            if control.paused:
                tcontrol.should_log = True  # the pause waits in on_log, which must run this step
            if control.stop_requested:
                # A stop always leaves a resumable checkpoint, even when periodic saving is off.
                tcontrol.should_training_stop = True
                tcontrol.should_save = True

    callbacks: list = [Bridge()]
    early = None
    if t.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        early = EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience)
        callbacks.append(early)
    callbacks += trackers.callbacks(use_trackers, run_dir)
    device_label = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    guard = None if fp16 else bad_grad_norm  # fp16's scaler skips overflowing steps itself
    if prefer:
        trainer, collator = preference.build_trainer(cfg, model, tokenizer, feats, arguments, callbacks,
                                                     peft_config, guard)
        trainable, total = count_params(trainer.model)  # the adapter TRL made
    else:
        trainer = StudioTrainer(
            model=model, args=TrainingArguments(**arguments), data_collator=collator, train_dataset=feats.train,
            eval_dataset=feats.eval if has_eval else None, processing_class=tokenizer, callbacks=callbacks,
            on_bad_grad_norm=guard,
        )
    # Our events are the only progress output; the Trainer's own dict printer would duplicate them.
    trainer.remove_callback(PrinterCallback)
    at_end = False
    if resume_from is not None:
        send(Log(level="info", message=f"Resuming from {resume_from.name}"))
        for ev in runs.read_events(run_dir):  # the adapter's last eval so far, if a stop comes before the next
            if ev.kind == "eval" and ev.step > 0:
                state["eval"], state["eval_step"], state["rewards"] = ev.eval_loss, ev.step, ev.rewards
        done_steps, planned = checkpoints.saved_step(resume_from)
        at_end = planned > 0 and done_steps >= planned
        if at_end:
            history = runs.summarize(run_dir)
            state["loss"], state["eval"] = history.train_loss, history.eval_loss

    try:
        if not resume and has_eval:
            # The base model's eval loss is the baseline every later point is judged against.
            send(StateChanged(state="evaluating", detail="Baseline eval loss before the first step"))
            trainer.evaluate()  # the Bridge journals it as the step-0 point
            before_after.guarded_check(send, 0, "before", trainer.model, tokenizer, cfg.model.path, stop_feats,
                                       pairs=feats.eval if prefer else None, should_stop=lambda: control.stop_requested)
        if at_end:
            run_folder.finish_without_training(trainer, resume_from, keep_best)
        else:
            with warnings_to_log(lambda m: send(Log(level="warning", message=m)),
                                 qlora_on_cpu=cfg.method == "qlora" and device == "cpu"):
                try:
                    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
                finally:
                    meter.close()
    except (torch.OutOfMemoryError, MemoryError) as err:
        state["peak"] = measured = max(state["peak"], meter.peak())
        raise StudioError(
            memory_watch.oom_message(cfg, device, run_est, measured, trainer.state.global_step + 1),
            detail=str(err),
        ) from None
    step = trainer.state.global_step
    state["peak"] = max(state["peak"], meter.peak())
    if state["nan"]:
        send(RunFinished(status="failed", reason=state["nan"], step=step, train_loss=state["loss"],
                         eval_loss=state["eval"], duration_s=time.time() - started, peak_memory_bytes=state["peak"],
                         measured_phase_bytes=dict(meter.peaks)))
        return TrainResult("failed", state["nan"], run_dir, None, step, state["loss"], state["eval"])

    if has_eval and not keep_best and not control.stop_requested and state["eval_step"] != trainer.state.global_step:
        # A final point so the eval curve ends where training ended; with eval_steps 0 it is the only
        # one after the baseline ("only at start and end").
        trainer.evaluate()
    stopped = control.stop_requested
    early_stopped = bool(early and early.early_stopping_patience_counter >= early.early_stopping_patience)
    best_ckpt = trainer.state.best_model_checkpoint if keep_best else None
    best_loss = trainer.state.best_metric if keep_best else None
    after = {} if stopped or not trainer.is_world_process_zero() or not has_eval else before_after.guarded_check(
        send, step, "after", trainer.model, tokenizer, cfg.model.path, stop_feats,
        pairs=feats.eval if prefer else None, should_stop=lambda: control.stop_requested)
    state["eos"] = {k: after[k] for k in ("eos_share", "eos_checked", "eos_limit") if k in after}
    state["before_after"] = {} if not trainer.is_world_process_zero() else before_after.run_report(
        run_dir, after, state["eval"] if state["eval_step"] > 0 else None, next_token_loss=not prefer)
    for line in before_after.warnings(state["before_after"], cfg.objective):
        send(Log(level="warning", message=line))
    send(StateChanged(state="saving", detail="Saving adapter" if cfg.method != "full" else "Saving model"))
    out_name = runs.ADAPTER_DIR if cfg.method != "full" else "model"
    adapter_dir = run_dir / out_name
    if trainer.is_world_process_zero():
        if cfg.method == "full":  # training turned the cache off; the saved model is for generating with
            trainer.model.config.use_cache = True
        with atomic_dir(adapter_dir, overwrite=True) as tmp:
            trainer.model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if (tmp / ADAPTER_CONFIG).is_file():  # a full fine-tune saves a model, not an adapter
                point_at_base(read_adapter(tmp), cfg.model.path)
    if stopped:
        reason = f"Stopped by you at step {step}; checkpoint saved, resume any time."
    elif early_stopped:
        reason = (f"Early stopping at step {step}: eval loss did not improve for "
                  f"{t.early_stopping_patience} evaluation(s).")
    else:
        reason = "Finished."
    best_step = int(Path(best_ckpt).name.rsplit("-", 1)[-1]) if best_ckpt else step
    if best_step != step:  # load_best_model_at_end swapped the last weights for the best ones
        kept = f"The adapter is the best checkpoint (step {best_step}, eval loss {best_loss:.4f})."
        reason += " " + kept
        send(Log(level="info", message=kept))
    status = "stopped" if stopped else "completed"
    library_id = ""
    if trainer.is_world_process_zero():
        library_id = register(cfg, run_dir, adapter_dir, state, step, send)
    send(RunFinished(status=status, reason=reason, step=step, adapter_path=str(adapter_dir), train_loss=state["loss"],
                     eval_loss=state["eval"], duration_s=time.time() - started, peak_memory_bytes=state["peak"],
                     measured_phase_bytes=dict(meter.peaks), library_id=library_id, best_checkpoint=str(best_ckpt or ""), best_eval_loss=best_loss,
                     early_stopped=early_stopped, before_after=state["before_after"], **state["eos"]))
    return TrainResult(status, reason, run_dir, adapter_dir, step, state["loss"], state["eval"], library_id)
