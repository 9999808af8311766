"""``studio validate``: JSON for programs, readable lines for people, exit codes for scripts."""

from __future__ import annotations

import json

import datasets_helpers
from datasets_helpers import alpaca, write_jsonl

from studio.cli import main

smol_tokenizer_dir = datasets_helpers.smol_tokenizer_dir


def _run(capsys, *argv):
    rc = main(["validate", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def test_clean_file_exits_zero_with_the_json_contract(tmp_path, capsys):
    path = write_jsonl(tmp_path / "ok.jsonl", [alpaca(i) for i in range(5)])
    rc, out, _ = _run(capsys, path, "--json")
    report = json.loads(out)
    assert rc == 0
    assert {"format", "rows", "findings", "fingerprint", "stats"} <= report.keys()
    assert (report["format"], report["rows"], report["findings"]) == ("alpaca", 5, [])
    assert len(report["fingerprint"]) == 64


def test_human_output_names_file_line_severity_and_code(tmp_path, capsys):
    path = write_jsonl(tmp_path / "bad.jsonl", [alpaca(1), {"instruction": "q", "output": ""}])
    rc, out, _ = _run(capsys, path)
    assert rc == 1
    assert f"{path}:2  ERROR   answer.empty  1 row has an empty answer" in out
    assert out.strip().endswith("1 error(s), 0 warning(s): has errors.")


def test_model_folder_turns_on_token_checks(tmp_path, capsys, smol_tokenizer_dir):
    path = write_jsonl(tmp_path / "t.jsonl", [alpaca(1), {"instruction": "word " * 400, "output": "gone."}])
    rc, out, _ = _run(capsys, path, "--model", smol_tokenizer_dir, "--max-len", 64, "--json")
    report = json.loads(out)
    assert rc == 1 and report["token_checked"]
    codes = {f["code"]: f for f in report["findings"]}
    assert codes["tokens.no_trained_tokens"]["lines"] == [2]
    assert report["stats"]["tokens"]["cutoff"] == 64


def test_eval_file_and_column_map(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", [{"q": f"Q{i}", "a": f"A{i}."} for i in range(4)])
    evals = write_jsonl(tmp_path / "eval.jsonl", [{"q": "Q2", "a": "other."}])
    rc, out, _ = _run(capsys, train, "--eval", evals, "--map", "prompt=q", "--map", "answer=a", "--json")
    report = json.loads(out)
    assert rc == 0 and report["format"] == "prompt_completion"
    assert [f["code"] for f in report["findings"]] == ["leak.train_eval"]


def test_bad_arguments_are_messages_not_tracebacks(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", [alpaca(1)])
    rc, _, err = _run(capsys, path, "--map", "nonsense")
    assert rc == 2 and "--map" in err
    rc, _, err = _run(capsys, path, "--model", tmp_path / "no_model_here")
    assert rc == 2 and "Model folder not found" in err
    empty_model = tmp_path / "empty_model"
    empty_model.mkdir()
    rc, out, _ = _run(capsys, path, "--model", empty_model, "--json")
    assert rc == 2 and "tokenizer" in json.loads(out)["error"]
