"""Preference pairs: the shapes detected per row, each pair finding with its lines, the per-side token
checks through the chat template, length bias, duplicates and leakage, ``studio validate`` and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import datasets_helpers
import pytest
from datasets_helpers import alpaca, write_jsonl

from studio.cli import main
from studio.core.datasets.formats import RowShapeError, detect_row_format, to_example
from studio.core.datasets.paircheck import BIAS_MIN_PAIRS, BIAS_RATIO, BIAS_SHARE
from studio.core.datasets.pairs import LEAK_MIN_CHARS, to_pair
from studio.core.datasets.pipeline import check_files
from studio.core.datasets.render import render_example
from studio.core.datasets.scan import scan
from studio.core.datasets.validate import validate

smol_tokenizer = datasets_helpers.smol_tokenizer
smol_tokenizer_dir = datasets_helpers.smol_tokenizer_dir
DEMO = Path(__file__).resolve().parents[2] / "resources" / "datasets"


def _msgs(*turns: tuple[str, str]) -> list[dict]:
    return [{"role": r, "content": c} for r, c in turns]


def pair(i: int, chosen: str | None = None, rejected: str | None = None) -> dict:
    return {"prompt": f"What is the answer to question {i}?", "chosen": chosen or f"Answer {i}.",
            "rejected": rejected or f"Wrong {i}."}


def _report(tmp_path, rows, **kw):
    return validate(scan(write_jsonl(tmp_path / "p.jsonl", rows)), **kw)


def _finding(report, code):
    return next(f for f in report.findings if f.code == code)


def _codes(report) -> set[str]:
    return {f.code for f in report.findings}


def test_every_pair_shape_is_detected_per_row_and_normalised(tmp_path):
    rows = [
        pair(1),
        {"prompt": _msgs(("system", "Be brief."), ("user", "Q2?")), "chosen": _msgs(("assistant", "A2")),
         "rejected": _msgs(("assistant", "B2"))},
        {"prompt": "Q3?", "chosen": _msgs(("assistant", "A3")), "rejected": "B3"},
        {"chosen": _msgs(("user", "Q4?"), ("assistant", "A4")), "rejected": _msgs(("user", "Q4?"), ("assistant", "B4"))},
    ]
    assert [detect_row_format(r) for r in rows] == ["preference"] * 4
    p2, p3, p4 = (to_pair(r) for r in rows[1:])
    assert p2.prompt == (("system", "Be brief."), ("user", "Q2?")) and p2.answer("rejected") == "B2"
    assert (p3.question, p3.answer("chosen"), p3.answer("rejected")) == ("Q3?", "A3", "B3")
    # the shared leading turns are the prompt; the last assistant turn is each side's answer
    assert p4.shared_prefix and p4.prompt == (("user", "Q4?"),) and p4.chosen == (("assistant", "A4"),)
    assert p4.side("rejected").messages == (("user", "Q4?"), ("assistant", "B4"))
    # supervised training refuses a pair instead of training on one side of it
    with pytest.raises(RowShapeError, match="preference pair"):
        to_example(rows[0])
    report = _report(tmp_path, rows)
    assert report.format == "preference" and report.findings == []
    assert report.stats["formats"] == {"preference": 4}
    assert report.stats["trainable_rows"] == 4 and report.stats["preference"]["pairs"] == 4


def test_pairs_mixed_with_single_answer_rows_is_an_error_on_the_minority(tmp_path):
    report = _report(tmp_path, [pair(1), pair(2), alpaca(3), pair(4)])
    mixed = _finding(report, "format.mixed_pairs")
    assert (mixed.severity, mixed.lines, mixed.rows) == ("error", [3], [2])
    assert "3 preference pairs, 1 single-answer row" in mixed.message
    assert report.format == "mixed" and "format.mixed" not in _codes(report)


def test_identical_sides_are_an_error_naming_the_line(tmp_path):
    report = _report(tmp_path, [pair(1), pair(2, "Same.", "Same."), pair(3, "Same  answer.", " Same answer. ")])
    same = _finding(report, "pair.identical")
    assert (same.severity, same.lines) == ("error", [2, 3])
    assert "line 2: chosen and rejected are the same" in same.message
    assert any("differ only in spacing" in n for n in same.notes)
    assert report.exit_code == 1


def test_an_empty_side_is_an_error(tmp_path):
    rows = [pair(1), {"prompt": "Q?", "chosen": "A.", "rejected": "  "},
            {"prompt": "Q?", "chosen": _msgs(("assistant", "")), "rejected": _msgs(("assistant", "B"))}]
    empty = _finding(_report(tmp_path, rows), "pair.empty_side")
    assert (empty.severity, empty.lines) == ("error", [2, 3])
    assert "'rejected' has no answer text" in empty.notes[0] and "'chosen'" in empty.notes[1]


def test_shared_prefix_conversations_must_share_the_prompt(tmp_path):
    rows = [{"chosen": _msgs(("user", "Q1?"), ("assistant", "A")), "rejected": _msgs(("user", "Q2?"), ("assistant", "B"))}]
    mismatch = _finding(_report(tmp_path, rows), "pair.prompt_mismatch")
    assert (mismatch.severity, mismatch.lines) == ("error", [1])
    assert "turn 1 differs and is a user turn" in mismatch.message


def test_a_pair_without_prompt_needs_message_lists(tmp_path):
    missing = _finding(_report(tmp_path, [{"chosen": "A", "rejected": "B"}, {"prompt": "Q?", "chosen": "A"}]),
                       "field.missing")
    assert missing.lines == [1, 2]
    assert "has no 'prompt'" in missing.notes[0] and "no 'rejected'" in missing.notes[1]


def test_a_prompt_leaked_into_an_answer_is_a_warning(tmp_path):
    question = "What is the capital city of France?"
    short = "Why?"
    assert len(short) < LEAK_MIN_CHARS <= len(question)
    rows = [pair(1), {"prompt": question, "chosen": "Paris.", "rejected": f"{question.upper()} Lyon."},
            {"prompt": short, "chosen": "Because. Why? Because.", "rejected": "No."}]
    leak = _finding(_report(tmp_path, rows), "pair.prompt_in_answer")
    assert (leak.severity, leak.lines) == ("warning", [2])
    assert "the rejected answer contains the prompt" in leak.message


def test_length_bias_reports_the_ratio_and_share_and_warns_past_the_threshold(tmp_path):
    n = BIAS_MIN_PAIRS
    # chosen twice as long in every pair: both figures are past their thresholds
    biased = [pair(i, f"Answer number {i:03d} is long.", f"No {i:03d}.") for i in range(n)]
    report = _report(tmp_path, biased)
    bias = _finding(report, "pair.length_bias")
    stats = report.stats["preference"]
    assert bias.severity == "warning" and len(bias.lines) == n
    assert stats["length_ratio"] >= BIAS_RATIO and stats["chosen_longer_share"] == 1.0
    assert f"ratio {stats['length_ratio']:.2f}" in bias.message and f"in 100% of {n} pairs" in bias.message
    # the same pairs with the sides of half of them swapped: no bias, the figures still reported
    balanced = [pair(i, r["rejected"], r["chosen"]) if i % 2 else r for i, r in enumerate(biased)]
    report = _report(tmp_path, balanced)
    assert "pair.length_bias" not in _codes(report)
    assert report.stats["preference"]["chosen_longer_share"] < BIAS_SHARE
    # too few pairs to call it systematic
    assert "pair.length_bias" not in _codes(_report(tmp_path, biased[: n - 1]))


def test_duplicates_are_keyed_on_the_whole_pair(tmp_path):
    rows = [pair(1), pair(1), pair(1, rejected="Other wrong."), {**pair(1), "chosen": "  ANSWER 1. "}]
    report = _report(tmp_path, rows)
    assert _finding(report, "dup.exact").lines == [2]
    assert _finding(report, "dup.normalized").lines == [4]   # case and spacing only; line 3 is another pair


def test_leakage_of_pair_prompts_into_the_eval_set(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [pair(1), pair(2), pair(3)])
    evals = write_jsonl(tmp_path / "eval.jsonl", [pair(9), pair(2, "Another.", "Worse.")])
    leak = _finding(check_files(train, eval_paths=[evals]), "leak.train_eval")
    assert leak.lines == [2] and "eval.jsonl line 2" in leak.message
    ratio = check_files(write_jsonl(tmp_path / "r.jsonl", [pair(i % 10) for i in range(40)]), eval_ratio=0.25)
    assert "leak.train_eval" in _codes(ratio)


def test_invalid_unicode_in_a_side_keeps_the_pair_away_from_the_tokenizer(tmp_path, smol_tokenizer):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(pair(1)) + "\n" + '{"prompt": "Q?", "chosen": "A \\ud800", "rejected": "B"}\n',
                    encoding="utf-8")
    result = scan(path)
    assert result.pair(1) is None and result.pair(0) is not None
    report = validate(result, tokenizer=smol_tokenizer, max_len=64)
    assert _finding(report, "text.invalid_unicode").lines == [2] and report.token_checked


def test_each_side_is_checked_for_truncation_through_the_chat_template(tmp_path, smol_tokenizer):
    max_len = 48
    long_answer = " ".join(f"word{i}" for i in range(60))
    rows = [
        pair(1),
        pair(2, rejected=long_answer),                                  # the rejected answer is cut partly
        {"prompt": long_answer, "chosen": "Yes.", "rejected": "No."},   # the prompt fills max_len: both lost
    ]
    report = _report(tmp_path, rows, tokenizer=smol_tokenizer, max_len=max_len)
    cut, lost = _finding(report, "pair.answer_cut"), _finding(report, "pair.answer_lost")
    assert (cut.severity, cut.lines) == ("warning", [2]) and "rejected side" in cut.message
    assert (lost.severity, lost.lines) == ("error", [3, 3])
    assert any("chosen answer starts after token" in n for n in lost.notes)
    # the counts are the trainer's own renderer's, side by side
    side = to_pair(rows[1]).side("rejected")
    rendered = render_example(side, smol_tokenizer, max_len)
    assert f"rejected side {rendered.full_length} tokens" in cut.message
    stats = report.stats["preference"]
    assert stats["rejected_mean_tokens"] > stats["chosen_mean_tokens"]
    assert report.stats["tokens"]["cutoff"] == max_len and report.token_checked


def test_validate_cli_reports_preference_with_pair_stats(tmp_path, capsys, smol_tokenizer_dir):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(1), pair(2, "Same.", "Same.")])
    rc = main(["validate", str(path), "--model", str(smol_tokenizer_dir), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["format"] == "preference" and out["token_checked"]
    assert [f["code"] for f in out["findings"]] == ["pair.identical"]
    pref = out["stats"]["preference"]
    assert pref["pairs"] == 2 and pref["chosen_mean_chars"] == (len("Answer 1.") + len("Same.")) / 2
    assert pref["rejected_mean_chars"] == (len("Wrong 1.") + len("Same.")) / 2
    assert main(["validate", str(path)]) == 1
    assert "preference pairs: 2, mean answer length chosen" in capsys.readouterr().out


def test_demo_preference_set_is_what_its_writer_writes_and_passes_its_own_checks(monkeypatch, smol_tokenizer,
                                                                                 smol_tokenizer_dir):
    import importlib
    import random

    monkeypatch.syspath_prepend(str(DEMO))
    writer = importlib.import_module("make_demo_preference")
    rows = writer.pairs(random.Random(7))
    train, evals = DEMO / "demo_pref_train.jsonl", DEMO / "demo_pref_eval.jsonl"
    assert [json.loads(line) for line in train.read_text("utf-8").splitlines()] == rows[: writer.TRAIN_PAIRS]
    assert [json.loads(line) for line in evals.read_text("utf-8").splitlines()] == rows[writer.TRAIN_PAIRS:]
    assert all(json.loads(r["chosen"]).keys() == {"answer", "category", "confidence"} for r in rows)
    report = check_files(train, eval_paths=[evals], tokenizer=smol_tokenizer, max_len=512, model_dir=smol_tokenizer_dir)
    assert report.format == "preference" and report.token_checked
    assert report.findings == [], [f.message for f in report.findings]
    stats = report.stats["preference"]
    assert stats["pairs"] == writer.TRAIN_PAIRS
    assert stats["length_ratio"] < BIAS_RATIO and stats["chosen_longer_share"] < BIAS_SHARE


def test_cleaning_a_preference_file_keeps_its_pairs_and_drops_the_repeats(tmp_path):
    from studio.core.datasets.clean import plan_clean

    result = scan(write_jsonl(tmp_path / "p.jsonl", [pair(1), pair(2), pair(1), pair(3, "Same.", "Same.")]))
    plan, _lines = plan_clean(result, {"drop_exact_duplicates", "drop_untrainable"}, validate(result))
    assert plan.keep == [0, 1]
    assert plan.dropped == {"exact_duplicate": 1, "untrainable": 1}
