"""Dataset-wide checks: duplicates, leakage, outliers, style mixes, chat structure, stats, split."""

from __future__ import annotations

import json
import time

import datasets_helpers
from datasets_helpers import alpaca, write_jsonl

from studio.core.datasets.pipeline import check_files
from studio.core.datasets.scan import scan
from studio.core.datasets.split import split_indices
from studio.core.datasets.validate import histogram, validate

smol_tokenizer = datasets_helpers.smol_tokenizer


def _report(tmp_path, rows, name="d.jsonl", **kw):
    return validate(scan(write_jsonl(tmp_path / name, rows)), **kw)


def _finding(report, code):
    return next(f for f in report.findings if f.code == code)


def test_exact_and_normalised_duplicates(tmp_path):
    rows = [alpaca(1), alpaca(2), alpaca(1), {"instruction": "  QUESTION 1? ", "input": "", "output": "answer  1."}]
    report = _report(tmp_path, rows)
    exact, norm = _finding(report, "dup.exact"), _finding(report, "dup.normalized")
    assert (exact.lines, exact.rows, exact.severity) == ([3], [2], "warning")
    assert "line 3 repeats line 1" in exact.message
    assert norm.lines == [4]
    assert report.exit_code == 0


def test_ten_thousand_duplicates_are_one_finding(tmp_path):
    t0 = time.perf_counter()
    report = _report(tmp_path, [alpaca(1)] * 10_000)
    assert [f.code for f in report.findings] == ["dup.exact"]
    assert len(report.findings[0].lines) == 9_999
    assert time.perf_counter() - t0 < 10


def test_leakage_against_an_eval_file(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [alpaca(1), alpaca(2), alpaca(3)])
    evals = write_jsonl(tmp_path / "eval.jsonl", [alpaca(9), {"instruction": "question 2?", "output": "other."}])
    report = check_files(train, eval_paths=[evals])
    leak = _finding(report, "leak.train_eval")
    assert leak.file == str(train) and leak.lines == [2]
    assert "eval.jsonl line 2" in leak.message
    assert report.stats["split"] == {"source": "file", "train": 3, "eval": 2}


def test_split_is_deterministic_and_is_the_one_the_trainer_holds_out(tmp_path, smol_tokenizer):
    from studio.core.config import RunConfig, apply_overrides
    from studio.core.training.data import build_features

    train, held = split_indices(100, 0.2, seed=7)
    assert split_indices(100, 0.2, seed=7) == (train, held)
    assert split_indices(100, 0.2, seed=8) != (train, held)
    assert len(held) == 20 and sorted(train + held) == list(range(100))
    # The trainer's eval rows are the rows these indices name, in row order.
    rows = [alpaca(i) for i in range(30)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = apply_overrides(RunConfig(), {"dataset.train": [str(path)], "dataset.eval_ratio": 0.2,
                                        "dataset.split_seed": 7})
    features = build_features(cfg, smol_tokenizer)
    keep, out = split_indices(30, 0.2, seed=7)
    answers = [smol_tokenizer.decode(f["input_ids"]) for f in features.eval]
    assert len(answers) == len(out) and all(rows[i]["output"] in a for i, a in zip(out, answers, strict=True))
    assert len(features.train) == len(keep)


def test_leakage_inside_a_ratio_split(tmp_path):
    rows = [alpaca(i % 30) for i in range(60)]   # every prompt twice
    report = _report(tmp_path, rows, eval_ratio=0.25, split_seed=1)
    leak = _finding(report, "leak.train_eval")
    _, held = split_indices(60, 0.25, 1)
    assert leak.rows and not set(leak.rows) & set(held)
    assert report.stats["split"]["eval"] == len(held)


def test_length_outliers_beyond_two_sigma(tmp_path):
    rows = [alpaca(i, "word " * 20 + ".") for i in range(40)] + [alpaca(99, "word " * 2000 + ".")]
    report = _report(tmp_path, rows)
    out = _finding(report, "length.outlier")
    assert out.lines == [41] and "characters" in out.message


def test_a_tight_length_distribution_has_no_outliers(tmp_path):
    """56 tokens against a typical 60 ± 2 is beyond 2σ but neither pasted junk nor cut-off text."""
    rows = [alpaca(i, "word " * (20 + i % 3) + ".") for i in range(40)] + [alpaca(99, "word " * 16 + ".")]
    report = _report(tmp_path, rows)
    assert not [f for f in report.findings if f.code == "length.outlier"]
    short = _report(tmp_path, [*rows, alpaca(98, "w.")], name="short.jsonl")
    assert _finding(short, "length.outlier").lines == [42]


def test_style_mixes_flag_the_minority(tmp_path):
    rows = [alpaca(i) for i in range(20)] + [alpaca(20, "Answer with space. "), alpaca(21, "no full stop")]
    report = _report(tmp_path, rows)
    assert _finding(report, "style.trailing_whitespace").lines == [21]
    assert _finding(report, "style.ending_punctuation").lines == [22]
    balanced = _report(tmp_path, [alpaca(i, "x." if i % 2 else "x") for i in range(20)], name="b.jsonl")
    assert not [f for f in balanced.findings if f.code.startswith("style.")]


def test_conversation_checks_point_at_each_row(tmp_path):
    def m(*roles):
        return {"messages": [{"role": r, "content": f"{r} says hi."} for r in roles]}

    rows = [m("user", "assistant"), m("system", "user", "assistant", "user"), m("user", "user", "assistant"),
            m("assistant", "user", "assistant"), m("user", "system", "assistant"), m("user"), m("user", "assistant")]
    report = _report(tmp_path, rows)
    assert _finding(report, "chat.last_not_assistant").lines == [2]
    assert _finding(report, "chat.consecutive_role").lines == [3]
    assert _finding(report, "chat.role_order").lines == [4, 5]
    assert _finding(report, "chat.no_assistant").lines == [6]
    assert _finding(report, "chat.no_assistant").severity == "error"
    assert report.exit_code == 1


def test_empty_answer_is_an_error_and_empty_prompt_a_warning(tmp_path):
    report = _report(tmp_path, [alpaca(1), {"instruction": "q", "output": "   "}, {"instruction": "", "output": "a."},
                                {"prompt": "p", "completion": ""}, {"text": ""}])
    assert _finding(report, "answer.empty").lines == [2, 4, 5]
    assert _finding(report, "field.empty").lines == [3]
    assert _finding(report, "field.empty").severity == "warning"


def test_stats_are_plain_data(tmp_path):
    rows = [alpaca(i) for i in range(10)] + [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b."},
                                                            {"role": "user", "content": "c"}, {"role": "assistant", "content": "d."}]}]
    report = _report(tmp_path, rows)
    stats = json.loads(json.dumps(report.to_dict()))["stats"]
    assert stats["formats"] == {"alpaca": 10, "messages": 1}
    assert stats["turns"] == {"2": 10, "4": 1}
    assert sum(stats["answer_chars"]["counts"]) == 11
    assert stats["tokens"] is None


def test_histogram_puts_the_cutoff_on_an_edge():
    h = histogram([1, 5, 100, 600, 2000], cutoff=512)
    assert 512 in h["edges"] and h["edges"][-1] == 2001 and sum(h["counts"]) == 5
    assert h["counts"][-1] == 2   # the two rows beyond the cut-off
    assert histogram([])["counts"] == []
