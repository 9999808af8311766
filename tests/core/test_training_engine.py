"""The engine on a tiny random Llama: real Trainer + peft, real journal, real stop/resume."""

from __future__ import annotations

import json
import threading

import pytest

from studio.core.config import RunConfig, apply_overrides
from studio.core.control import Control
from studio.core.training import runs
from studio.core.training.engine import train
from studio.core.training.events import Step


def _cfg(model_dir, train_file, eval_file=None, **over) -> RunConfig:
    base = {
        "model.path": str(model_dir),
        "dataset.train": [str(train_file)],
        "dataset.eval": [str(eval_file)] if eval_file else [],
        "training.max_steps": 4,
        "training.batch_size": 2,
        "training.max_seq_len": 128,
        "training.eval_steps": 2,
        "training.save_steps": 2,
        "training.lr": 1e-3,
    }
    base.update(over)
    return apply_overrides(RunConfig(), base)


def test_lora_run_writes_journal_adapter_and_baseline(tiny_model_dir, demo_train, demo_eval, tmp_path):
    seen = []
    result = train(_cfg(tiny_model_dir, demo_train, demo_eval), run_dir=tmp_path / "run", emit=seen.append)
    assert result.status == "completed"
    kinds = [e.kind for e in seen]
    # Baseline eval comes before the first training step.
    assert kinds.index("eval") < kinds.index("step")
    first_eval = next(e for e in seen if e.kind == "eval")
    assert first_eval.step == 0
    steps = [e for e in seen if isinstance(e, Step)]
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert all(s.tokens_per_s > 0 and s.loss > 0 for s in steps)
    # Journal on disk equals what the caller saw.
    journal = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [j["type"] for j in journal] == kinds
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir.resolve())
    summary = runs.summarize(tmp_path / "run")
    assert summary.status == "completed" and summary.step == 4 and summary.best_eval_loss is not None


def test_adapter_loads_in_plain_peft(tiny_model_dir, demo_train, tmp_path):
    result = train(_cfg(tiny_model_dir, demo_train, **{"training.max_steps": 2}), run_dir=tmp_path / "r")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, result.adapter_dir)
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0


def test_stop_finishes_step_and_checkpoints(tiny_model_dir, demo_train, tmp_path):
    control = Control()

    def emit(ev):
        if ev.kind == "step" and ev.step == 1:
            control.request_stop()

    cfg = _cfg(tiny_model_dir, demo_train, **{"training.max_steps": 50, "training.save_steps": 10})
    result = train(cfg, run_dir=tmp_path / "r", emit=emit, control=control)
    assert result.status == "stopped" and result.step == 1
    assert runs.last_checkpoint(tmp_path / "r").name == "checkpoint-1"
    assert runs.summarize(tmp_path / "r").resumable


def test_resume_continues_at_same_step_with_same_losses(tiny_model_dir, demo_train, tmp_path):
    over = {"training.max_steps": 4, "training.save_steps": 2, "training.eval_steps": 0, "dataset.eval_ratio": 0.0}
    ref = []
    train(_cfg(tiny_model_dir, demo_train, **over), run_dir=tmp_path / "ref", emit=ref.append)
    control = Control()

    def stop_at_2(ev):
        if ev.kind == "step" and ev.step == 2:
            control.request_stop()

    cfg = _cfg(tiny_model_dir, demo_train, **over)
    train(cfg, run_dir=tmp_path / "r", emit=stop_at_2, control=control)
    resumed = []
    result = train(cfg, run_dir=tmp_path / "r", emit=resumed.append, resume=True)
    assert result.status == "completed" and result.step == 4
    ref_losses = {e.step: e.loss for e in ref if e.kind == "step"}
    new_losses = {e.step: e.loss for e in resumed if e.kind == "step"}
    assert sorted(new_losses) == [3, 4]
    for s in (3, 4):
        assert new_losses[s] == pytest.approx(ref_losses[s], rel=1e-3)
    # The journal holds the whole curve: steps 1..4, once each.
    all_steps = [e.step for e in runs.read_events(tmp_path / "r") if e.kind == "step"]
    assert all_steps == [1, 2, 3, 4]


def test_pause_blocks_until_resume(tiny_model_dir, demo_train, tmp_path):
    control = Control()
    states = []

    order = []

    def emit(ev):
        order.append((ev.kind, getattr(ev, "step", None), getattr(ev, "state", None)))
        if ev.kind == "step" and ev.step == 1:
            control.pause()
        if ev.kind == "state":
            states.append(ev.state)
            if ev.state == "paused":
                threading.Timer(0.3, control.resume).start()

    result = train(_cfg(tiny_model_dir, demo_train, **{"training.max_steps": 3}), run_dir=tmp_path / "r",
                   emit=emit, control=control)
    assert result.status == "completed" and result.step == 3
    assert "paused" in states and states[states.index("paused") + 1] == "training"
    # The pause holds right after the loss of the step it was asked during is reported.
    paused_at = order.index(("state", None, "paused"))
    assert order[paused_at - 1][:2] == ("step", 1)


def test_stop_while_paused_checkpoints_the_paused_step(tiny_model_dir, demo_train, tmp_path):
    control = Control()

    def emit(ev):
        if ev.kind == "step" and ev.step == 1:
            control.pause()
        if ev.kind == "state" and ev.state == "paused":
            threading.Timer(0.2, control.request_stop).start()

    cfg = _cfg(tiny_model_dir, demo_train, **{"training.max_steps": 20, "training.save_steps": 0,
                                              "training.eval_steps": 0})
    result = train(cfg, run_dir=tmp_path / "r", emit=emit, control=control)
    assert result.status == "stopped" and result.step == 1
    assert runs.last_checkpoint(tmp_path / "r").name == "checkpoint-1"


def test_nan_loss_stops_with_cause(tiny_model_dir, demo_train, tmp_path):
    """A model whose forward overflows (an inf weight) must stop at the first bad step, not "succeed"."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    model = AutoModelForCausalLM.from_pretrained(broken)
    with torch.no_grad():
        model.model.norm.weight[0] = float("inf")
    model.save_pretrained(broken)
    cfg = _cfg(broken, demo_train, **{"training.max_steps": 5, "training.save_steps": 1, "training.eval_steps": 0,
                                      "dataset.eval_ratio": 0.0})
    result = train(cfg, run_dir=tmp_path / "r")
    assert result.status == "failed" and result.step == 1
    assert "learning rate" in result.reason and "step 1" in result.reason
    # No checkpoint of the broken state is written, and the journal says why it stopped.
    assert runs.last_checkpoint(tmp_path / "r") is None
    assert runs.summarize(tmp_path / "r").reason == result.reason


def test_interrupted_run_is_detected(tmp_path):
    run = tmp_path / "dead"
    run.mkdir()
    (run / "events.jsonl").write_text('{"type": "log", "t": 1, "level": "info", "message": "x"}\n{"type": "st')
    (run / "owner.pid").write_text("999999")
    s = runs.summarize(run)
    assert s.status == "interrupted" and not s.resumable


def test_packing_keeps_examples_independent(tiny_model_dir, smol_tokenizer_dir):
    """A packed row must give each example the same loss it gets alone (block-diagonal attention)."""
    import torch
    from transformers import AutoModelForCausalLM

    from studio.core.training.data import PadCollator, pack

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    a = {"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, 7, 8, 9]}
    b = {"input_ids": [11, 12, 13], "labels": [-100, 12, 13]}
    packed = pack([a, b], max_len=16)
    assert len(packed) == 1 and packed[0]["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2]
    coll = PadCollator(pad_id=0)
    with torch.no_grad():
        together = model(**coll(packed), use_cache=False).logits[0]
        alone_a = model(**coll([a])).logits[0]
        alone_b = model(**coll([b])).logits[0]
    assert torch.allclose(together[:5], alone_a, atol=1e-5)
    assert torch.allclose(together[5:], alone_b, atol=1e-5)


def test_packed_training_runs(tiny_model_dir, demo_train, tmp_path):
    cfg = _cfg(tiny_model_dir, demo_train, **{"training.packing": True, "training.max_steps": 2,
                                              "training.eval_steps": 0, "dataset.eval_ratio": 0.0})
    logs = []
    result = train(cfg, run_dir=tmp_path / "r", emit=lambda e: logs.append(e))
    assert result.status == "completed"
    assert any(e.kind == "log" and "Packed" in e.message for e in logs)


def test_disk_full_while_checkpointing_keeps_previous_checkpoint(tiny_model_dir, demo_train, tmp_path, monkeypatch):
    import errno

    from transformers import Trainer

    from studio.core.errors import StudioError

    real = Trainer._save_optimizer_and_scheduler
    calls = {"n": 0}

    def flaky(self, output_dir):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", flaky)
    cfg = _cfg(tiny_model_dir, demo_train, **{"training.max_steps": 6, "training.eval_steps": 0})
    with pytest.raises(StudioError) as info:
        train(cfg, run_dir=tmp_path / "r")
    assert "disk is full" in info.value.message and "checkpoint-2" in info.value.message
    assert runs.last_checkpoint(tmp_path / "r").name == "checkpoint-2"
    summary = runs.summarize(tmp_path / "r")
    assert summary.status == "failed" and summary.resumable
