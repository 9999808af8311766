"""Before/after report of every run: the same measures on the eval split for the model a run starts from
and the weights it saves, journaled, on RunFinished, and kept in the Library entry's lineage. Each side
is checked against an independent computation on a freshly loaded base or adapter."""

from __future__ import annotations

import json
import math

import pytest

from studio.core.config import RunConfig, apply_overrides
from studio.core.control import Control
from studio.core.library.registry import get_entry
from studio.core.training import before_after, runs, stop_check
from studio.core.training.engine import train

PAIRS = [
    ("What is 2 + 2?", "4", "It might be 5, I am not sure at all."),
    ("Name a primary colour.", "Red.", "Purple, probably, or maybe green."),
    ("What is the capital of France?", "Paris.", "London, I think, or Berlin."),
    ("How many legs does a spider have?", "Eight.", "Six or so, I would guess."),
]


def _cfg(model_dir, train_file, eval_file, **over) -> RunConfig:
    base = {
        "model.path": str(model_dir), "dataset.train": [str(train_file)], "dataset.eval": [str(eval_file)],
        "dataset.eval_ratio": 0.0, "training.max_steps": 3, "training.batch_size": 2, "training.max_seq_len": 96,
        "training.eval_steps": 0, "training.save_steps": 0, "training.lr": 1e-3,
    }
    base.update(over)
    return apply_overrides(RunConfig(), base)


def _events(run_dir, kind):
    return [e for e in runs.read_events(run_dir) if e.kind == kind]


def _logprob(model, prompt, answer) -> float:
    """An independent mean log-probability per answer token, token by token from the full-sequence logits."""
    import torch

    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(logp[len(prompt) + i - 1, tok]) for i, tok in enumerate(answer)) / len(answer)


def test_sft_run_reports_both_sides_and_keeps_them_in_the_lineage(tiny_model_dir, demo_train, demo_eval, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.core.training.data import build_features

    run = tmp_path / "run"
    cfg = _cfg(tiny_model_dir, demo_train, demo_eval)
    result = train(cfg, run_dir=run)
    [finished] = _events(run, "run_finished")
    rep = finished.before_after
    [step0] = [e for e in _events(run, "eval") if e.step == 0]
    assert rep["eval_loss"] == {"before": step0.eval_loss, "after": finished.eval_loss}
    assert rep["perplexity"]["after"] == pytest.approx(math.exp(finished.eval_loss))
    assert rep["eos_share"]["after"] == finished.eos_share
    assert "pair_accuracy" not in rep
    checks = {e.phase: e for e in _events(run, "model_check")}
    assert checks["before"].step == 0 and checks["after"].step == finished.step
    # The demo's answers are one-line JSON objects: short enough to be scored for exact match.
    assert checks["before"].values["exact_checked"] == stop_check.MAX_PROMPTS
    assert rep["exact_match"] == {"before": checks["before"].values["exact_match"],
                                  "after": checks["after"].values["exact_match"]}
    assert get_entry(result.library_id).metrics["before_after"] == rep

    # Each side again, from a fresh load: "before" is the base, "after" the saved adapter.
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    feats = build_features(cfg, tok)
    prompts = stop_check.eval_prompts(feats.eval, feats.eval_chat)
    stops = stop_check.stop_ids(tok, str(tiny_model_dir))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    fresh_before = stop_check.measure(base, tok, prompts, stops)
    assert (fresh_before.share, fresh_before.exact_match) == (rep["eos_share"]["before"], rep["exact_match"]["before"])
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(result.adapter_dir))
    fresh_after = stop_check.measure(tuned, tok, prompts, stops)
    assert (fresh_after.share, fresh_after.exact_match) == (rep["eos_share"]["after"], rep["exact_match"]["after"])


def test_exact_match_compares_short_answers_as_text(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smol_tokenizer_dir))
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    paris, rome = tok.encode("Paris."), tok.encode("Rome.")
    long_answer = tok.encode(" word" * (stop_check.SHORT_ANSWER_TOKENS + 5))
    prompts = [stop_check.EvalPrompt([1], [*paris, eot]), stop_check.EvalPrompt([1], [*rome, eot]),
               stop_check.EvalPrompt([1], [*long_answer, eot])]
    # The first answer says the reference with a trailing space and keeps going after its stop id (ignored);
    # the second says something else; the long one is not scored even though it matches.
    answers = [[*tok.encode("Paris. "), eot, *tok.encode("more")], [*paris, eot], [*long_answer, eot]]
    assert stop_check.exact_matches(tok, prompts, answers, {eot}) == (1, 2)


def test_pair_accuracy_is_the_share_of_pairs_whose_chosen_answer_is_likelier(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    pairs = [{"prompt_ids": tok.encode(p), "chosen_ids": tok.encode(" " + c), "rejected_ids": tok.encode(" " + r)}
             for p, c, r in PAIRS]
    wins = [_logprob(model, p["prompt_ids"], p["chosen_ids"]) > _logprob(model, p["prompt_ids"], p["rejected_ids"])
            for p in pairs]
    assert before_after.pair_accuracy(model, pairs) == (sum(wins) / len(pairs), len(pairs))
    swapped = [{**p, "chosen_ids": p["rejected_ids"], "rejected_ids": p["chosen_ids"]} for p in pairs]
    assert before_after.pair_accuracy(model, swapped) == (1 - sum(wins) / len(pairs), len(pairs))
    assert before_after.pair_accuracy(model, []) is None
    assert before_after.pair_accuracy(model, pairs, should_stop=lambda: True) is None


@pytest.fixture()
def pair_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "chosen": r, "rejected": c}) + "\n" for p, c, r in PAIRS))
    return path


def test_dpo_run_reports_pair_accuracy_of_base_and_adapter(tiny_model_dir, pair_file, tmp_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.core.training.pair_data import build_pair_features

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    cfg = _cfg(tiny_model_dir, pair_file, pair_file, objective="dpo", **{"training.lr": 5e-3})
    result = train(cfg, run_dir=run)
    rep = _events(run, "run_finished")[0].before_after
    assert "perplexity" not in rep  # a DPO loss is not a next-token loss
    checks = {e.phase: e.values for e in _events(run, "model_check")}
    assert checks["before"]["pairs_checked"] == checks["after"]["pairs_checked"] == len(PAIRS)
    assert rep["eval_loss"]["after"] < rep["eval_loss"]["before"] == pytest.approx(math.log(2), abs=1e-4)
    assert get_entry(result.library_id).metrics["before_after"] == rep

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    pairs = build_pair_features(cfg, tok).eval
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(result.adapter_dir))
    for side, model in (("before", base), ("after", tuned)):
        wins = [_logprob(model, p["prompt_ids"], p["chosen_ids"]) > _logprob(model, p["prompt_ids"], p["rejected_ids"])
                for p in pairs]
        assert rep["pair_accuracy"][side] == sum(wins) / len(pairs)


def test_a_resumed_run_is_compared_with_the_model_it_started_from(tiny_model_dir, demo_train, demo_eval, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(tiny_model_dir, demo_train, demo_eval, **{"training.max_steps": 4})
    control = Control()

    def stop_at_two(ev):
        if ev.kind == "step" and ev.step == 2:
            control.request_stop()

    first = train(cfg, run_dir=run, emit=stop_at_two, control=control)
    assert first.status == "stopped"
    before = [e for e in _events(run, "model_check") if e.phase == "before"]
    train(cfg, run_dir=run, resume=True)
    rep = _events(run, "run_finished")[-1].before_after
    assert len([e for e in _events(run, "model_check") if e.phase == "before"]) == 1  # not measured again
    assert rep["eos_share"]["before"] == before[0].values["eos_share"]
    assert rep["eval_loss"]["before"] == next(e for e in _events(run, "eval") if e.step == 0).eval_loss


def test_report_rows_and_lines():
    rep = before_after.report({"eos_share": 0.25, "eos_checked": 8}, {"eos_share": 1.0, "exact_match": 0.5},
                              eval_before=2.0, eval_after=1.0, next_token_loss=True)
    assert rep == {"eval_loss": {"before": 2.0, "after": 1.0},
                   "perplexity": {"before": pytest.approx(math.exp(2)), "after": pytest.approx(math.exp(1))},
                   "exact_match": {"after": 0.5}, "eos_share": {"before": 0.25, "after": 1.0}}
    lines = before_after.report_lines(rep)
    assert lines[1] == "  Eval loss: 2.0000 → 1.0000"
    assert "  Exact match (short answers): — → 50%" in lines
    assert "  Answers end with EOS: 25% → 100%" in lines
    assert before_after.better("eval_loss", 2.0, 1.0) and not before_after.better("eos_share", 1.0, 0.25)
    assert before_after.better("exact_match", 0.5, 0.5) is None
    assert before_after.report_lines({}) == []


def test_studio_train_prints_the_report_at_the_end(capsys):
    from studio.cli.train import ProgressPrinter
    from studio.core.training.events import RunFinished

    rep = {"eval_loss": {"before": 2.0, "after": 1.25}, "pair_accuracy": {"before": 0.25, "after": 0.75}}
    ProgressPrinter()(RunFinished(status="completed", reason="Finished.", step=4, before_after=rep))
    err = capsys.readouterr().err
    assert "before → after, on the eval split:" in err
    assert "Eval loss: 2.0000 → 1.2500" in err and "Prefers the chosen answer: 25% → 75%" in err


@pytest.mark.parametrize(("objective", "advice"), [("dpo", "larger beta"), ("sft", "carries loss")])
def test_a_fall_in_answers_that_stop_is_a_warning_with_what_to_do(objective, advice):
    fell = {"eos_share": {"before": 0.875, "after": 0.125}}
    [line] = before_after.warnings(fell, objective)
    assert "88% → 12%" in line and advice in line
    assert before_after.warnings({"eos_share": {"before": 0.875, "after": 0.75}}, objective) == []
    assert before_after.warnings({"eos_share": {"after": 0.0}}, objective) == []
