""""Will it stop?" after training: the engine answers a few eval prompts greedily, journals the share
that ended on EOS / end-of-turn before the token limit, and keeps it in the Library entry's metrics."""

from __future__ import annotations

import json
import shutil

import pytest

from studio.core.config import RunConfig, apply_overrides
from studio.core.datasets.render import IGNORE_INDEX
from studio.core.library.registry import get_entry
from studio.core.training import runs, stop_check
from studio.core.training.engine import train
from studio.core.training.events import RunFinished


def _cfg(model_dir, train_file, eval_file=None, **over) -> RunConfig:
    base = {
        "model.path": str(model_dir), "dataset.train": [str(train_file)],
        "dataset.eval": [str(eval_file)] if eval_file else [], "dataset.eval_ratio": 0.0,
        "training.max_steps": 2, "training.batch_size": 2, "training.max_seq_len": 96,
        "training.eval_steps": 0, "training.save_steps": 0, "training.lr": 1e-3,
    }
    base.update(over)
    return apply_overrides(RunConfig(), base)


def _finished(run_dir) -> RunFinished:
    [ev] = [e for e in runs.read_events(run_dir) if e.kind == "run_finished"]
    return ev


def _eval_answer_lengths(model_dir, eval_file) -> list[int]:
    """The reference answers' token lengths (with their end-of-turn), rendered as training renders them."""
    from transformers import AutoTokenizer

    from studio.core.datasets.formats import to_example
    from studio.core.datasets.render import render_example

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    rows = [json.loads(line) for line in eval_file.read_text().splitlines() if line.strip()]
    return [render_example(to_example(r), tok, 96).trained_tokens for r in rows]


def test_share_is_journaled_and_kept_in_the_library_entry(tiny_model_dir, demo_train, demo_eval, tmp_path):
    run = tmp_path / "run"
    result = train(_cfg(tiny_model_dir, demo_train, demo_eval), run_dir=run)
    ev = _finished(run)
    assert result.status == "completed"
    assert ev.eos_checked == stop_check.MAX_PROMPTS  # the demo eval file has more chat rows than that
    assert 0.0 <= ev.eos_share <= 1.0
    lengths = _eval_answer_lengths(tiny_model_dir, demo_eval)[: stop_check.MAX_PROMPTS]
    assert ev.eos_limit == max(stop_check.MIN_NEW_TOKENS, stop_check.LIMIT_FACTOR * max(lengths))
    metrics = get_entry(result.library_id).metrics
    assert metrics["eos_share"] == ev.eos_share and metrics["eos_checked"] == ev.eos_checked
    states = [e.detail for e in runs.read_events(run) if e.kind == "state"]
    assert any("Checking answers of the trained model" in d for d in states)


def test_no_eval_split_means_no_figure(tiny_model_dir, demo_train, tmp_path):
    run = tmp_path / "run"
    result = train(_cfg(tiny_model_dir, demo_train), run_dir=run)
    ev = _finished(run)
    assert ev.eos_share is None and ev.eos_checked == 0
    assert "eos_share" not in get_entry(result.library_id).metrics
    assert not any("Checking answers" in e.detail for e in runs.read_events(run) if e.kind == "state")


def _forced_model(src, dest):
    """A copy of the tiny model whose greedy choice is always one of two ordinary tokens, whatever the
    input: the final norm keeps one hidden dimension, and only those two tokens' output rows read it (with
    opposite signs). LoRA on the attention/MLP layers cannot change that, so no answer ever ends on EOS."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dest)
    path = dest / "model.safetensors"
    weights = load_file(str(path))
    head = "lm_head.weight" if "lm_head.weight" in weights else "model.embed_tokens.weight"
    norm = torch.zeros_like(weights["model.norm.weight"])
    norm[0] = 1.0
    weights["model.norm.weight"] = norm
    plain = [100, 200]  # two ordinary byte pieces of the SmolLM2 vocabulary ("t", "Č"), no special token
    rows = weights[head].clone()
    rows[:, 0] = 0.0
    rows[plain[0], 0], rows[plain[1], 0] = 50.0, -50.0
    weights[head] = rows
    save_file(weights, str(path), metadata={"format": "pt"})
    return dest, plain


def test_a_model_that_never_emits_eos_scores_zero(tiny_model_dir, demo_train, demo_eval, tmp_path):
    model, plain = _forced_model(tiny_model_dir, tmp_path / "forced")
    run = tmp_path / "run"
    train(_cfg(model, demo_train, demo_eval), run_dir=run)
    ev = _finished(run)
    assert ev.eos_checked == stop_check.MAX_PROMPTS and ev.eos_share == 0.0
    # The same model scores 1.0 once its two tokens are what generation stops on: the figure follows the
    # stop ids, it is not a constant.
    gen = json.loads((model / "generation_config.json").read_text())
    gen["eos_token_id"] = plain
    (model / "generation_config.json").write_text(json.dumps(gen))
    run2 = tmp_path / "run2"
    train(_cfg(model, demo_train, demo_eval), run_dir=run2)
    assert _finished(run2).eos_share == 1.0


def test_prompts_come_from_chat_rows_up_to_their_last_answer():
    x = IGNORE_INDEX
    chat = {"input_ids": [1, 2, 3, 4, 5, 6, 7, 8], "labels": [x, x, 3, 4, x, x, 7, 8]}   # two assistant turns
    text = {"input_ids": [1, 2, 3], "labels": [x, 2, 3]}                                 # a plain-text row
    assert stop_check.eval_prompts([text, chat], [False, True]) == [([1, 2, 3, 4, 5, 6], [7, 8])]
    assert stop_check.eval_prompts([chat] * 20, [True] * 20, n=3) == [([1, 2, 3, 4, 5, 6], [7, 8])] * 3


def test_end_of_turn_is_the_templates_closing_token(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    from studio.core.datasets.templates import apply_choice

    tok = AutoTokenizer.from_pretrained(str(smol_tokenizer_dir))
    assert tok.convert_ids_to_tokens(stop_check.end_of_turn_id(tok)) == "<|im_end|>"
    apply_choice(tok, "alpaca")  # Alpaca ends an answer with eos
    assert stop_check.end_of_turn_id(tok) == tok.eos_token_id


@pytest.mark.parametrize(("share", "checked", "expect"), [
    (0.75, 8, "6 of 8 eval answers ended with EOS before the 40-token limit (75%)"),
    (0.0, 8, "0 of 8 eval answers ended with EOS before the 40-token limit (0%); most ran on to the limit"),
])
def test_end_of_run_line_in_studio_train(share, checked, expect, capsys):
    from studio.cli.train import ProgressPrinter

    ProgressPrinter()(RunFinished(status="completed", reason="Finished.", step=2, eos_share=share,
                                  eos_checked=checked, eos_limit=40))
    assert expect in capsys.readouterr().err
    assert stop_check.summary_line(None, 0) is None
