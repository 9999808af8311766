"""The engine's side of a paused, a stopped and a resumed run: tokens/s without the paused time, the
library entry a stop leaves (one per run, with its last eval or the reason it has none)."""

# ruff: noqa: F811 (the fixture is imported, then named as an argument)
from __future__ import annotations

import time
import types

import pytest
from _lib_fixtures import lib_base  # noqa: F401

from studio.core.config import RunConfig, apply_overrides
from studio.core.control import Control
from studio.core.library import registry
from studio.core.training import engine
from studio.core.training.engine import train


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))


def _cfg(model_dir, train_file, eval_file=None, **over) -> RunConfig:
    base = {
        "model.path": str(model_dir), "dataset.train": [str(train_file)],
        "dataset.eval": [str(eval_file)] if eval_file else [], "training.max_steps": 4,
        "training.batch_size": 2, "training.max_seq_len": 96, "training.eval_steps": 0,
        "training.save_steps": 0, "training.lr": 1e-3,
    }
    base.update(over)
    return apply_overrides(RunConfig(), base)


def test_paused_time_is_not_in_tokens_per_s(tiny_model_dir, demo_train, demo_eval, tmp_path, monkeypatch):
    """The engine's clock jumps an hour while the run is paused and another while it evaluates (the
    pause lands on an eval step): the step after must report a rate of the same order as its
    neighbours, not (its tokens + the eval's) / two hours."""
    skew = {"s": 0.0}
    monkeypatch.setattr(engine, "time", types.SimpleNamespace(time=lambda: time.time() + skew["s"]))
    control = Control()
    steps = []

    def emit(ev):
        if ev.kind == "step":
            steps.append(ev)
            if ev.step == 2:
                control.pause()
        elif ev.kind == "state" and ev.state == "paused":
            skew["s"] += 3600.0  # the hour the run sat paused
            control.resume()
        elif ev.kind == "eval" and ev.step == 2:
            skew["s"] += 3600.0  # and the hour its evaluation took

    cfg = _cfg(tiny_model_dir, demo_train, demo_eval, **{"training.eval_steps": 2})
    result = train(cfg, run_dir=tmp_path / "r", emit=emit, control=control)
    assert result.status == "completed"
    rates = {s.step: s.tokens_per_s for s in steps}
    tokens = {s.step: s.tokens_seen for s in steps}
    # Anything that counted the hour would be below (tokens of one step) / 3600.
    assert rates[3] > (tokens[3] - tokens[2]) / 60.0
    assert rates[3] > min(rates[1], rates[4]) / 20.0


def _stop_at(control: Control, step: int):
    def emit(ev):
        if ev.kind == "step" and ev.step == step:
            control.request_stop()
    return emit


def test_stop_then_resume_keeps_one_library_entry(tiny_model_dir, demo_train, demo_eval, tmp_path):
    cfg = _cfg(tiny_model_dir, demo_train, demo_eval, **{"training.max_steps": 6, "training.eval_steps": 3,
                                                        "training.save_steps": 3})
    control = Control()
    stopped = train(cfg, run_dir=tmp_path / "r", emit=_stop_at(control, 1), control=control)
    assert stopped.status == "stopped"
    [entry] = registry.list_entries()
    # Only the step-0 baseline (the base model's loss) was measured: it must not pass as the adapter's.
    assert "eval_loss" not in entry.metrics
    assert "stopped at step 1, before its first evaluation (every 3 steps)" in entry.metrics["eval_note"]
    assert entry.name == "demo"  # named after its dataset (demo_train.jsonl), not a fixed demo name

    control = Control()
    train(cfg, run_dir=tmp_path / "r", emit=_stop_at(control, 4), control=control, resume=True)
    [again] = registry.list_entries()
    assert again.id == entry.id and again.name == "demo"
    assert again.metrics["eval_step"] == 3 and isinstance(again.metrics["eval_loss"], float)

    done = train(cfg, run_dir=tmp_path / "r", resume=True)
    assert done.status == "completed"
    [last] = registry.list_entries()
    assert last.id == entry.id and last.metrics["eval_step"] == 6 and last.metrics["steps"] == 6


def test_no_eval_set_says_so(tiny_model_dir, demo_train, tmp_path):
    cfg = _cfg(tiny_model_dir, demo_train, **{"training.max_steps": 1, "dataset.eval_ratio": 0.0})
    train(cfg, run_dir=tmp_path / "r")
    [entry] = registry.list_entries()
    assert "eval_loss" not in entry.metrics and "no eval set" in entry.metrics["eval_note"]


def test_qlora_on_cpu_warning_reaches_the_run_log(lib_base, demo_train, tmp_path):
    """bitsandbytes' 4-bit ops on CPU make torch warn that backprop "may lead to silently incorrect
    behavior": the user must read that in the run's log (and journal), not only on a console."""
    seen = []
    cfg = _cfg(lib_base, demo_train, **{"method": "qlora", "training.max_steps": 2})  # 4-bit blocks need 64 wide
    result = train(cfg, run_dir=tmp_path / "r", emit=seen.append)
    assert result.status == "completed"
    logged = [e.message for e in seen if e.kind == "log" and e.level == "warning"]
    hits = [m for m in logged if "silently incorrect behavior" in m]
    assert len(hits) == 1, logged  # once, not once per step
    assert "QLoRA on CPU" in hits[0]
