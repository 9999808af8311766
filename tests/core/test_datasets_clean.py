"""Cleaned copies: next to the original, atomic, UTF-8, and the original never changes."""

from __future__ import annotations

import hashlib
import json

import datasets_helpers
import pytest
from datasets_helpers import alpaca, write_jsonl

from studio.core.datasets.clean import cleaned_path, plan_clean, write_cleaned_copy
from studio.core.datasets.scan import scan
from studio.core.datasets.validate import validate
from studio.core.errors import StudioError

smol_tokenizer = datasets_helpers.smol_tokenizer
smol_tokenizer_dir = datasets_helpers.smol_tokenizer_dir


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cleaned_copy_fixes_what_it_says_and_leaves_the_original(tmp_path):
    rows = [alpaca(1), alpaca(1), {"instruction": " padded ", "output": "kept. "}, {"instruction": "q", "output": ""},
            {"instruction": 5, "output": "wrong type."}, alpaca(2)]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with open(path, "a") as fh:
        fh.write("not json\n")
    before = _sha(path)
    result = scan(path)
    out = write_cleaned_copy(result, {"drop_exact_duplicates", "drop_empty_answers", "strip_whitespace", "drop_untrainable"})
    assert out == tmp_path / "data.cleaned.jsonl" == cleaned_path(path)
    assert _sha(path) == before
    kept = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert kept == [alpaca(1), {"instruction": "padded", "output": "kept."}, alpaca(2)]
    # unchanged rows keep their exact original text
    assert out.read_text("utf-8").splitlines()[0] == path.read_text().splitlines()[0]
    assert {p.name for p in tmp_path.iterdir()} == {"data.jsonl", "data.cleaned.jsonl"}  # no temp leftovers
    recheck = validate(scan(out))
    assert recheck.exit_code == 0 and not recheck.findings


def test_plan_previews_the_drops(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [alpaca(1), alpaca(1), alpaca(1), {"instruction": "q", "output": ""}])
    plan, lines = plan_clean(scan(path), {"drop_exact_duplicates", "drop_empty_answers"})
    assert plan.keep == [0] and plan.dropped == {"exact_duplicate": 2, "empty_answer": 1} and len(lines) == 1


def test_latin1_source_becomes_utf8(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_bytes('{"instruction": "Crème brûlée?", "output": "Oui."}\n'.encode("latin-1"))
    out = write_cleaned_copy(scan(path), set())
    assert json.loads(out.read_bytes().decode("utf-8"))["instruction"] == "Crème brûlée?"


def test_never_overwrites_the_original(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [alpaca(1)])
    before = _sha(path)
    with pytest.raises(StudioError, match="overwrite the original"):
        write_cleaned_copy(scan(path), set(), out=path)
    assert _sha(path) == before


def test_unknown_action_and_unreadable_dataset_are_clear_errors(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [alpaca(1)])
    with pytest.raises(StudioError, match="Unknown clean-up action"):
        write_cleaned_copy(scan(path), {"drop_everything"})
    with pytest.raises(StudioError, match="nothing to clean"):
        write_cleaned_copy(scan(tmp_path / "missing.jsonl"))


def test_drop_untrainable_uses_the_token_report(tmp_path, smol_tokenizer):
    rows = [alpaca(1), {"instruction": "word " * 300, "output": "cut away."}, alpaca(2)]
    result = scan(write_jsonl(tmp_path / "t.jsonl", rows))
    report = validate(result, tokenizer=smol_tokenizer, max_len=64)
    assert [f.lines for f in report.findings if f.code == "tokens.no_trained_tokens"] == [[2]]
    out = write_cleaned_copy(result, {"drop_untrainable"}, report=report)
    assert [json.loads(x) for x in out.read_text().splitlines()] == [alpaca(1), alpaca(2)]


def test_cleaned_copy_keeps_lone_surrogates_escaped(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"instruction": "a\\ud800 ", "output": "b."}\n')
    out = write_cleaned_copy(scan(path), {"strip_whitespace"})
    assert json.loads(out.read_text("utf-8"))["instruction"] == "a\ud800"
