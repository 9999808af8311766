"""A preference run resumed past its first epoch trains on the batches the uninterrupted run trained on,
so the replayed steps' losses are bit-identical on CPU. Preference runs shuffle plainly (not grouped by
length, which the SFT sampler in hf_trainer makes epoch-seeded); this holds the plain shuffle to the same
promise."""

from __future__ import annotations

import json

import pytest

from studio.core.config import RunConfig, apply_overrides
from studio.core.control import Control
from studio.core.training import runs
from studio.core.training.engine import train

PAIRS = [
    ("What is 2 + 2?", "4", "It might be 5."), ("Name a primary colour.", "Red.", "Purple, probably."),
    ("What is the capital of France?", "Paris.", "London."), ("How many legs does a spider have?", "Eight.", "Six."),
    ("What is frozen water called?", "Ice.", "Steam."), ("Which planet is closest to the sun?", "Mercury.", "Mars."),
]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))


def _losses(run_dir) -> dict[int, float]:
    return {e.step: e.loss for e in runs.effective_events(runs.read_events(run_dir)) if e.kind == "step"}


@pytest.mark.parametrize("objective", ["dpo", "orpo"])
def test_resume_in_the_second_epoch_replays_the_same_batches(objective, tiny_model_dir, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in PAIRS))
    # 6 pairs in batches of 2: 3 steps an epoch; the stop comes in the second epoch.
    cfg = apply_overrides(RunConfig(), {
        "objective": objective, "model.path": str(tiny_model_dir), "dataset.train": [str(data)],
        "dataset.eval_ratio": 0.0, "training.max_steps": 8, "training.batch_size": 2, "training.max_seq_len": 64,
        "training.eval_steps": 0, "training.save_steps": 0, "training.lr": 1e-3, "lora.dropout": 0.1,
    })
    whole = train(cfg, run_dir=tmp_path / "whole")
    control = Control()

    def stop_at_5(ev):
        if ev.kind == "step" and ev.step == 5:
            control.request_stop()

    assert train(cfg, run_dir=tmp_path / "cut", emit=stop_at_5, control=control).status == "stopped"
    resumed = train(cfg, run_dir=tmp_path / "cut", resume=True)
    assert whole.status == resumed.status == "completed"
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "whole")
