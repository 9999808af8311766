"""Every malformed file gets a clear answer naming the file (and line), the right exit code, no
traceback, and its bytes untouched."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading

import pytest
from bad_files import CASES, build

from studio.cli import main
from studio.core.datasets.scan import scan
from studio.core.datasets.validate import validate


def _state(path) -> str | None:
    """Bytes hash of a regular file (None for anything else), read without following into trouble."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.R_OK):
        return f"mode:{st.st_mode}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_bad_file(name, tmp_path, capsys, request):
    case, path = build(name, tmp_path / "data")
    tokenizer, model_args = None, []
    if case.model:
        from transformers import AutoTokenizer

        model_dir = request.getfixturevalue("smol_tokenizer_dir")
        tokenizer, model_args = AutoTokenizer.from_pretrained(model_dir), ["--model", str(model_dir)]
    if case.needs_non_root and os.geteuid() == 0:
        os.chmod(path, 0o644)
        pytest.skip("root can read any file, so permission cannot be denied here")
    before = _state(path)

    result = validate(scan(path), tokenizer=tokenizer, max_len=512 if tokenizer else None)
    assert result.token_checked == case.model
    codes = {f.code for f in result.findings}
    assert set(case.codes) <= codes, (codes, result.findings)
    assert all(f.file == str(path) for f in result.findings)
    assert result.exit_code == case.exit
    if case.codes:
        first = next(f for f in result.findings if f.code == case.codes[0])
        assert first.message.endswith(".") and len(first.message) > 20
        if case.line is not None:
            assert first.lines and first.lines[0] == case.line, first
    if case.exit == 0:
        assert not [f for f in result.findings if f.severity == "error"], result.findings

    rc = main(["validate", str(path), "--json", *model_args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    report = json.loads(out)
    assert rc == case.exit == report["exit_code"], report
    assert report["format"] in {"alpaca", "prompt_completion", "text", "messages", "sharegpt", "mixed", "unknown"}
    assert set(case.codes) <= {f["code"] for f in report["findings"]}
    for f in report["findings"]:
        assert f["file"] == str(path)
        assert f["severity"] in ("error", "warning") and f["message"]
        if case.line is not None and f["code"] == case.codes[0]:
            assert f["lines"][0] == case.line

    rc_human = main(["validate", str(path), *model_args])
    out, err = capsys.readouterr()
    assert rc_human == rc
    assert "Traceback" not in out + err
    if case.codes:
        expected = f"{path}:{case.line}" if case.line is not None else str(path)
        assert expected in out
        assert case.codes[0] in out

    assert _state(path) == before, "the original file must be byte-for-byte unchanged"
    if case.needs_non_root:
        os.chmod(path, 0o644)


def test_file_that_grows_while_it_is_read(tmp_path, capsys):
    path = tmp_path / "growing.jsonl"
    rows = [{"instruction": f"q{i}", "output": f"a{i}."} for i in range(5000)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    grew = []

    def append_once(_rows):
        if not grew:
            with open(path, "a") as fh:
                fh.write(json.dumps({"instruction": "late", "output": "row."}) + "\n")
            grew.append(True)

    result = scan(path, on_rows=append_once, chunk=500)
    assert grew
    changed = [f for f in result.findings if f.code == "file.changed"]
    assert changed and changed[0].file == str(path) and changed[0].severity == "warning"
    assert len(result) >= 5000
    # the file is whatever the writer made it; we never wrote to it ourselves
    assert path.read_text().count("\n") == 5001


def test_validate_several_files_with_one_bad(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"instruction": "a", "output": "b."}) + "\n")
    rc = main(["validate", str(good), str(tmp_path / "missing.jsonl"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 2
    assert report["rows"] == 1
    assert {f["file"] for f in report["findings"]} == {str(tmp_path / "missing.jsonl")}


def test_scan_can_be_stopped_from_another_thread(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"text": f"row {i}."}) + "\n" for i in range(20000)))
    stop = threading.Event()
    seen = []

    def on_rows(rows):
        seen.append(len(rows))
        stop.set()

    result = scan(path, on_rows=on_rows, chunk=1000, should_stop=stop.is_set)
    assert result.stopped and len(result) < 20000 and seen[0] == 1000


def test_undecodable_file_name_is_printed_not_crashed_on(tmp_path, capsys):
    raw = os.fsencode(tmp_path) + b"/bad\xffname.jsonl"
    with open(raw, "wb") as fh:
        fh.write(b'{"instruction": "a", "output": "b."}\n')
    name = os.fsdecode(raw)
    assert main(["validate", name, "--json"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert json.loads(out)["files"][0]["path"].endswith("bad\\udcffname.jsonl")
    assert main(["validate", name]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "bad\\udcffname.jsonl" in out
