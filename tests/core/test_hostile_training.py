"""Training under hostile settings and a hostile disk: a diverged run fails and names its step, a run of
no steps is refused, eval_steps 0 still evaluates at the end, a full disk gives a clear message and
leaves a readable journal, and a resume replays exactly the steps the uninterrupted run made."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import pytest
from _lib_fixtures import lib_adapter, lib_base, one_thread  # noqa: F401

from studio.cli import main
from studio.core.config import RunConfig, apply_overrides
from studio.core.control import Control
from studio.core.errors import StudioError
from studio.core.library import registry
from studio.core.training import runs
from studio.core.training.engine import train
from studio.core.training.hf_trainer import StudioTrainer


def _cfg(model_dir, train_file, eval_file=None, **over) -> RunConfig:
    base = {
        "model.path": str(model_dir),
        "dataset.train": [str(train_file)],
        "dataset.eval": [str(eval_file)] if eval_file else [],
        "dataset.eval_ratio": 0.0,
        "training.max_steps": 6,
        "training.batch_size": 2,
        "training.max_seq_len": 128,
        "training.eval_steps": 0,
        "training.save_steps": 2,
        "training.lr": 1e-3,
    }
    base.update(over)
    return apply_overrides(RunConfig(), base)


def _journal_lines(run_dir: Path) -> list[dict]:
    """Every line of the journal, parsed: a torn or glued line fails here."""
    return [json.loads(line) for line in (run_dir / runs.EVENTS_FILE).read_text(encoding="utf-8").splitlines()]


def _adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


# --- non-finite gradients -------------------------------------------------------------------------------------


def test_overflowing_gradients_fail_at_the_first_step_and_reach_no_library(tiny_model_dir, demo_train, tmp_path):
    """alpha 1e30 without clipping: the gradient norm is inf from step 1. The stock Trainer clips by
    1e9/inf = 0 and "completes" with an all-zero adapter in the library."""
    cfg = _cfg(tiny_model_dir, demo_train, **{"lora.alpha": 1e30, "training.lr": 0.9, "training.max_grad_norm": 0.0})
    seen = []
    result = train(cfg, run_dir=tmp_path / "r", emit=seen.append)
    assert result.status == "failed" and result.step == 1 and result.adapter_dir is None
    assert "non-finite" in result.reason and "step 1" in result.reason and "clipping" in result.reason
    assert registry.list_entries() == []
    assert runs.last_checkpoint(tmp_path / "r") is None
    assert not (tmp_path / "r" / runs.ADAPTER_DIR).exists()
    finished = [e for e in seen if e.kind == "run_finished"]
    assert len(finished) == 1 and finished[0].status == "failed" and finished[0].step == 1
    assert runs.summarize(tmp_path / "r").status == "failed"


def test_nan_gradient_mid_run_keeps_the_last_good_checkpoint(tiny_model_dir, demo_train, tmp_path, monkeypatch):
    """A NaN gradient at step 3: the step is not applied, nothing after checkpoint-2 is saved, and the
    weights the run stops with are still finite."""
    real_step = StudioTrainer.training_step
    finals = {}

    def poisoned(self, model, inputs, num_items_in_batch=None):
        loss = real_step(self, model, inputs, num_items_in_batch)
        if self.state.global_step == 2:  # the backward of step 3
            p = next(p for p in model.parameters() if p.requires_grad and p.grad is not None)
            p.grad.view(-1)[0] = float("nan")
        finals["model"] = model
        return loss

    monkeypatch.setattr(StudioTrainer, "training_step", poisoned)
    seen = []
    result = train(_cfg(tiny_model_dir, demo_train), run_dir=tmp_path / "r", emit=seen.append)
    assert result.status == "failed" and result.step == 3
    assert "non-finite" in result.reason and "step 3" in result.reason and "checkpoint-2" in result.reason
    ckpts = sorted(p.name for p in (tmp_path / "r" / runs.CHECKPOINTS_DIR).iterdir())
    assert ckpts == ["checkpoint-2"]
    assert runs.last_checkpoint(tmp_path / "r").name == "checkpoint-2"
    assert all(bool(t.isfinite().all()) for t in _adapter_tensors(tmp_path / "r" / "checkpoints" / "checkpoint-2").values())
    assert all(bool(p.isfinite().all()) for p in finals["model"].parameters())
    assert registry.list_entries() == []
    steps = [e.step for e in seen if e.kind == "step"]
    assert steps == [1, 2, 3]


# --- settings that mean "no training" or "evaluate at the end" --------------------------------------------------


def test_max_steps_zero_is_refused_naming_the_field():
    with pytest.raises(StudioError) as info:
        apply_overrides(RunConfig(), {"training.max_steps": 0})
    assert "training.max_steps" in info.value.message and "-1" in info.value.message
    assert apply_overrides(RunConfig(), {"training.max_steps": -1}).training.max_steps == -1
    assert apply_overrides(RunConfig(), {"training.max_steps": 1}).training.max_steps == 1


def test_cli_max_steps_zero_trains_nothing(tiny_model_dir, demo_train, tmp_path, capsys):
    out = tmp_path / "r"
    rc = main(["train", "--model", str(tiny_model_dir), "--dataset", str(demo_train), "--max-steps", "0",
               "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "max" in err and "not 0" in err
    assert not out.exists() and registry.list_entries() == []


def test_eval_steps_zero_evaluates_at_start_and_at_the_end(tiny_model_dir, demo_train, demo_eval, tmp_path):
    cfg = _cfg(tiny_model_dir, demo_train, demo_eval, **{"training.max_steps": 3, "training.save_steps": 0})
    seen = []
    result = train(cfg, run_dir=tmp_path / "r", emit=seen.append)
    assert result.status == "completed" and result.step == 3
    evals = [e for e in runs.read_events(tmp_path / "r") if e.kind == "eval"]
    assert [e.step for e in evals] == [0, 3]
    assert evals[0].eval_loss != evals[1].eval_loss
    assert result.eval_loss == evals[-1].eval_loss
    assert runs.summarize(tmp_path / "r").eval_loss == evals[-1].eval_loss


# --- a full disk -------------------------------------------------------------------------------------------------


def _disk_full_errors():
    from safetensors import SafetensorError

    return {
        "oserror": (OSError(errno.ENOSPC, "No space left on device"), False),
        "safetensors": (SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
                        False),
        # torch.save's zip writer names no errno; the nearly empty disk is what tells.
        "torch-zip-writer": (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
                             True),
    }


@pytest.mark.parametrize("kind", ["oserror", "safetensors", "torch-zip-writer"])
def test_disk_full_while_checkpointing(kind, tiny_model_dir, demo_train, tmp_path, monkeypatch):
    import shutil

    from transformers import Trainer

    error, needs_free_space_check = _disk_full_errors()[kind]
    run_dir = tmp_path / "r"
    real = Trainer._save_optimizer_and_scheduler
    calls = {"n": 0}

    def flaky(self, output_dir):
        calls["n"] += 1
        if calls["n"] == 2:
            (Path(output_dir) / "optimizer.pt").write_bytes(b"PK\x03\x04 half")  # what the failed write left
            raise error
        return real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", flaky)
    if needs_free_space_check:
        real_usage = shutil.disk_usage

        def usage(path):
            total, used, _free = real_usage(path)
            return type(real_usage(path))(total, used, 4096)

        monkeypatch.setattr(shutil, "disk_usage", usage)
    seen = []
    with pytest.raises(StudioError) as info:
        train(_cfg(tiny_model_dir, demo_train), run_dir=run_dir, emit=seen.append)
    err = info.value
    assert "disk is full" in err.message and "step 4" in err.message and "checkpoint-2" in err.message
    assert Path(err.path) == run_dir
    # The half-written checkpoint is gone, the complete one stays, the folder is free for a resume.
    assert sorted(p.name for p in (run_dir / runs.CHECKPOINTS_DIR).iterdir()) == ["checkpoint-2"]
    assert not (run_dir / runs.LOCK_FILE).exists()
    # The failure carries how far the run got.
    journal = _journal_lines(run_dir)
    last_step = [j for j in journal if j["type"] == "step"][-1]
    finished = journal[-1]
    assert finished["type"] == "run_finished" and finished["status"] == "failed"
    assert finished["step"] == 4 and finished["train_loss"] == last_step["loss"]
    assert finished["peak_memory_bytes"] > 0
    summary = runs.summarize(run_dir)
    assert summary.status == "failed" and summary.resumable


def test_disk_full_is_recognised_whatever_the_writer_raises(tmp_path, monkeypatch):
    import shutil

    from studio.core.errors import describe_exception, is_disk_full

    for kind, (error, needs_folder) in _disk_full_errors().items():
        if not needs_folder:
            assert is_disk_full(error), kind
            assert "disk is full" in describe_exception(error)[0], kind
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert is_disk_full(wrapped)
    # An unrelated failure is not blamed on a disk with room left...
    assert not is_disk_full(RuntimeError("unexpected pos 576 vs 534"), tmp_path)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    # ...but on a disk with no room left, a writer that names no errno is.
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: type(real_usage(p))(real_usage(p).total, 0, 0))
    assert is_disk_full(RuntimeError("unexpected pos 576 vs 534"), tmp_path)


class _FillingDisk:
    """``os`` for the journal, with a disk that fills up: from the ``full_at``-th write on, a write puts
    half its bytes down and then fails with ENOSPC, as a real full disk does."""

    def __init__(self, full_at: int) -> None:
        self.writes = 0
        self.full_at = full_at

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        self.writes += 1
        if self.writes >= self.full_at:
            os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


def test_disk_full_while_journaling_leaves_whole_lines_and_still_reports(tiny_model_dir, demo_train, tmp_path,
                                                                       monkeypatch):
    run_dir = tmp_path / "r"
    disk = _FillingDisk(full_at=8)
    monkeypatch.setattr(runs, "os", disk)
    seen = []
    with pytest.raises(StudioError) as info:
        train(_cfg(tiny_model_dir, demo_train), run_dir=run_dir, emit=seen.append)
    assert disk.writes >= 8
    assert "disk is full" in info.value.message and Path(info.value.path) == run_dir
    journal = _journal_lines(run_dir)  # no torn or glued line
    assert len(journal) == 7
    # The journal could not take the failure, but the caller still got it, with the real step.
    finished = seen[-1]
    assert finished.kind == "run_finished" and finished.status == "failed" and "disk is full" in finished.reason
    # The step the disk refused to journal did run: the failure names it, one past the last journaled one.
    journaled_steps = [j["step"] for j in journal if j["type"] == "step"]
    assert journaled_steps and finished.step == journaled_steps[-1] + 1
    assert not (run_dir / runs.LOCK_FILE).exists()
    assert runs.summarize(run_dir).status == "interrupted"


def test_failure_event_carries_the_real_step_loss_and_peak(tiny_model_dir, demo_train, tmp_path, monkeypatch):
    real_step = StudioTrainer.training_step

    def breaks_at_step_3(self, model, inputs, num_items_in_batch=None):
        if self.state.global_step == 2:
            raise StudioError("The data loader lost its file.")
        return real_step(self, model, inputs, num_items_in_batch)

    monkeypatch.setattr(StudioTrainer, "training_step", breaks_at_step_3)
    seen = []
    with pytest.raises(StudioError, match="lost its file"):
        train(_cfg(tiny_model_dir, demo_train), run_dir=tmp_path / "r", emit=seen.append)
    steps = [e for e in seen if e.kind == "step"]
    finished = seen[-1]
    assert finished.kind == "run_finished" and finished.status == "failed"
    assert finished.step == 2 and finished.train_loss == steps[-1].loss
    assert finished.peak_memory_bytes == max(s.memory_bytes for s in steps) > 0


def test_merged_export_disk_full_from_safetensors_is_a_clear_error(lib_adapter, tmp_path, monkeypatch, capsys):
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*_a, **_k):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    out = tmp_path / "exports" / "merged"
    rc = main(["export", str(lib_adapter), "--merge", "--out", str(out), "--no-check"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "disk is full" in err and "nothing was written" in err and str(out) in err
    assert "SafetensorError" not in err and "Traceback" not in err
    assert not out.exists() and (not out.parent.exists() or list(out.parent.iterdir()) == [])


# --- exact resume ------------------------------------------------------------------------------------------------


@pytest.fixture()
def twelve_rows(demo_train, tmp_path) -> Path:
    """Six steps an epoch at batch 2, so a short run crosses into its second and third epochs."""
    path = tmp_path / "twelve.jsonl"
    path.write_text("".join(demo_train.read_text(encoding="utf-8").splitlines(keepends=True)[:12]), encoding="utf-8")
    return path


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_resume_in_a_later_epoch_replays_the_exact_losses(dropout, tiny_model_dir, twelve_rows, tmp_path):
    """Steps after a resume are bit-identical to the uninterrupted run's, also past the first epoch:
    each epoch's shuffle comes from the data seed and the epoch, not from the global RNG (which dropout
    and the previous epoch's shuffle move, and which a resume restores only after the shuffle)."""
    # On CPU, where kernels are deterministic: on CUDA some backward kernels add in a varying order,
    # so bit-equality there also needs torch's deterministic mode (see hf_trainer's docstring).
    over = {"training.max_steps": 11, "training.save_steps": 4, "lora.dropout": dropout, "training.device": "cpu"}
    ref = []
    train(_cfg(tiny_model_dir, twelve_rows, **over), run_dir=tmp_path / "ref", emit=ref.append)
    control = Control()

    def stop_at_8(ev):
        if ev.kind == "step" and ev.step == 8:
            control.request_stop()

    cfg = _cfg(tiny_model_dir, twelve_rows, **over)
    train(cfg, run_dir=tmp_path / "r", emit=stop_at_8, control=control)
    resumed = []
    result = train(cfg, run_dir=tmp_path / "r", emit=resumed.append, resume=True)
    assert result.status == "completed" and result.step == 11
    ref_losses = {e.step: e.loss for e in ref if e.kind == "step"}
    new_losses = {e.step: e.loss for e in resumed if e.kind == "step"}
    assert sorted(new_losses) == [9, 10, 11]
    assert all(math.isfinite(v) for v in new_losses.values())
    assert {s: ref_losses[s] for s in new_losses} == new_losses
    # The adapters are the same too, bit for bit.
    ref_w, new_w = _adapter_tensors(tmp_path / "ref" / "adapter"), _adapter_tensors(tmp_path / "r" / "adapter")
    assert ref_w.keys() == new_w.keys() and all(bool((ref_w[k] == new_w[k]).all()) for k in ref_w)
