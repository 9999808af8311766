"""Train: start, pause, resume and stop a run; watch its loss stream in.

The pane only listens: the engine's events arrive as a signal, go into curve buffers, and the
plots redraw on their own timer. Progress text is updated from the same events, and a one-second
tick keeps the elapsed time moving between steps.

The run is a task like every other background job: the engine's events come back as the task's
partial results (relayed to the GUI thread, dropped once the pane is gone), its failure as the
exception, and Pause/Stop set the task's ``Control``, which the engine reads at step boundaries.
"""

from __future__ import annotations

import html
import math
import time
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QMessageBox,
    QWidget,
)

from studio.core.config import RunConfig
from studio.core.errors import describe_exception
from studio.core.formatting import (
    format_bytes_in,
    format_duration,
    method_label,
    rewards_text,
    run_method_label,
)
from studio.core.training.before_after import report_lines
from studio.core.training.events import Event
from studio.core.training.memory_watch import phase_summary
from studio.core.training.stop_check import summary_line as stop_summary
from studio.qt.panes.train.layout import TRACKER_LABELS, TrainLayout
from studio.qt.state import AppState
from studio.qt.style import TONE
from studio.qt.workers.task import Task, TaskRunner, TaskSlot, TaskState


def _dataset_problem(cfg) -> str:
    """Why this config's training data cannot be trained on, in words for the Train button ('' if it can)."""
    from studio.core.datasets.load import file_problem

    if not cfg.dataset.train:
        return "Choose a training dataset first (Dataset pane)."
    for path in [*cfg.dataset.train, *cfg.dataset.eval]:
        problem = file_problem(path)
        if problem is not None:
            return f"{Path(path).name}: {problem.message}"
    return ""


class TrainPane(TrainLayout, QWidget):
    run_finished = Signal(object)   # RunFinished event
    run_failed = Signal(str)        # the worker raised: the message shown in the dialog
    attention_needed = Signal(str)  # a warning the run logged (desktop notification while away)
    running_changed = Signal(bool)

    def __init__(self, state: AppState, tasks: TaskRunner | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._run_slot = TaskSlot(tasks or TaskRunner(self), self)
        self._started = 0.0
        self._total = 0
        self._step = 0
        self._epoch = 0.0
        self._rate_origin: tuple[float, int] | None = None  # (time, step) of the first step of this session
        self._paused_since = 0.0
        self._paused_total = 0.0
        self.model_ready = False
        self._run_cfg = None       # the config the running run was started with
        self._phase_estimate: dict[str, int] = {}  # run_started's estimate per phase, for the end-of-run line
        self._data_problem = ""    # why the configured dataset cannot be trained on ('' when it can)

        self._build_controls()
        self._build_views()

        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._refresh_progress)

        state.config_changed.connect(self._on_config_changed)
        self._on_config_changed(state.config)

    # -- config -----------------------------------------------------------------------------------
    def _on_config_changed(self, cfg) -> None:
        self._data_problem = _dataset_problem(cfg)
        running = self._run_cfg is not None and self.is_running()
        self._show_summary(self._run_cfg if running else cfg, changed=running and cfg != self._run_cfg)
        if not running and not self.loss_plot.count("train"):  # a finished run's curves stay as drawn
            self._show_objective_plots(cfg.objective)
        for name, box in self.tracker_boxes.items():
            box.blockSignals(True)
            box.setChecked(name in cfg.training.report_to)
            box.blockSignals(False)
        self._sync_buttons()

    def _show_summary(self, cfg, changed: bool = False) -> None:
        """The header names what trains: the running run's model and data while it runs (the Dataset
        pane may have moved on to another file), the next run's otherwise."""
        model = Path(cfg.model.path).name or "no model"
        data = ", ".join(Path(p).name for p in cfg.dataset.train) or "no dataset"
        steps = f"{cfg.training.max_steps} steps" if cfg.training.max_steps > 0 else f"{cfg.training.epochs:g} epochs"
        method = method_label(cfg.method)
        if cfg.objective != "sft":
            method = f"{cfg.objective.upper()} (β {cfg.preference.beta:g}) on {method}"
        rank = f" r={cfg.lora.r}" if cfg.method != "full" else ""
        extras = [x for x, on in (("DoRA", cfg.lora.use_dora), ("rsLoRA", cfg.lora.use_rslora)) if on]
        if cfg.method != "full" and extras:
            rank += " " + "+".join(extras)
        stop = (f", early stop after {cfg.training.early_stopping_patience} flat evals"
                if cfg.training.early_stopping_patience else "")
        text = (f"<b>{model}</b> on <b>{data}</b> — {method}{rank}, lr {cfg.training.lr:g}, "
                f"batch {cfg.training.batch_size}, {steps}, max {cfg.training.max_seq_len} tokens{stop}")
        if changed:
            text += f"<br><span style='color:{TONE.quiet}'>Changes made since it started apply to the next run.</span>"
        elif self._data_problem and self._run_cfg is None:
            text += f"<br><span style='color:{TONE.error}'>⚠ {html.escape(self._data_problem)}</span>"
        self.summary.setText(text)

    def _on_tracker_toggled(self) -> None:
        chosen = [n for n, b in self.tracker_boxes.items() if b.isChecked()]
        if chosen != list(self.state.config.training.report_to):
            self.state.update(**{"training.report_to": chosen})

    def set_model_ready(self, ready: bool) -> None:
        self.model_ready = ready
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        running = self.is_running()
        self.train_button.setEnabled(self.model_ready and not running and not self._data_problem)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        for name, box in self.tracker_boxes.items():
            box.setEnabled(not running and name in self._installed_trackers)
        if not self.model_ready and not running:
            self.train_button.setToolTip("Waiting for the base model to be prepared")
        elif self._data_problem and not running:
            self.train_button.setToolTip(self._data_problem)
        else:
            self.train_button.setToolTip("Start a fine-tune with the current dataset and configuration")

    # -- actions ----------------------------------------------------------------------------------
    @property
    def task(self) -> Task | None:
        """The task of the run started last (None before the first)."""
        return self._run_slot.task

    def is_running(self) -> bool:
        return self._run_slot.is_running()

    def start_training(self, run_dir: Path | None = None, resume: bool = False, cfg: RunConfig | None = None) -> None:
        """Train ``cfg`` (the current config when None) into a new run folder, or continue ``run_dir``."""
        if self.is_running():
            return
        if not resume:
            self._data_problem = _dataset_problem(self.state.config)  # the file may have changed since
            if self._data_problem:
                self._on_config_changed(self.state.config)
                return
        cfg = cfg or self.state.config
        self._run_cfg = cfg
        self._show_summary(self._run_cfg)
        self._show_objective_plots(cfg.objective)
        for plot in self.plots:
            plot.clear_data()
        self.memory_plot.set_reference("estimate", None)
        self.before_after.reset(next_token_loss=cfg.objective == "sft")
        self.log.clear()
        self.status.clear()
        if resume and run_dir is not None:
            self._replay(run_dir)
        self._append_log("Resuming…" if resume else "Starting…")
        self.progress.setRange(0, 0)
        self.progress.setFormat("Loading model…")
        self._started = time.time()
        self._rate_origin = None
        self._paused_since = self._paused_total = 0.0
        self._step, self._epoch = 0, 0.0
        self._tick.start()

        def work(task: TaskState):
            from studio.core.training.engine import train

            return train(cfg, run_dir=run_dir, emit=task.partial, control=task.control, resume=resume)

        self._run_slot.start(work, on_partial=self._on_event, on_error=self._on_failed,
                             on_finished=self._on_thread_finished)
        self.pause_button.setText("Pause")
        self._sync_buttons()
        self.running_changed.emit(True)

    def _write_launch(self) -> None:
        from studio.core import paths
        from studio.qt.dialogs.launch_dialog import LaunchDialog

        LaunchDialog(self.state.config, paths.data_home() / "launch" / (self.state.config.name or "run"), self).open()

    def resume_run(self, summary) -> None:
        """Continue an interrupted/stopped run with the config it was started with, read from its
        own folder; the user's current config (what the next new run trains) is left as it is."""
        from studio.core.config import load_config
        from studio.core.training.runs import CONFIG_FILE

        if self.is_running():
            return
        run_dir = Path(summary.run_dir)
        cfg = load_config(run_dir / CONFIG_FILE)
        self.tabs.setCurrentIndex(0)
        self.start_training(run_dir=run_dir, resume=True, cfg=cfg)

    def _replay(self, run_dir: Path) -> None:
        """Draw the journaled part of a run up to the checkpoint it resumes from, so the resumed
        curve continues it (points after that checkpoint are about to be trained again)."""
        from studio.core.training.runs import effective_events, last_checkpoint, read_events

        ckpt = last_checkpoint(run_dir)
        upto = int(ckpt.name.rsplit("-", 1)[-1]) if ckpt else 0
        for ev in effective_events(read_events(run_dir)):
            if ev.kind in ("step", "eval") and ev.step <= upto:
                self._plot_event(ev)
            self.before_after.take(ev)

    def stop_training(self) -> None:
        if self.is_running():
            self.task.request_stop()
            self.stop_button.setEnabled(False)
            self.pause_button.setEnabled(False)
            self._append_log("Stopping after the current step…")
            self.progress.setFormat("Stopping after the current step…")

    def _on_pause_clicked(self) -> None:
        if not self.is_running():
            return
        control = self.task.control
        if control.paused:
            control.resume()
            self.pause_button.setText("Pause")
            self.pause_button.setToolTip("Hold training after the current step; nothing is lost")
            self._append_log("Resuming…")
        else:
            control.pause()
            self.pause_button.setText("Resume")
            self.pause_button.setToolTip("Continue training from where it was held")
            self._append_log("Pausing after the current step…")

    def wait_for_worker(self, ms: int = 120000) -> bool:
        return self.task is None or self.task.wait(ms)

    # -- events -----------------------------------------------------------------------------------
    def _append_log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def _plot_event(self, ev: Event) -> None:
        if ev.kind in ("step", "eval"):
            self._plot_rewards(ev)
        if ev.kind == "step":
            self.loss_plot.add("train", ev.step, ev.loss)
            self.lr_plot.add("lr", ev.step, ev.lr)
            self.speed_plot.add("tokens/s", ev.step, ev.tokens_per_s)
            self.memory_plot.add("measured", ev.step, ev.memory_bytes / 2**30)
        elif ev.kind == "eval":
            self.loss_plot.add("eval", ev.step, ev.eval_loss)
        elif ev.kind == "run_started" and ev.estimated_peak_bytes:
            self.memory_plot.set_reference("estimate", ev.estimated_peak_bytes / 2**30)

    def _refresh_progress(self) -> None:
        """Progress-bar text: step, epoch, elapsed and ETA (from the step rate of this session, pauses excluded)."""
        if not self.is_running() or self._rate_origin is None:
            return
        now = time.time()
        paused = self._paused_total + (now - self._paused_since if self._paused_since else 0.0)
        elapsed = now - self._started - paused
        t0, s0 = self._rate_origin
        done = self._step - s0
        eta = "—"
        if done > 0 and self._total > self._step:
            per_step = max(1e-9, (self._paused_since or now) - t0 - self._paused_total) / done
            eta = format_duration(per_step * (self._total - self._step))
        elif self._total and self._step >= self._total:
            eta = "0:00"
        head = f"Paused at step {self._step}/{self._total}" if self._paused_since else f"step {self._step}/{self._total}"
        self.progress.setFormat(f"{head} · epoch {self._epoch:.2f} · elapsed {format_duration(elapsed)} · ETA {eta}")

    def _on_event(self, ev: Event) -> None:
        kind = ev.kind
        self.before_after.take(ev)
        if kind == "run_started":
            self._total, self._step = ev.total_steps, ev.resumed_from_step
            self._plot_event(ev)
            self.runs_view.refresh()
            self.progress.setRange(0, max(1, ev.total_steps))
            self.progress.setValue(ev.resumed_from_step)
            self._append_log(
                f"{run_method_label(ev.method, ev.objective)} on {ev.device} ({ev.precision or 'default precision'}): "
                f"{ev.trainable_params:,} trainable of {ev.total_params:,} parameters "
                f"({100 * ev.trainable_params / max(1, ev.total_params):.2f} %); {ev.train_rows} train / "
                f"{ev.eval_rows} eval rows; {ev.total_steps} steps. Run folder: {ev.run_dir}"
            )
            self._phase_estimate = dict(ev.estimated_phase_bytes)
            if ev.estimated_peak_bytes:
                self._append_log(f"memory: estimated peak {format_bytes_in(ev.estimated_peak_bytes)} of "
                                 f"{format_bytes_in(ev.memory_budget_bytes, digits=1)}")
            if ev.trackers:
                self._append_log("also logging to " + ", ".join(TRACKER_LABELS.get(t, t) for t in ev.trackers))
            self._rate_origin = (time.time(), ev.resumed_from_step)
        elif kind == "step":
            self._plot_event(ev)
            self._step, self._epoch, self._total = ev.step, ev.epoch, ev.total_steps
            self.progress.setMaximum(max(1, ev.total_steps))
            self.progress.setValue(ev.step)
            if self._rate_origin is None:
                self._rate_origin = (time.time(), ev.step - 1)
            mem = f" · memory {format_bytes_in(ev.memory_bytes)}" if ev.memory_bytes else ""
            self.status.setText(
                f"loss {ev.loss:.4f} · lr {ev.lr:.2e} · {ev.tokens_per_s:,.0f} tokens/s{mem}"
                + ("" if ev.grad_norm is None or not math.isfinite(ev.grad_norm) else f" · grad norm {ev.grad_norm:.3f}")
                + (f" · preference accuracy {ev.rewards['accuracy']:.0%} · margin {ev.rewards['margin']:+.3f}"
                   if {"accuracy", "margin"} <= ev.rewards.keys() else "")
            )
            self._refresh_progress()
        elif kind == "eval":
            self._plot_event(ev)
            label = "baseline (before training)" if ev.step == 0 else f"step {ev.step}"
            tail = rewards_text(ev.rewards) if ev.rewards else f"perplexity {ev.perplexity:.2f}"
            self._append_log(f"eval loss {ev.eval_loss:.4f} ({tail}) at {label}")
        elif kind == "checkpoint":
            self._append_log(f"checkpoint written at step {ev.step}")
        elif kind == "state":
            if ev.state == "paused":
                self._paused_since = time.time()
                self._refresh_progress()
            elif ev.state == "training" and self._paused_since:
                self._paused_total += time.time() - self._paused_since
                self._paused_since = 0.0
            elif ev.state in ("loading", "evaluating", "saving"):
                self.progress.setFormat(ev.detail or ev.state)
            self._append_log(ev.detail or ev.state)
        elif kind == "log":
            self._append_log(f"{ev.level}: {ev.message}")
            if ev.level in ("warning", "error"):
                self.attention_needed.emit(ev.message)
        elif kind == "run_finished":
            self._tick.stop()
            self.progress.setRange(0, max(1, self._total))
            self.progress.setValue(ev.step)
            took = format_duration(time.time() - self._started - self._paused_total)
            self.progress.setFormat(f"{ev.status.capitalize()} at step {ev.step}/{self._total} · took {took}")
            self._append_log(f"{ev.status}: {ev.reason}")
            if ev.adapter_path:
                self._append_log(f"adapter saved: {ev.adapter_path}")
            for line in (phase_summary(self._phase_estimate, ev.measured_phase_bytes),
                         stop_summary(ev.eos_share, ev.eos_checked, ev.eos_limit), *report_lines(ev.before_after)):
                if line:
                    self._append_log(line)
            self.runs_view.refresh()
            self.run_finished.emit(ev)

    def _on_failed(self, exc: BaseException) -> None:
        message, detail = describe_exception(exc)
        self._tick.stop()
        self._append_log(f"failed: {message}")
        self.run_failed.emit(message)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Failed")
        box = QMessageBox(QMessageBox.Icon.Warning, "Training failed", message, QMessageBox.StandardButton.Ok, self)
        box.setDetailedText(detail)
        box.open()

    def _on_thread_finished(self) -> None:
        self._tick.stop()
        self._run_cfg = None
        self._on_config_changed(self.state.config)
        self.pause_button.setText("Pause")
        self.running_changed.emit(False)
