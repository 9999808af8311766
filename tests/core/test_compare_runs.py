from pathlib import Path

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
