"""``studio compare``: JSON shape, the table, exit codes and messages for unusable input."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
from pathlib import Path

import pytest
from _lib_fixtures import lib_adapter, lib_base, make_adapter, make_base, one_thread  # noqa: F401

from studio.cli import main
from studio.core.library import registry


@pytest.fixture(scope="module")
def second_adapter(tmp_path_factory, lib_base) -> Path:
    return make_adapter(lib_base, tmp_path_factory.mktemp("cmp_b") / "adapter", seed=5, r=2)


@pytest.fixture()
def library(lib_adapter, second_adapter, one_thread):
    registry.register_adapter(lib_adapter, {}, name="alpha")
    registry.register_adapter(second_adapter, {}, name="beta")


@pytest.fixture()
def prompts(tmp_path) -> Path:
    f = tmp_path / "prompts.jsonl"
    f.write_text(json.dumps({"prompt": "What is 2+2?", "expected": "4"}) + "\n"
                 + json.dumps({"prompt": "Name a fruit."}) + "\n", encoding="utf-8")
    return f


def test_json_has_every_column_output_and_score(library, prompts, capsys, lib_base):
    rc = main(["compare", "alpha", "beta", "--prompts", str(prompts), "--json", "--max-new-tokens", "6"])
    out = capsys.readouterr().out
    assert rc == 0
    data = json.loads(out)
    assert data["base"] == str(lib_base.resolve())
    assert data["settings"] == {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 6, "seed": 0}
    assert [p["prompt"] for p in data["prompts"]] == ["What is 2+2?", "Name a fruit."]
    assert [c["label"] for c in data["columns"]] == ["base", "alpha", "beta"]
    assert data["columns"][0]["adapter"] is None
    for col in data["columns"]:
        assert len(col["outputs"]) == 2 and all(isinstance(o, str) for o in col["outputs"])
        assert col["scored"] == 1 and col["exact_match"] in (0.0, 1.0)
        assert isinstance(col["eval_loss"], float) and col["eval_loss"] > 0
        assert all(g["new_tokens"] <= 6 for g in col["generations"])
    assert data["columns"][1]["outputs"] != data["columns"][0]["outputs"]
    assert len({c["eval_loss"] for c in data["columns"]}) == 3


def test_table_output_names_columns_and_scores(library, prompts, capsys, lib_adapter):
    # An adapter folder works as well as a library name.
    rc = main(["compare", str(lib_adapter), "beta", "--prompts", str(prompts), "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "#1 What is 2+2?" in out and "expected: 4" in out
    summary = out.split("eval loss")[1]
    assert "base" in summary and "lib_run" in summary and "beta" in summary and "/1 (" in summary


def _fails(args: list[str], capsys) -> str:
    rc = main(args)
    captured = capsys.readouterr()
    assert rc == 2, captured
    assert "Traceback" not in captured.err + captured.out
    return captured.err


def test_missing_prompt_file_is_exit_2(library, tmp_path, capsys):
    err = _fails(["compare", "alpha", "--prompts", str(tmp_path / "nope.jsonl")], capsys)
    assert "nope.jsonl" in err and "not found" in err


def test_bad_prompt_line_is_named(library, tmp_path, capsys):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "fine"}\n{"prompt": "broken"\n', encoding="utf-8")
    err = _fails(["compare", "alpha", "--prompts", str(f)], capsys)
    assert "bad.jsonl, line 2" in err and "not valid JSON" in err


def test_bad_prompt_file_in_json_mode_is_a_json_error(library, tmp_path, capsys):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"question": "no prompt key"}\n', encoding="utf-8")
    rc = main(["compare", "alpha", "--prompts", str(f), "--json"])
    out = capsys.readouterr().out
    assert rc == 2 and "line 1" in json.loads(out)["error"]


def test_unknown_adapter_is_exit_2(library, prompts, capsys):
    err = _fails(["compare", "gamma", "--prompts", str(prompts)], capsys)
    assert "'gamma'" in err and "studio library list" in err


def test_adapters_of_different_bases_are_refused(library, prompts, capsys, tmp_path, smol_tokenizer_dir):
    other = make_base(tmp_path / "other-base", smol_tokenizer_dir, hidden=96, seed=3)
    registry.register_adapter(make_adapter(other, tmp_path / "o" / "adapter"), {}, name="other")
    err = _fails(["compare", "alpha", "other", "--prompts", str(prompts)], capsys)
    assert "'other' (trained on other-base)" in err


def test_bad_settings_are_exit_2(library, prompts, capsys):
    with pytest.raises(SystemExit) as exc:  # refused by the flag's type, before anything loads
        main(["compare", "alpha", "--prompts", str(prompts), "--max-new-tokens", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--max-new-tokens" in err and "at least 1" in err and "Traceback" not in err
