"""Hostile input to the command line: numbers, YAML configs, names that could mean two things, the
error contract (exit codes, no traceback, ``detail`` only on request) and the window check.

Each case is one a user can type; each must end in a message that names what to fix and exit 1 or 2
— never a hang, a traceback or a silent default.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# Fixtures are imported from _lib_fixtures and named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from _lib_fixtures import lib_adapter, lib_base  # noqa: F401

from studio.cli import EXIT_CODES, EXIT_INTERNAL, EXIT_UNREADABLE, main
from studio.core.config import RunConfig, load_config
from studio.core.errors import StudioError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "resources" / "datasets" / "demo_train.jsonl"

# ------------------------------------------------------------------ numbers on the command line

NUMBER_CASES = [
    # (argv, flag the message must name)
    (["validate", str(DEMO), "--max-len", "0"], "--max-len"),
    (["validate", str(DEMO), "--max-len", "-5"], "--max-len"),
    (["validate", str(DEMO), "--max-len", "abc"], "--max-len"),
    (["validate", str(DEMO), "--eval-ratio", "1.5"], "--eval-ratio"),
    (["validate", str(DEMO), "--eval-ratio", "nan"], "--eval-ratio"),
    (["train", "--model", "/nonexistent", "--lr", "5"], "--lr"),
    (["train", "--model", "/nonexistent", "--lr", "nan"], "--lr"),
    (["train", "--model", "/nonexistent", "--batch", "0"], "--batch"),
    (["train", "--model", "/nonexistent", "--seq", "-5"], "--seq"),
    (["train", "--model", "/nonexistent", "--rank", "0"], "--rank"),
    (["train", "--model", "/nonexistent", "--epochs", "inf"], "--epochs"),
    (["train", "--model", "/nonexistent", "--epochs", "-1"], "--epochs"),
    (["estimate", "--model", "/nonexistent", "--batch", "-1"], "--batch"),
    (["estimate", "--model", "/nonexistent", "--seq", "0"], "--seq"),
    (["estimate", "--model", "/nonexistent", "--budget-gib", "0"], "--budget-gib"),
    (["estimate", "--model", "/nonexistent", "--budget-gib", "inf"], "--budget-gib"),
    (["estimate", "--model", "/nonexistent", "--targets", ""], "--targets"),
    (["compare", "x", "--prompts", "p.jsonl", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["compare", "x", "--prompts", "p.jsonl", "--temperature", "-1"], "--temperature"),
    (["compare", "x", "--prompts", "p.jsonl", "--top-p", "0"], "--top-p"),
    (["launch-config", "c.yaml", "--gpus", "0", "--out", "o"], "--gpus"),
]


@pytest.mark.parametrize(("argv", "flag"), NUMBER_CASES, ids=[" ".join(a[2:] if a[0] != "train" else a[3:]) for a, _ in NUMBER_CASES])
def test_bad_numbers_name_their_flag_and_exit_2(argv, flag, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusal of a typed value
        code = exc.code
    err = capsys.readouterr().err
    assert code == EXIT_UNREADABLE
    assert flag in err
    assert "overrides" not in err and "Traceback" not in err


def test_max_len_is_used_as_given_not_replaced_by_a_default(tmp_path, capsys, smol_tokenizer_dir):
    """``--max-len 8`` used to be fine, but ``or 512`` turned a 0 into 512; the value given is the value used."""
    code = main(["validate", str(DEMO), "--model", str(smol_tokenizer_dir), "--max-len", "8", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1  # every demo row is longer than 8 tokens: truncation findings
    assert data["stats"]["tokens"]["cutoff"] == 8


# ------------------------------------------------------------------ a chat template by name

@pytest.mark.parametrize("name", ["chatm", "ChatML", "gpt4", " chatml"])
def test_unknown_template_names_the_flag_and_exit_2(name, capsys):
    try:
        code = main(["train", "--model", "/nonexistent", "--template", name])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == EXIT_UNREADABLE
    assert "--template" in err and "'chatml'" in err  # names the flag and the names it takes
    assert "model.chat_template" not in err and "Traceback" not in err


def test_template_flag_lands_in_the_run_config(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "run"
    code = main(["train", "--model", str(tiny_model_dir), "--dataset", str(DEMO), "--max-steps", "1", "--batch", "2",
                 "--seq", "96", "--template", "gemma", "--out", str(run), "--json"])
    assert code == 0, capsys.readouterr().err
    assert load_config(run / "config.yaml").model.chat_template == "gemma"
    # The adapter carries the format it was trained in, so the playground and exports use it too.
    assert "<start_of_turn>" in (run / "adapter" / "chat_template.jinja").read_text()


# ------------------------------------------------------------------ YAML configs

BOMB = "\n".join(
    ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
) + "\n"

CONFIG_CASES = {
    "alias bomb": (BOMB, "expand to more than"),
    "alias loop": ("a: &a [*a]\n", "refers to itself"),
    "alias bomb inside a field": ("x: &x [a,a,a,a,a,a,a,a,a,a]\ny: &y [*x,*x,*x,*x,*x,*x,*x,*x,*x,*x]\n"
                                  "z: &z [*y,*y,*y,*y,*y,*y,*y,*y,*y,*y]\nw: &w [*z,*z,*z,*z,*z,*z,*z,*z,*z,*z]\n"
                                  "dataset:\n  train: [*w, *w, *w, *w, *w, *w, *w, *w, *w, *w, *w]\n", "expand to more than"),
    "deep nesting": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    "not a mapping": ("- 1\n- 2\n", "expected a mapping"),
    "bad yaml": ("training: {lr: 1\n", "Not valid YAML"),
    "tab indent": ("training:\n\tlr: 0.1\n", "Not valid YAML"),
    "unknown field": ("trainig:\n  lr: 0.1\n", "trainig: unknown field"),
    "nan": ("training:\n  lr: .nan\n", "training.lr"),
    "inf epochs": ("training:\n  epochs: .inf\n", "training.epochs"),
    "string for int": ("training:\n  batch_size: four\n", "training.batch_size"),
    "newer schema": ("schema_version: 99\n", "newer studio"),
    "schema not a number": ("schema_version: one\n", "schema_version must be a whole number"),
    "python tag": ("training: !!python/object/apply:os.system ['true']\n", "Not valid YAML"),
    "huge file": ("# " + "x" * (2 << 20) + "\n", "characters long"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_hostile_configs_get_a_clear_message(case, tmp_path):
    text, expected = CONFIG_CASES[case]
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(StudioError) as info:
        load_config(path)
    assert expected in info.value.user_text()
    assert str(path) in info.value.user_text()


def test_config_that_is_binary_or_a_folder(tmp_path):
    binary = tmp_path / "run.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x00garbage")
    with pytest.raises(StudioError, match="not UTF-8"):
        load_config(binary)
    with pytest.raises(StudioError, match="folder"):
        load_config(tmp_path)


def test_empty_config_and_anchors_of_normal_size_still_work(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == RunConfig()
    anchored = tmp_path / "anchored.yaml"
    anchored.write_text("dataset:\n  train: &files [a.jsonl, b.jsonl]\n  eval: *files\n")
    cfg = load_config(anchored)
    assert cfg.dataset.eval == ["a.jsonl", "b.jsonl"]


def test_alias_bomb_does_not_hang_the_train_verb(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    code = main(["train", str(path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == EXIT_UNREADABLE
    assert "expand to more than" in out["error"]


# ------------------------------------------------------------------ the error contract


def test_json_errors_carry_no_traceback_unless_debugging(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STUDIO_DEBUG", raising=False)
    code = main(["estimate", str(tmp_path / "missing.yaml"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == EXIT_UNREADABLE
    assert out["exit_code"] == EXIT_UNREADABLE
    assert "detail" not in out and "Traceback" not in json.dumps(out)
    monkeypatch.setenv("STUDIO_DEBUG", "1")
    main(["estimate", str(tmp_path / "missing.yaml"), "--json"])
    captured = capsys.readouterr()
    assert "detail" in json.loads(captured.out)


def test_a_bug_is_exit_3_with_a_plain_message(capsys, monkeypatch):
    import studio.cli.validate as verb

    monkeypatch.delenv("STUDIO_DEBUG", raising=False)

    def broken(_args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(verb, "_run", broken)
    code = main(["validate", str(DEMO)])
    err = capsys.readouterr().err
    assert code == EXIT_INTERNAL
    assert "bug in the studio" in err and "Traceback" not in err


def test_every_exit_code_is_documented(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for code in EXIT_CODES:
        assert f"  {code} " in out
    readme = (REPO / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme


def test_unencodable_text_in_an_error_is_printed_not_crashed(tmp_path, capsys):
    from studio.cli import report_error

    code = report_error(StudioError("bad name \udcff here", path=tmp_path), as_json=True)
    out = capsys.readouterr().out
    assert code == EXIT_UNREADABLE
    out.encode("utf-8")  # what a UTF-8 terminal or pipe would have to write: no lone surrogate left
    assert "\\udcff" in out and "bad name" in json.loads(out)["error"]


# ------------------------------------------------------------------ a name that could mean two things


def test_folder_shadowing_a_library_entry_is_refused_not_guessed(tmp_path, monkeypatch, lib_adapter):
    from studio.cli._args import find_adapter
    from studio.core.library.registry import import_adapter

    entry = import_adapter(lib_adapter, name="mine")
    workdir = tmp_path / "work"
    (workdir / "mine").mkdir(parents=True)
    for f in lib_adapter.iterdir():
        (workdir / "mine" / f.name).write_bytes(f.read_bytes())  # the same adapter, as a folder here
    monkeypatch.chdir(workdir)
    with pytest.raises(StudioError) as info:
        find_adapter("mine")
    text = info.value.user_text()
    assert "./mine" in text and entry.id in text
    assert find_adapter("./mine") == Path("./mine")
    assert find_adapter(entry.id).id == entry.id
    assert find_adapter(str(workdir / "mine")) == workdir / "mine"


def test_library_entry_is_found_when_no_folder_shadows_it(tmp_path, monkeypatch, lib_adapter):
    from studio.cli._args import find_adapter
    from studio.core.library.registry import import_adapter

    entry = import_adapter(lib_adapter, name="mine")
    monkeypatch.chdir(tmp_path)
    assert find_adapter("mine").id == entry.id
    with pytest.raises(StudioError, match="neither an adapter folder nor a library entry"):
        find_adapter("nothing-here")


# ------------------------------------------------------------------ opening a window


def _fake_bin(folder: Path, name: str, script: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


LDD_MISSING = (
    'echo "\tlibxcb-cursor.so.0 => not found"\n'
    'echo "\tlibxkbcommon-x11.so.0 => not found"\n'
    "i=0; while [ $i -lt 3000 ]; do echo \"\tlibfoo$i.so => /usr/lib/libfoo$i.so (0x0)\"; i=$((i+1)); done\n"
)


def test_gui_without_qt_system_libraries_prints_the_install_line(tmp_path):
    fake = tmp_path / "bin"
    _fake_bin(fake, "ldd", LDD_MISSING)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"}
    proc = subprocess.run([sys.executable, "-m", "studio", "gui"], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO)
    assert proc.returncode == EXIT_UNREADABLE
    assert "libxcb-cursor.so.0" in proc.stderr and "libxkbcommon-x11.so.0" in proc.stderr
    assert "sudo apt-get install" in proc.stderr and "libxcb-cursor0" in proc.stderr
    assert "platform plugin" not in proc.stderr  # Qt never got to abort


def test_package_names_for_missing_sonames():
    from studio.cli._qt_libs import debian_package

    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libEGL.so.1") == "libegl1"
    assert debian_package("libxcb-render-util.so.0") == "libxcb-render-util0"


def test_bootstrap_installs_qt_libraries_even_when_ldd_output_is_long(tmp_path):
    """The old check piped ldd into ``grep -q`` under pipefail: grep exits at the first match, ldd dies of
    SIGPIPE, the pipeline "fails" and the missing libraries were not installed (20 misses in 200)."""
    fake = tmp_path / "bin"
    _fake_bin(fake, "ldd", LDD_MISSING)
    _fake_bin(fake, "id", 'echo 0\n')
    log = tmp_path / "apt.log"
    _fake_bin(fake, "apt-get", f'echo "$@" >> {log}\n')
    function = subprocess.run(["sed", "-n", "/^ensure_qt_system_libs()/,/^}/p", str(REPO / "bootstrap.sh")],
                              capture_output=True, text=True, check=True).stdout
    assert function.strip()
    script = f"set -euo pipefail\n{function}\nensure_qt_system_libs\n"
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "QT_QPA_PLATFORM": ""}
    for _ in range(5):
        log.unlink(missing_ok=True)
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "libxcb-cursor0" in log.read_text()
