"""The Dataset workbench driven like a user would: open, read findings, jump to rows, see what the
model sees, stats, split, clean, map columns — and bad files that must never break the window."""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer

from studio.core.config import apply_overrides, load_config
from studio.core.datasets.render import IGNORE_INDEX, render_example
from studio.core.datasets.split import split_indices

TESTS = Path(__file__).resolve().parents[1]


def _bad_files():
    """The core tests' matrix of malformed files (tests/core is not a package)."""
    if "bad_files" in sys.modules:
        return sys.modules["bad_files"]
    spec = importlib.util.spec_from_file_location("bad_files", TESTS / "core" / "bad_files.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_files"] = module
    spec.loader.exec_module(module)
    return module


bad_files = _bad_files()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def state(smol_tokenizer_dir):
    from studio.qt.state import AppState, default_config

    st = AppState()
    st.set_config(apply_overrides(default_config(), {
        "model.path": str(smol_tokenizer_dir),
        "dataset.train": [],
        "dataset.eval": [],
        "dataset.eval_ratio": 0.1,
        "training.max_seq_len": 128,
    }))
    return st


@pytest.fixture()
def pane(qtbot, state):
    from studio.qt.panes.dataset.pane import DatasetPane
    from studio.qt.workers.task import TaskRunner

    tasks = TaskRunner()
    widget = DatasetPane(state, tasks)
    qtbot.addWidget(widget)
    widget.resize(1300, 800)
    widget.show()
    yield widget
    tasks.stop_all()
    assert tasks.wait_all(60000), "a worker thread was left running"
    # Free this test's widgets here, on the GUI thread, not in whichever thread next collects garbage.
    widget.close()
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


def _idle(qtbot, pane, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: not pane.busy and pane.loaded is not None, timeout=timeout)


def _open(qtbot, pane, *paths: Path) -> None:
    pane.set_files([str(p) for p in paths])
    _idle(qtbot, pane)


@pytest.fixture()
def demo_copy(tmp_path, demo_train) -> Path:
    path = tmp_path / "demo.jsonl"
    path.write_bytes(demo_train.read_bytes())
    return path


@pytest.fixture()
def repeats_copy(tmp_path, demo_train) -> Path:
    """The demo with its first four rows repeated at the end: a file with something to clean."""
    lines = demo_train.read_text("utf-8").splitlines(keepends=True)
    path = tmp_path / "demo.jsonl"
    path.write_text("".join(lines + lines[:4]), encoding="utf-8")
    return path


def test_demo_dataset_shows_rows_format_fingerprint_and_checks(qtbot, pane, demo_copy):
    _open(qtbot, pane, demo_copy)
    assert pane.model.rowCount() == 215
    assert "messages" in pane.format_label.text()
    assert _sha(demo_copy)[:12] in pane.fingerprint_label.text()
    assert "demo.jsonl" in pane.files_label.text() and "215 rows" in pane.files_label.text()
    report = pane.loaded.report
    assert report.token_checked and report.stats["max_len"] == 128
    codes = [it.text(0) for it in pane.findings.items()]
    assert codes == [f.code for f in report.findings]
    # the demo passes its own checks: only the test's short max_len (128) cuts rows
    assert {f.code for f in report.findings} <= {"tokens.truncated"}
    # a row of the table is the row of the file, parsed on demand from the scan's store
    line, fmt, prompt, answer, _raw = pane.model.row_text(0)
    first = json.loads(demo_copy.read_text().splitlines()[0])
    assert (line, fmt) == ("1", "messages")
    assert prompt == first["messages"][0]["content"] and answer == first["messages"][1]["content"]
    assert pane.model.result is pane.loaded.result


def test_first_rows_show_while_the_rest_loads_and_the_window_keeps_running(qtbot, pane, tmp_path):
    rows = [{"instruction": f"Question number {i}?", "output": f"Answer {i}."} for i in range(40_000)]
    path = _write_jsonl(tmp_path / "big.jsonl", rows)
    seen_while_loading: list[int] = []
    ticks_while_busy: list[int] = []
    pane.model.rowsInserted.connect(
        lambda *_a: seen_while_loading.append(pane.model.rowCount()) if pane.loaded is None else None)
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks_while_busy.append(1) if pane.busy else None)
    timer.start()
    _open(qtbot, pane, path)
    timer.stop()
    assert seen_while_loading and seen_while_loading[0] < 40_000   # rows were on screen before the scan ended
    assert ticks_while_busy                                          # the UI thread kept running meanwhile
    assert pane.model.rowCount() == 40_000
    assert pane.model.row_text(39_999)[2] == "Question number 39999?"


def test_finding_on_a_broken_file_names_the_line_and_clicking_it_selects_the_row(qtbot, pane, tmp_path):
    case, path = bad_files.build("missing_field", tmp_path)
    before = _sha(path)
    _open(qtbot, pane, path)
    item = pane.findings.item_for("field.missing")
    assert item is not None
    finding = item.data(0, Qt.ItemDataRole.UserRole + 1)
    assert finding.lines == [case.line] and "line 2" in item.text(1)
    pane.show_row(0)
    rect = pane.findings.tree.visualItemRect(item)
    qtbot.mouseClick(pane.findings.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert pane.selected_row() == finding.rows[0] == 1
    assert pane.model.row_text(1)[0] == "2"
    assert "field.missing" in pane.findings.detail.toPlainText()
    qtbot.waitUntil(lambda: "cannot be turned into a training example" in pane.preview.counts.text())
    assert _sha(path) == before


def test_preview_shows_trained_tokens_apart_from_masked_ones(qtbot, pane, demo_copy, smol_tokenizer_dir):
    from transformers import AutoTokenizer

    _open(qtbot, pane, demo_copy)
    pane.show_row(2)
    qtbot.waitUntil(lambda: pane.preview.view is not None and pane.preview.row == 2, timeout=30000)
    view = pane.preview.view
    doc_text = pane.preview.document().toPlainText()
    assert doc_text == view.text
    row = json.loads(demo_copy.read_text().splitlines()[2])["messages"]
    question, answer = row[0]["content"], row[1]["content"]
    assert pane.preview.kind_at(doc_text.index(answer) + 1) == "trained"
    assert pane.preview.kind_at(doc_text.index(question) + 1) == "masked"
    assert answer in view.text_of("trained") and question not in view.text_of("trained")
    # the same counts as the trainer's own renderer
    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    rendered = render_example(pane.loaded.result.example(2), tok, 128)
    assert view.trained_tokens == sum(1 for x in rendered.labels if x != IGNORE_INDEX)
    assert f"{rendered.full_length}</b> tokens" in pane.preview.counts.text()
    # a max length shorter than the row: the tail is shown as cut
    pane.state.update(**{"training.max_seq_len": 40})
    qtbot.waitUntil(lambda: pane.preview.view is not None and pane.preview.view.max_len == 40, timeout=30000)
    cut_at = pane.preview.view.segments[-1]
    assert cut_at.kind == "cut" and pane.preview.kind_at(len(doc_text) - 2) == "cut"
    assert "cut at max length 40" in pane.preview.counts.text()
    _idle(qtbot, pane)


def test_stats_histogram_has_data_and_the_cutoff_line(qtbot, pane, demo_copy):
    _open(qtbot, pane, demo_copy)
    hist = pane.stats.tokens
    assert sum(hist.counts) == 215 and hist.cutoff == 128
    assert hist.cutoff_line is not None and hist.cutoff_line.value() == 128
    assert pane.stats.formats.categories == {"messages": 215}
    assert sum(pane.stats.turns.categories.values()) == 215
    assert sum(pane.stats.answers.counts) == 215
    pane.state.update(**{"training.max_seq_len": 58})
    qtbot.waitUntil(lambda: not pane.busy and pane.stats.tokens.cutoff == 58, timeout=60000)
    hist = pane.stats.tokens
    cut = pane.loaded.report.rows_with("tokens.truncated")
    over = sum(c for e, c in zip(hist.edges, hist.counts, strict=False) if e >= 58)
    assert cut and over == len(cut)
    assert hist.cutoff_line.value() == 58


def test_clean_writes_a_copy_and_never_touches_the_original(qtbot, pane, repeats_copy):
    before = _sha(repeats_copy)
    _open(qtbot, pane, repeats_copy)
    duplicates = len(pane.loaded.report.rows_with("dup.exact"))
    assert duplicates == 4
    view = pane.split_clean
    assert f"({duplicates} rows)" in view.checks["drop_exact_duplicates"].text()
    qtbot.mouseClick(view.clean_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.cleaned_path != "" and view.clean_button.isEnabled(), timeout=30000)
    cleaned = Path(view.cleaned_path)
    assert cleaned == repeats_copy.with_name("demo.cleaned.jsonl") and cleaned.exists()
    assert len(cleaned.read_text("utf-8").splitlines()) == 219 - duplicates
    assert _sha(repeats_copy) == before and before[:16] in view.clean_result.text()
    assert view.use_button.isEnabled()
    qtbot.mouseClick(view.use_button, Qt.MouseButton.LeftButton)
    assert pane.state.config.dataset.train == [str(cleaned)]
    qtbot.waitUntil(lambda: pane.loaded is not None and pane.loaded.spec.train == (str(cleaned),), timeout=30000)
    _idle(qtbot, pane)
    assert pane.model.rowCount() == 219 - duplicates
    assert not pane.loaded.report.rows_with("dup.exact")
    assert _sha(repeats_copy) == before


def test_unknown_columns_are_mapped_into_the_run_config(qtbot, pane, tmp_path, studio_home):
    path = _write_jsonl(tmp_path / "qa.jsonl", [{"question": f"What is {i}+1?", "reply": f"{i + 1}."} for i in range(5)])
    _open(qtbot, pane, path)
    assert "unknown" in pane.format_label.text()
    assert pane.map_button.isVisible() and pane.banner.isVisible() and "question" in pane.banner.text()
    assert pane.findings.item_for("format.unknown") is not None
    dialog = pane.open_column_mapping()
    assert dialog.mapping() == {"prompt": "question", "answer": "reply"}   # guessed from the names
    dialog.set_column("prompt", "reply")
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()  # one column, two roles
    dialog.set_column("prompt", "question")
    assert "What is 0+1?" in dialog.example.toPlainText()
    dialog.accept()
    assert pane.state.config.dataset.column_map == {"prompt": "question", "answer": "reply"}
    saved = load_config(studio_home / "config" / "current_config.yaml")
    assert saved.dataset.column_map == {"prompt": "question", "answer": "reply"}
    qtbot.waitUntil(lambda: pane.loaded is not None and bool(pane.loaded.result.column_map), timeout=30000)
    _idle(qtbot, pane)
    assert "prompt_completion" in pane.format_label.text()
    assert pane.findings.item_for("format.unknown") is None
    assert pane.model.row_text(0)[2:4] == ("What is 0+1?", "1.")


BAD_CASES = ["empty", "binary", "latin1", "truncated_json_array", "csv_bad_quote", "parquet_garbage", "directory",
             "missing_file", "json_object_two_lists", "deep_nesting_json", "only_bad_lines", "utf16_bom"]


def test_bad_files_one_by_one_and_together_name_the_file_and_change_nothing(qtbot, pane, tmp_path):
    from studio.qt import errors

    reporter = errors.ErrorReporter()
    errors.install(reporter)
    paths, before = [], {}
    for k, name in enumerate(BAD_CASES):
        _case, path = bad_files.build(name, tmp_path / f"{k}")
        paths.append(path)
        if path.is_file():
            before[path] = _sha(path)
        _open(qtbot, pane, path)
        report = pane.loaded.report
        assert report.findings, name
        assert path.name in pane.files_label.text(), name
        if any(f.fatal for f in report.files):
            assert pane.banner.isVisible() and path.name in pane.banner.text(), name
        pane.findings.tree.setCurrentItem(pane.findings.items()[0])
        assert path.name in pane.findings.detail.toPlainText(), name
    _open(qtbot, pane, *paths)
    fatal = [Path(f.path).name for f in pane.loaded.report.files if f.fatal]
    assert fatal and all(name in pane.banner.text() for name in fatal)
    assert {p: _sha(p) for p in before} == before
    assert reporter.shown == []        # nothing reached the error dialog
    pane.show_row(0)                   # still alive and answering
    assert pane.isVisible()


def test_recent_files_are_remembered_and_reopen(qtbot, pane, demo_copy, tmp_path):
    from studio.qt.panes.dataset.recent import RecentMenu, recent_entries

    other = _write_jsonl(tmp_path / "other.jsonl", [{"text": "Hello there."}])
    _open(qtbot, pane, demo_copy)
    _open(qtbot, pane, other)
    assert recent_entries()[:2] == [[str(other)], [str(demo_copy)]]
    menu = RecentMenu(pane)
    labels = [a.text() for a in menu.actions()]
    assert "other.jsonl" in labels[0] and "demo.jsonl" in labels[1]
    pane.recent_menu.rebuild()
    pane.recent_menu.actions()[1].trigger()
    assert pane.state.config.dataset.train == [str(demo_copy)]
    _idle(qtbot, pane)
    assert pane.model.rowCount() == 215


def test_the_demos_eval_set_goes_with_the_demo_and_recent_lists_it(qtbot, pane, demo_train, demo_eval, tmp_path):
    from studio.core import paths
    from studio.qt.panes.dataset.recent import recent_entries

    demo, held = str(paths.demo_dataset()), str(paths.demo_eval_dataset())
    pane.state.update(**{"dataset.train": [demo], "dataset.eval": [held]})  # as at first launch
    _idle(qtbot, pane)
    assert recent_entries()[0] == [demo], "the demo opened from the config is in Recent"
    other = _write_jsonl(tmp_path / "other.jsonl", [{"text": f"Hello there {i}."} for i in range(5)])
    _open(qtbot, pane, other)
    assert pane.state.config.dataset.train == [str(other)] and pane.state.config.dataset.eval == []
    assert not pane.loaded.report.eval_files
    _open(qtbot, pane, Path(demo))
    assert pane.state.config.dataset.eval == [held]
    mine = _write_jsonl(tmp_path / "mine_eval.jsonl", [{"text": "Held out."}])
    pane.state.update(**{"dataset.eval": [str(mine)]})
    _open(qtbot, pane, other)
    assert pane.state.config.dataset.eval == [str(mine)], "a user's own eval set stays"


def test_fingerprint_is_the_files_sha256_or_says_fingerprint(qtbot, pane, demo_copy, demo_eval):
    _open(qtbot, pane, demo_copy)
    assert f"sha256 {_sha(demo_copy)[:12]}" in pane.fingerprint_label.text()
    pane.state.update(**{"dataset.eval": [str(demo_eval)]})
    _idle(qtbot, pane)
    text = pane.fingerprint_label.text()
    assert "sha256" not in text and f"fingerprint {pane.loaded.report.fingerprint[:12]}" in text
    assert _sha(demo_copy)[:12] not in text


def test_adding_files_appends_their_rows(qtbot, pane, demo_copy, tmp_path):
    extra = _write_jsonl(tmp_path / "extra.csv.jsonl", [{"prompt": "Hi?", "completion": "Hello."}])
    _open(qtbot, pane, demo_copy)
    pane.add_files([str(extra)])
    assert pane.state.config.dataset.train == [str(demo_copy), str(extra)]
    _idle(qtbot, pane)
    assert pane.model.rowCount() == 216
    assert pane.model.row_text(215)[0] == "extra.csv.jsonl:1"
    assert "mixed" in pane.format_label.text()


def test_split_by_ratio_and_seed_is_the_trainers_split(qtbot, pane, demo_copy):
    _open(qtbot, pane, demo_copy)
    view = pane.split_clean
    assert view.ratio_radio.isChecked()
    view.ratio.setValue(20.0)
    view.seed.setValue(7)
    qtbot.waitUntil(lambda: pane.state.config.dataset.eval_ratio == 0.2 and pane.state.config.dataset.split_seed == 7)
    train, held = split_indices(215, 0.2, 7)
    qtbot.waitUntil(lambda: f"<b>{len(held)}</b> held out" in view.split_result.text())
    assert f"<b>{len(train)}</b> rows" in view.split_result.text()
    _idle(qtbot, pane)
    assert pane.loaded.report.stats["split"] == {"source": "ratio", "ratio": 0.2, "seed": 7,
                                                  "train": len(train), "eval": len(held)}


def test_token_checks_wait_for_the_model_and_run_when_it_is_ready(qtbot, pane, demo_copy, tmp_path,
                                                                   smol_tokenizer_dir):
    import shutil

    folder = tmp_path / "model-being-prepared"
    pane.state.model_preparing = str(folder)  # as the window does while it converts the bundled model
    pane.state.update(**{"model.path": str(folder)})
    _open(qtbot, pane, demo_copy)
    assert not pane.loaded.report.token_checked
    summary = pane.findings.summary.text()
    assert "Token checks wait for the model (converting…)" in summary and "not found" not in summary
    assert pane.stats.tokens.counts == []
    assert pane.model.rowCount() == 215 and pane.loaded.report.stats  # the other checks did run
    shutil.copytree(smol_tokenizer_dir, folder)
    pane.state.model_ready.emit(str(folder))
    qtbot.waitUntil(lambda: not pane.busy and pane.loaded.report.token_checked, timeout=60000)
    assert sum(pane.stats.tokens.counts) == 215


def test_a_preference_file_shows_its_format_pairs_and_findings_and_its_pairs_in_the_model_view(qtbot, pane, tmp_path):
    demo = TESTS.parent / "resources" / "datasets" / "demo_pref_train.jsonl"
    rows = [json.loads(line) for line in demo.read_text("utf-8").splitlines()[:30]]
    rows.append({**rows[0], "rejected": rows[0]["chosen"]})
    path = _write_jsonl(tmp_path / "pairs.jsonl", rows)
    _open(qtbot, pane, path)
    assert pane.model.rowCount() == 31
    assert "preference" in pane.format_label.text()
    line, fmt, prompt, answer, _raw = pane.model.row_text(1)
    assert (line, fmt, prompt) == ("2", "preference", rows[1]["prompt"])
    assert answer == f"chosen: {rows[1]['chosen']}\nrejected: {rows[1]['rejected']}"
    report = pane.loaded.report
    assert report.token_checked and report.stats["preference"]["pairs"] == 31
    item = pane.findings.item_for("pair.identical")
    assert item is not None and item.data(0, Qt.ItemDataRole.UserRole + 1).lines == [31]
    pane.show_row(1)
    qtbot.waitUntil(lambda: "a preference pair" in pane.preview.counts.text())
    assert set(pane.preview.part_ranges) == {"prompt", "chosen", "rejected"}
    _idle(qtbot, pane)


def _painted(preview, part: str) -> tuple[str, list[str]]:
    """The text of one part of the painted pair and the kind of each of its characters."""
    start, length = preview.part_ranges[part]
    text = preview.document().toPlainText()[start:start + length]
    return text, [preview.kind_at(start + i) for i in range(length)]


def _pair_features(tmp_path, row: dict, tokenizer_dir, max_len: int) -> dict:
    """What preference training hands TRL for this one row (``pair_data``), prompt and both answers."""
    from transformers import AutoTokenizer

    from studio.core.training.pair_data import build_pair_features
    from studio.qt.state import default_config

    one = _write_jsonl(tmp_path / "one_pair.jsonl", [row])
    cfg = apply_overrides(default_config(), {"dataset.train": [str(one)], "dataset.eval": [str(one)],
                                             "training.max_seq_len": max_len, "objective": "dpo"})
    feats = build_pair_features(cfg, AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    return feats.train[0]


def test_the_model_view_shows_both_sides_of_a_pair_with_the_loss_preference_training_puts_on_them(
        qtbot, pane, tmp_path, smol_tokenizer_dir):
    from transformers import AutoTokenizer

    demo = TESTS.parent / "resources" / "datasets" / "demo_pref_train.jsonl"
    rows = [json.loads(line) for line in demo.read_text("utf-8").splitlines()]
    _open(qtbot, pane, demo)
    assert "preference" in pane.format_label.text()
    tok = AutoTokenizer.from_pretrained(str(smol_tokenizer_dir))
    pane.show_row(4)
    qtbot.waitUntil(lambda: "line 5</b>, a preference pair" in pane.preview.counts.text(), timeout=30000)
    assert "both fit in max length 128" in pane.preview.counts.text()
    feature = _pair_features(tmp_path, rows[4], smol_tokenizer_dir, 128)
    prompt, kinds = _painted(pane.preview, "prompt")
    # The prompt is shown once, all masked, and is exactly the tokens both sides share in training.
    assert prompt == tok.decode(feature["prompt_ids"]) and rows[4]["prompt"] in prompt
    assert set(kinds) == {"masked"}
    for side in ("chosen", "rejected"):
        text, kinds = _painted(pane.preview, side)
        # Every answer token is scored by the preference loss (labels = [-100] * prompt + side ids).
        assert text == tok.decode(feature[f"{side}_ids"]) and rows[4][side] in text
        assert set(kinds) == {"trained"}
        assert f"{side} <b>{len(feature[f'{side}_ids'])}</b>" in pane.preview.counts.text()
    heading = pane.preview.document().toPlainText()
    assert "Chosen answer · " in heading and "Rejected answer · " in heading and "cut at max length" not in heading

    # A max length that cuts into the answers: each side keeps what training keeps, the rest is struck out.
    prompt_tokens = len(feature["prompt_ids"])
    pane.state.update(**{"training.max_seq_len": prompt_tokens + 3})
    qtbot.waitUntil(lambda: "truncated at max length" in pane.preview.counts.text(), timeout=30000)
    _idle(qtbot, pane)
    cut = _pair_features(tmp_path, rows[4], smol_tokenizer_dir, prompt_tokens + 3)
    for side in ("chosen", "rejected"):
        text, kinds = _painted(pane.preview, side)
        trained = "".join(c for c, k in zip(text, kinds, strict=True) if k == "trained")
        assert trained == tok.decode(cut[f"{side}_ids"]) and len(cut[f"{side}_ids"]) == 3
        assert kinds[-1] == "cut" and text == tok.decode(feature[f"{side}_ids"])
    assert f"3 of {len(feature['chosen_ids'])} tokens kept" in pane.preview.document().toPlainText()
