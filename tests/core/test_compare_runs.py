from pathlib import Path

from studio.core.training import compare, runs
from studio.core.training.compare import ranked, recommend
from studio.core.training.runs import RunSummary


def _run(name, loss, params):
    return RunSummary(run_dir=Path(name), status="completed", name=name, best_eval_loss=loss, trainable_params=params)


def test_lowest_loss_wins_when_no_smaller_run_is_close():
    runs = [_run("a", 1.20, 1000), _run("b", 1.00, 1000), _run("c", 1.50, 100)]
    assert [r.name for r in ranked(runs)] == ["b", "a", "c"]
    assert recommend(runs).run.name == "b"


def test_much_smaller_adapter_within_tolerance_is_recommended():
    runs = [_run("big", 1.000, 8000), _run("small", 1.005, 2000)]
    rec = recommend(runs)
    assert rec.run.name == "small" and "4.0x fewer" in rec.why


def test_runs_without_eval_are_not_ranked():
    assert recommend([_run("x", None, 10)]) is None


def _pref(name, objective, accuracy, margin, loss=0.5):
    return RunSummary(run_dir=Path(name), status="completed", name=name, objective=objective, best_eval_loss=loss,
                      best_eval_accuracy=accuracy, best_eval_margin=margin, trainable_params=1000)


def test_preference_runs_rank_by_accuracy_then_margin_not_by_loss():
    runs = [_pref("low-loss", "dpo", 0.50, 0.40, loss=0.10), _pref("best", "dpo", 0.90, 0.05, loss=0.69),
            _pref("tied-wider", "dpo", 0.90, 0.30, loss=0.70), _pref("no-eval", "dpo", None, None)]
    assert [r.name for r in ranked(runs)] == ["tied-wider", "best", "low-loss"]
    rec = recommend(runs)
    assert rec.run.name == "tied-wider"
    assert "eval preference accuracy 90%" in rec.why and "reward margin +0.300 decided" in rec.why
    assert "loss" not in rec.why


def test_preference_recommendation_names_accuracy_when_it_alone_decides():
    rec = recommend([_pref("a", "orpo", 0.75, 0.1), _pref("b", "orpo", 0.5, 0.9)])
    assert rec.run.name == "a" and rec.why == "a: highest eval preference accuracy 75% (reward margin +0.100)."


def test_mixed_objectives_are_ranked_within_each_and_the_text_says_so():
    runs = [_pref("dpo-a", "dpo", 0.6, 0.1), _run("sft-a", 1.2, 1000), _pref("orpo-a", "orpo", 0.8, 0.2),
            _pref("dpo-b", "dpo", 0.9, 0.1, loss=2.0), _run("sft-b", 0.9, 1000)]
    groups = compare.groups(runs)
    assert [(g.objective, [r.name for r in g.runs]) for g in groups] == [
        ("sft", ["sft-b", "sft-a"]), ("dpo", ["dpo-b", "dpo-a"]), ("orpo", ["orpo-a"])]
    assert [r.name for r in ranked(runs)] == ["sft-b", "sft-a", "dpo-b", "dpo-a", "orpo-a"]
    rec = recommend(runs)
    assert [r.name for r in rec.picks] == ["sft-b", "dpo-b", "orpo-a"]
    assert rec.why.startswith("Ranked within each objective")
    assert "SFT: sft-b: lowest eval loss" in rec.why and "DPO: dpo-b: highest eval preference accuracy" in rec.why
    assert compare.score_text(runs[3]) == "90%, margin +0.100" and compare.score_text(runs[4]) == "0.9000"


def _journal(run_dir: Path, objective: str | None, evals, config_objective: str | None = None) -> Path:
    """A run folder as the engine leaves it; ``objective`` None writes RunStarted as older versions did."""
    import json

    from studio.core.training.events import Evaluation, RunStarted

    run_dir.mkdir(parents=True)
    started = RunStarted(run_id=run_dir.name, run_dir=str(run_dir), model="m", dataset=["d"], dataset_fingerprint="",
                         method="lora", device="cpu", total_steps=4, train_rows=8, eval_rows=2,
                         trainable_params=10, total_params=100, objective=objective or "sft", t=1.0)
    lines = [started.to_dict()]
    if objective is None:
        del lines[0]["objective"]
    lines += [Evaluation(step=step, eval_loss=loss, perplexity=float("nan"), rewards=rewards, t=2.0 + step).to_dict()
              for step, loss, rewards in evals]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines), encoding="utf-8")
    if config_objective:
        (run_dir / "config.yaml").write_text(f"objective: {config_objective}\n", encoding="utf-8")
    return run_dir


def test_summary_keeps_the_best_adapter_eval_by_accuracy_then_margin_not_the_bases(tmp_path):
    evals = [(0, 0.69, {"accuracy": 1.0, "margin": 0.0}),   # the base at step 0: not the adapter's score
             (2, 0.60, {"accuracy": 0.5, "margin": 0.2}), (4, 0.65, {"accuracy": 0.75, "margin": 0.1}),
             (6, 0.55, {"accuracy": 0.75, "margin": 0.05})]
    s = runs.summarize(_journal(tmp_path / "r", "orpo", evals))
    assert s.objective == "orpo" and (s.best_eval_accuracy, s.best_eval_margin) == (0.75, 0.1)
    assert s.best_eval_loss == 0.55


def test_old_journals_without_an_objective_still_read(tmp_path):
    from studio.core.training.events import event_from_dict

    sft = _journal(tmp_path / "sft", None, [(0, 2.0, {}), (2, 1.0, {})])
    assert runs.read_events(sft)[0].objective == "sft"
    assert runs.summarize(sft).objective == "sft" and runs.summarize(sft).best_eval_accuracy is None
    pref = [(0, 0.69, {"accuracy": 0.0}), (2, 0.6, {"accuracy": 0.5, "margin": 0.01})]
    old_dpo = runs.summarize(_journal(tmp_path / "dpo", None, pref, config_objective="dpo"))
    assert old_dpo.objective == "dpo" and old_dpo.best_eval_accuracy == 0.5
    no_config = runs.summarize(_journal(tmp_path / "gone", None, pref))
    assert no_config.objective == "preference" and compare.groups([no_config])[0].measure.startswith("best eval preference")
    assert event_from_dict({"type": "run_started", **{k: v for k, v in runs.read_events(sft)[0].to_dict().items()
                                                       if k not in ("type", "objective")}}).objective == "sft"
