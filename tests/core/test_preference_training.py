"""Preference training (DPO, ORPO) on the engine: reward metrics in the journal, the adapter saved and
in the Library, the reference without a second model, stop/resume at the same step, start from an SFT
adapter with lineage, and the refusals that name the file and what to do."""

from __future__ import annotations

import json
import math

import pytest

from studio.core.config import ConfigError, RunConfig, apply_overrides
from studio.core.control import Control
from studio.core.errors import StudioError
from studio.core.library import registry
from studio.core.training import runs
from studio.core.training.engine import train

PAIRS = [
    ("What is 2 + 2?", "4", "It might be 5, I am not sure."),
    ("Name a primary colour.", "Red.", "Purple, probably."),
    ("What is the capital of France?", "Paris.", "London, I think."),
    ("How many legs does a spider have?", "Eight.", "Six or so."),
    ("What is frozen water called?", "Ice.", "Steam."),
    ("Which planet is closest to the sun?", "Mercury.", "Jupiter, maybe."),
]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture()
def pair_files(tmp_path):
    train_file, eval_file = tmp_path / "pairs_train.jsonl", tmp_path / "pairs_eval.jsonl"
    rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows[:4]), encoding="utf-8")
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in rows[4:]), encoding="utf-8")
    return train_file, eval_file


def _cfg(model_dir, train_file, eval_file=None, **over) -> RunConfig:
    base = {
        "objective": "dpo", "model.path": str(model_dir), "dataset.train": [str(train_file)],
        "dataset.eval": [str(eval_file)] if eval_file else [], "training.max_steps": 3,
        "training.batch_size": 2, "training.max_seq_len": 96, "training.eval_steps": 0,
        "training.save_steps": 0, "training.lr": 1e-3,
    }
    base.update(over)
    return apply_overrides(RunConfig(), base)


def _trainers_made(monkeypatch) -> list:
    """The TRL trainers ``preference.build_trainer`` makes from here on, for a test to look inside."""
    from studio.core.training import preference

    made: list = []
    real = preference.build_trainer

    def spy(*a, **kw):
        trainer, collator = real(*a, **kw)
        made.append(trainer)
        return trainer, collator

    monkeypatch.setattr(preference, "build_trainer", spy)
    return made


@pytest.mark.parametrize("objective", ["dpo", "orpo"])
def test_preference_run_journals_rewards_and_registers(objective, tiny_model_dir, pair_files, tmp_path):
    seen = []
    cfg = _cfg(tiny_model_dir, *pair_files, objective=objective)
    result = train(cfg, run_dir=tmp_path / "r", emit=seen.append)
    assert result.status == "completed", result.reason
    events = runs.read_events(tmp_path / "r")
    steps = [e for e in events if e.kind == "step"]
    evals = [e for e in events if e.kind == "eval"]
    assert [s.step for s in steps] == [1, 2, 3]
    for s in steps:
        assert set(s.rewards) == {"chosen", "rejected", "margin", "accuracy"}
        assert all(math.isfinite(v) for v in s.rewards.values())
    assert steps[-1].tokens_seen > 0 and steps[-1].rewards["margin"] != 0.0  # the adapter moved
    # The eval before the first step is the base's preference accuracy; the last one is the adapter's.
    assert [e.step for e in evals] == [0, 3]
    assert 0.0 <= evals[0].rewards["accuracy"] <= 1.0 and math.isnan(evals[0].perplexity)
    if objective == "dpo":  # the policy is the reference before any step: every reward is 0
        assert evals[0].rewards["chosen"] == pytest.approx(0.0, abs=1e-5)
        assert evals[0].rewards["margin"] == pytest.approx(0.0, abs=1e-5)
    assert (result.adapter_dir / "adapter_config.json").is_file()
    [entry] = registry.list_entries()
    assert entry.objective == objective and entry.method == "lora" and entry.parent_id == ""
    assert entry.metrics["eval_reward_accuracy"] == evals[-1].rewards["accuracy"]
    assert entry.config["objective"] == objective


def test_dpo_reference_is_the_base_with_the_adapter_off(tiny_model_dir, pair_files, monkeypatch, tmp_path):
    """No second model: TRL's ref_model stays None and the adapter is switched off for the reference pass."""

    made = _trainers_made(monkeypatch)
    train(_cfg(tiny_model_dir, pair_files[0], **{"training.max_steps": 1}), run_dir=tmp_path / "r")
    [trainer] = made
    assert trainer.ref_model is None
    assert list(trainer.model.peft_config) == ["default"]  # no "ref" copy of the adapter either


def test_stop_then_resume_continues_at_the_same_step(tiny_model_dir, pair_files, tmp_path):
    cfg = _cfg(tiny_model_dir, *pair_files, **{"training.max_steps": 4})
    control = Control()

    def stop_at_2(ev):
        if ev.kind == "step" and ev.step == 2:
            control.request_stop()

    stopped = train(cfg, run_dir=tmp_path / "r", emit=stop_at_2, control=control)
    assert stopped.status == "stopped" and stopped.step == 2
    done = train(cfg, run_dir=tmp_path / "r", resume=True)
    assert done.status == "completed" and done.step == 4
    steps = [e.step for e in runs.effective_events(runs.read_events(tmp_path / "r")) if e.kind == "step"]
    assert steps == [1, 2, 3, 4]
    [entry] = registry.list_entries()
    assert entry.metrics["steps"] == 4


def test_dpo_starts_from_an_sft_adapter_and_records_the_parent(tiny_model_dir, pair_files, demo_train, tmp_path):
    sft = apply_overrides(RunConfig(), {
        "model.path": str(tiny_model_dir), "dataset.train": [str(demo_train)], "training.max_steps": 1,
        "training.batch_size": 2, "training.max_seq_len": 96, "training.eval_steps": 0, "training.save_steps": 0,
        "dataset.eval_ratio": 0.0,
    })
    parent = registry.get_entry(train(sft, run_dir=tmp_path / "sft").library_id)
    cfg = _cfg(tiny_model_dir, pair_files[0], **{"training.max_steps": 1, "preference.start_from": parent.id})
    result = train(cfg, run_dir=tmp_path / "dpo")
    assert result.status == "completed", result.reason
    child = registry.get_entry(result.library_id)
    assert child.parent_id == parent.id and child.objective == "dpo"


def test_dpo_on_a_supervised_file_is_refused(tiny_model_dir, demo_train, tmp_path):
    with pytest.raises(StudioError) as err:
        train(_cfg(tiny_model_dir, demo_train), run_dir=tmp_path / "r")
    assert "DPO trains on preference pairs" in str(err.value) and "objective sft" in str(err.value)
    assert err.value.path is not None and err.value.line == 1


def test_sft_on_a_pair_file_is_refused(tiny_model_dir, pair_files, tmp_path):
    with pytest.raises(StudioError) as err:
        train(_cfg(tiny_model_dir, pair_files[0], objective="sft"), run_dir=tmp_path / "r")
    assert "preference pair" in str(err.value) and err.value.line == 1


def test_config_refuses_preference_on_a_full_fine_tune():
    with pytest.raises(ConfigError) as err:
        apply_overrides(RunConfig(), {"objective": "dpo", "method": "full"})
    assert "use method lora or qlora" in str(err.value)
    with pytest.raises(ConfigError):
        apply_overrides(RunConfig(), {"preference.beta": 0})


@pytest.fixture(scope="module")
def wide_base(tmp_path_factory, smol_tokenizer_dir):
    """A 64-wide tiny Llama: bitsandbytes' 4-bit blocks need 64, and the 32-wide tiny model is too narrow."""
    from _lib_fixtures import make_base

    return make_base(tmp_path_factory.mktemp("wide_base") / "tiny-llama", smol_tokenizer_dir)


@pytest.mark.parametrize("objective", ["dpo", "orpo"])
def test_qlora_preference_run_trains_on_a_4bit_base(objective, wide_base, pair_files, monkeypatch, tmp_path):
    """QLoRA + DPO/ORPO: the base is loaded in NF4 (bitsandbytes runs on CPU here), TRL's trainer gets it
    with the adapter on top, the DPO reference is that same 4-bit base with the adapter off, the
    journal carries rewards, and the adapter is saved and registered as a QLoRA entry."""
    import bitsandbytes as bnb


    made = _trainers_made(monkeypatch)
    cfg = _cfg(wide_base, *pair_files, objective=objective, method="qlora", **{"training.max_steps": 2})
    result = train(cfg, run_dir=tmp_path / "r")
    assert result.status == "completed", result.reason
    [trainer] = made
    four_bit = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit, "the QLoRA base was not loaded in 4-bit"
    assert getattr(trainer, "ref_model", None) is None and list(trainer.model.peft_config) == ["default"]

    events = runs.read_events(tmp_path / "r")
    steps = [e for e in events if e.kind == "step"]
    assert [s.step for s in steps] == [1, 2]
    for s in steps:
        assert set(s.rewards) == {"chosen", "rejected", "margin", "accuracy"}
        assert all(math.isfinite(v) for v in s.rewards.values()) and math.isfinite(s.loss)
    evals = [e for e in events if e.kind == "eval"]
    assert [e.step for e in evals] == [0, 2] and evals[-1].rewards
    if objective == "dpo":  # step 0: the 4-bit policy with its zero-B adapter is its own reference
        assert evals[0].rewards["margin"] == pytest.approx(0.0, abs=1e-5)

    started = next(e for e in events if e.kind == "run_started")
    # The log names the 4-bit base, not only the fp32 of the rest (was "float32 weights" for QLoRA too).
    assert started.precision == "nf4 4-bit Linear weights, bfloat16 compute; float32 elsewhere"
    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert saved["r"] == cfg.lora.r and (result.adapter_dir / "adapter_model.safetensors").is_file()
    [entry] = registry.list_entries()
    assert (entry.objective, entry.method) == (objective, "qlora")
    assert entry.metrics["eval_reward_accuracy"] == evals[-1].rewards["accuracy"]
    assert entry.metrics["steps"] == 2
