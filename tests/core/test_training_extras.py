"""Engine features around the core loop: memory estimate vs measurement, OOM advice, early stopping
with the best checkpoint kept, DoRA/rsLoRA, checkpoint-on-stop, optional trackers, run summaries."""

from __future__ import annotations

import json

import pytest

from studio.core.config import RunConfig, apply_overrides, config_from_dict
from studio.core.control import Control
from studio.core.errors import StudioError
from studio.core.training import runs, trackers
from studio.core.training.engine import train


def _cfg(model_dir, train_file, **over) -> RunConfig:
    base = {
        "model.path": str(model_dir),
        "dataset.train": [str(train_file)],
        "training.max_steps": 2,
        "training.batch_size": 2,
        "training.max_seq_len": 96,
        "training.eval_steps": 0,
        "training.save_steps": 0,
        "training.lr": 1e-3,
        "dataset.eval_ratio": 0.0,
    }
    base.update(over)
    return apply_overrides(RunConfig(), base)


def _events(run_dir, kind):
    return [e for e in runs.read_events(run_dir) if e.kind == kind]


def test_estimate_and_measured_memory_are_journaled(tiny_model_dir, demo_train, tmp_path):
    from studio.core.memory import count_lengths, estimate
    from studio.core.models.introspect import inspect_model

    run = tmp_path / "r"
    train(_cfg(tiny_model_dir, demo_train), run_dir=run)
    [started] = _events(run, "run_started")
    cfg = _cfg(tiny_model_dir, demo_train)
    # The run's widest batch, from the dataset check's token counts: what `studio estimate CONFIG` says.
    expected = estimate(inspect_model(tiny_model_dir), cfg, device_kind="cpu", lengths=count_lengths(cfg)).total_bytes
    assert expected < estimate(inspect_model(tiny_model_dir), cfg, device_kind="cpu").total_bytes
    # CPU: the resident-set scale; a process holding more than `studio train` at the start (this test
    # process does) carries that too.
    from studio.core.memory.constants import CPU_IMPORTS_RSS_BYTES

    assert started.process_start_bytes > 0
    expected += max(0, started.process_start_bytes - CPU_IMPORTS_RSS_BYTES)
    assert started.estimated_peak_bytes == expected
    assert started.memory_budget_bytes > expected
    assert started.precision == "float32 weights"
    steps = _events(run, "step")
    assert len(steps) == 2 and all(s.memory_bytes > 50 * 2**20 for s in steps)  # a real RSS, not a stub 0
    summary = runs.summarize(run)
    assert summary.estimated_peak_bytes == expected
    assert summary.peak_memory_bytes >= max(s.memory_bytes for s in steps)  # the last step may not be logged at its peak
    # Estimate vs measured per phase of a step: the estimator's three moments, each measured on its own.
    from studio.core.memory.constants import PHASES

    est = estimate(inspect_model(tiny_model_dir), cfg, device_kind="cpu", lengths=count_lengths(cfg))
    shift = max(0, started.process_start_bytes - CPU_IMPORTS_RSS_BYTES)
    assert started.estimated_phase_bytes == {k: v + shift for k, v in est.phases.items()}
    assert set(est.phases) == set(PHASES)
    [finished] = _events(run, "run_finished")
    measured = finished.measured_phase_bytes
    assert set(measured) == set(PHASES) and all(v > 50 * 2**20 for v in measured.values())
    assert finished.peak_memory_bytes >= max(measured.values())  # the resets between phases lose no peak


def test_estimator_failure_never_stops_training(tiny_model_dir, demo_train, tmp_path, monkeypatch):
    import studio.core.models.introspect as introspect

    def broken(*_a, **_k):
        raise RuntimeError("estimator cannot read this model")

    monkeypatch.setattr(introspect, "inspect_model", broken)
    seen = []
    result = train(_cfg(tiny_model_dir, demo_train, **{"training.max_steps": 1}), run_dir=tmp_path / "r",
                   emit=seen.append)
    assert result.status == "completed"
    started = next(e for e in seen if e.kind == "run_started")
    assert started.estimated_peak_bytes == 0
    assert any(e.kind == "log" and "estimator cannot read" in e.message for e in seen)


def test_oom_message_gives_measured_estimate_and_suggestions(tiny_model_dir, demo_train, tmp_path, monkeypatch):
    import torch
    from transformers import Trainer

    real = Trainer.training_step
    calls = {"n": 0}

    def oom_on_second(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "training_step", oom_on_second)
    with pytest.raises(StudioError) as info:
        train(_cfg(tiny_model_dir, demo_train, **{"training.max_steps": 4}), run_dir=tmp_path / "r")
    msg = info.value.message
    assert "at step 2" in msg and "measured peak" in msg and "estimated peak" in msg and "Try:" in msg
    assert "gradient checkpointing" in msg.lower()
    assert "Tried to allocate" in info.value.detail
    [finished] = _events(tmp_path / "r", "run_finished")
    assert finished.status == "failed" and "estimated peak" in finished.reason


def test_early_stopping_keeps_the_best_checkpoint(tiny_model_dir, demo_train, demo_eval, tmp_path):
    """A learning rate too small to move fp32 outputs leaves eval loss flat: patience 2 stops the run
    two evaluations after the first, and the saved adapter is the first (best) checkpoint."""
    from safetensors.torch import load_file

    run = tmp_path / "r"
    cfg = _cfg(tiny_model_dir, demo_train, **{
        "dataset.eval": [str(demo_eval)], "training.max_steps": 20, "training.eval_steps": 2,
        "training.save_steps": 2, "training.lr": 1e-12, "training.early_stopping_patience": 2,
    })
    result = train(cfg, run_dir=run)
    assert result.status == "completed" and result.step == 6
    assert result.reason.startswith("Early stopping at step 6") and "best checkpoint (step 2" in result.reason
    [finished] = _events(run, "run_finished")
    assert finished.early_stopped and finished.best_checkpoint.endswith("checkpoint-2")
    assert runs.summarize(run).best_checkpoint == finished.best_checkpoint
    adapter = load_file(run / "adapter" / "adapter_model.safetensors")
    best = load_file(run / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    last = load_file(run / "checkpoints" / "checkpoint-6" / "adapter_model.safetensors")
    assert all(bool((adapter[k] == best[k]).all()) for k in adapter)
    assert any(not bool((adapter[k] == last[k]).all()) for k in adapter)


def test_early_stopping_without_eval_grid_is_refused(tiny_model_dir, demo_train, tmp_path):
    cfg = _cfg(tiny_model_dir, demo_train, **{"training.early_stopping_patience": 2})
    with pytest.raises(StudioError, match="Early stopping needs an eval set"):
        train(cfg, run_dir=tmp_path / "r")


def test_stop_writes_a_checkpoint_even_without_periodic_saves(tiny_model_dir, demo_train, tmp_path):
    control = Control()

    def emit(ev):
        if ev.kind == "step" and ev.step == 1:
            control.request_stop()

    cfg = _cfg(tiny_model_dir, demo_train, **{"training.max_steps": 30, "lora.use_dora": True,
                                              "lora.use_rslora": True})
    result = train(cfg, run_dir=tmp_path / "r", emit=emit, control=control)
    assert result.status == "stopped" and result.step == 1
    assert runs.last_checkpoint(tmp_path / "r").name == "checkpoint-1"
    assert any(e.step == 1 for e in _events(tmp_path / "r", "checkpoint"))
    adapter_cfg = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert adapter_cfg["use_dora"] is True and adapter_cfg["use_rslora"] is True


def test_tracker_resolution():
    installed = {"mlflow"}
    use, note = trackers.resolve(["tensorboard", "mlflow"], is_available=installed.__contains__)
    assert use == ["mlflow"]
    assert "tensorboard" in note and "pip install tensorboard" in note
    assert trackers.resolve([], is_available=installed.__contains__) == ([], "")


def test_report_to_config_field():
    assert RunConfig().training.report_to == []
    cfg = config_from_dict({"training": {"report_to": ["tensorboard", "tensorboard", "mlflow"]}})
    assert cfg.training.report_to == ["tensorboard", "mlflow"]
    with pytest.raises(StudioError, match=r"training\.report_to"):
        config_from_dict({"training": {"report_to": ["wandb"]}})


def test_missing_tracker_is_skipped_and_run_journals(tiny_model_dir, demo_train, tmp_path, monkeypatch):
    monkeypatch.setattr(trackers, "_importable", lambda _name: False)
    seen = []
    cfg = _cfg(tiny_model_dir, demo_train, **{"training.max_steps": 1, "training.report_to": ["tensorboard"]})
    result = train(cfg, run_dir=tmp_path / "r", emit=seen.append)
    assert result.status == "completed"
    assert next(e for e in seen if e.kind == "run_started").trackers == []
    assert any(e.kind == "log" and "not installed" in e.message for e in seen)
    assert not (tmp_path / "r" / trackers.TENSORBOARD_DIR).exists()


def test_tensorboard_tracker_writes_into_the_run_folder(tiny_model_dir, demo_train, tmp_path):
    pytest.importorskip("tensorboard")
    cfg = _cfg(tiny_model_dir, demo_train, **{"training.max_steps": 2, "training.report_to": ["tensorboard"]})
    train(cfg, run_dir=tmp_path / "r")
    assert list((tmp_path / "r" / trackers.TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    assert len(_events(tmp_path / "r", "step")) == 2  # the journal is still the full record


def test_summary_duration_skips_time_between_crash_and_resume(tmp_path):
    from studio.core.training.events import RunFinished, RunStarted, Step

    def started(t, resumed=0):
        return RunStarted(run_id="r", run_dir=str(tmp_path), model="m", dataset=["d"], dataset_fingerprint="",
                          method="lora", device="cpu", total_steps=4, train_rows=8, eval_rows=0,
                          trainable_params=10, total_params=100, resumed_from_step=resumed, t=t)

    def step(n, t, rate):
        return Step(step=n, total_steps=4, epoch=0.0, loss=1.0, lr=1e-3, tokens_per_s=rate, t=t)

    events = [started(100.0), step(1, 110.0, 100.0), step(2, 120.0, 300.0),  # crash after 20 s
              started(1000.0, resumed=2), step(3, 1010.0, 200.0), step(4, 1020.0, 200.0),
              RunFinished(status="completed", reason="Finished.", step=4, t=1025.0)]
    s = runs.summarize(tmp_path, events)
    assert s.status == "completed" and s.step == 4
    assert s.duration_s == pytest.approx(20.0 + 25.0)
    assert s.tokens_per_s == pytest.approx(200.0)


def test_phase_summary_sets_each_phase_beside_its_estimate():
    from studio.core.training.memory_watch import phase_summary

    gib = 2**30
    line = phase_summary({"forward_end": 2 * gib, "backward": 3 * gib, "optimizer": gib},
                         {"forward_end": 2 * gib, "backward": int(2.5 * gib), "optimizer": 2 * gib})
    assert line.startswith("memory by phase, estimated → measured: ")
    assert "forward 2.00 GiB → 2.00 GiB (±0 %)" in line
    assert "backward 3.00 GiB → 2.50 GiB (+20 %)" in line  # an over-estimate shows as +
    assert "optimizer step 1.00 GiB → 2.00 GiB (-50 %)" in line
    assert phase_summary({}, {"backward": gib}) == "memory by phase: backward 1.00 GiB"
    assert phase_summary({"backward": gib}, {}) == ""  # a run that never stepped measured nothing


def test_a_process_holding_more_than_the_cli_adds_that_to_the_run_estimate(tiny_model_dir, demo_train):
    """The desktop app trains in its own process: its window and loaded data are resident beside the
    run, so the run's estimate (the Train pane's line) carries what the process held beyond the
    command line's imports when the run began; the command line itself adds nothing."""
    from studio.core.memory.constants import CPU_IMPORTS_RSS_BYTES
    from studio.core.training.memory_watch import estimate_run

    cfg = _cfg(tiny_model_dir, demo_train)
    plain, _ = estimate_run(cfg, "cpu", [40, 60, 80])
    cli, _ = estimate_run(cfg, "cpu", [40, 60, 80], start_rss=CPU_IMPORTS_RSS_BYTES - 2**20)
    gui, _ = estimate_run(cfg, "cpu", [40, 60, 80], start_rss=CPU_IMPORTS_RSS_BYTES + 300 * 2**20)
    assert plain.peak_bytes == cli.peak_bytes
    assert gui.peak_bytes == plain.peak_bytes + 300 * 2**20
    assert all(gui.phase_bytes[k] == v + 300 * 2**20 for k, v in plain.phase_bytes.items())


@pytest.mark.parametrize(("objective", "expected"), [("dpo", "DPO on LoRA on cpu"), ("sft", "LoRA on cpu")])
def test_the_cli_names_the_objective_when_a_run_starts(tmp_path, capsys, objective, expected):
    from studio.cli.train import ProgressPrinter
    from studio.core.training.events import RunStarted

    ProgressPrinter()(RunStarted(run_id="r", run_dir=str(tmp_path), model="m", dataset=["d"], dataset_fingerprint="",
                                 method="lora", device="cpu", total_steps=4, train_rows=8, eval_rows=2,
                                 trainable_params=10, total_params=100, objective=objective))
    line = capsys.readouterr().err.splitlines()[1]
    assert line.strip().startswith(expected + ":")
