"""Library room, driven like a user: search, sort, rename, trash, import, export dialog, playground."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _lib_fixtures import make_adapter, make_base

from studio.core.library import registry


@pytest.fixture(scope="module")
def base(tmp_path_factory, smol_tokenizer_dir) -> Path:
    return make_base(tmp_path_factory.mktemp("pane_base") / "tiny-llama", smol_tokenizer_dir)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, base) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pane_adapters")
    return make_adapter(base, root / "a" / "adapter", seed=1), make_adapter(base, root / "b" / "adapter", seed=7, r=2)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def entries(adapters):
    report = {"eval_loss": {"before": 2.25, "after": 1.5}, "eos_share": {"before": 0.5, "after": 0.25}}
    a = registry.register_adapter(adapters[0], {"metrics": {"eval_loss": 1.5, "train_loss": 1.7, "before_after": report},
                                                "dataset_fingerprint": "sha256:feed", "run_dir": "/runs/alpha-run",
                                                "config": {"method": "lora", "lora": {"r": 4}}}, name="alpha")
    b = registry.register_adapter(adapters[1], {"metrics": {"eval_loss": 0.9}, "objective": "dpo"}, name="beta")
    return a, b


@pytest.fixture()
def pane(qtbot, entries):
    from studio.qt import errors
    from studio.qt.panes.library.pane import LibraryPane
    from studio.qt.state import AppState
    from studio.qt.workers.task import TaskRunner

    errors.install(errors.ErrorReporter())
    tasks = TaskRunner()
    widget = LibraryPane(AppState(), tasks)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    widget.playground.stop()
    tasks.stop_all()
    assert tasks.wait_all(60000), "a worker thread was left running"


def _names(pane) -> list[str]:
    return [pane.table.entry_at(r).name for r in pane.table.visible_rows()]


def _message_boxes(widget) -> list[QMessageBox]:
    return [w for w in widget.findChildren(QMessageBox) if w.isVisible()]


def test_lists_entries_with_lineage_details(pane, entries, base):
    assert pane.table.rowCount() == 2 and sorted(_names(pane)) == ["alpha", "beta"]
    pane.table.select_id(entries[0].id)
    text = pane.details.toPlainText()
    for needle in (str(base.resolve()), entries[0].base_model_hash, "unchanged since training", "sha256:feed",
                   "/runs/alpha-run", "eval_loss", "1.5", '"lora"', '"r": 4'):
        assert needle in text, needle
    assert pane.export_button.isEnabled() and pane.rename_button.isEnabled()
    # The run's before/after report, in its own section, not as a raw dict among the metrics.
    assert "Before → after (eval split)" in text and "before_after" not in text
    assert "Eval loss\n2.2500 → 1.5000" in text and "Answers end with EOS\n50% → 25%" in text
    html = pane.details.toHtml()
    assert html.count("color:#15803d") >= 1 and "#b91c1c" in html  # loss better (green), EOS share worse (red)


def test_search_filters_rows(pane):
    # A preference adapter says so in its Method column, and a search for its objective finds it.
    methods = {pane.table.entry_at(r).name: pane.table.item(r, 2).text() for r in pane.table.visible_rows()}
    assert methods == {"alpha": "LoRA", "beta": "DPO on LoRA"}
    pane.search.setText("dpo")
    assert _names(pane) == ["beta"]
    pane.search.setText("alp")
    assert _names(pane) == ["alpha"] and pane.count_label.text() == "1 of 2"
    pane.search.setText("lora tiny-llama")  # every word must match somewhere (method, base)
    assert sorted(_names(pane)) == ["alpha", "beta"]
    pane.search.setText("nothing-like-this")
    assert _names(pane) == []
    pane.search.clear()
    assert len(_names(pane)) == 2


def test_columns_sort_by_value(pane, qtbot):
    header = pane.table.horizontalHeader()
    pane.table.sortItems(3, Qt.SortOrder.AscendingOrder)  # final eval loss
    assert _names(pane) == ["beta", "alpha"]
    pane.table.sortItems(3, Qt.SortOrder.DescendingOrder)
    assert _names(pane) == ["alpha", "beta"]
    pane.table.sortItems(5, Qt.SortOrder.AscendingOrder)  # size: r=2 adapter is smaller
    assert _names(pane) == ["beta", "alpha"]
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=_section_center(header, 0))  # by name
    assert header.sortIndicatorSection() == 0
    order = header.sortIndicatorOrder()
    assert _names(pane) == (["alpha", "beta"] if order == Qt.SortOrder.AscendingOrder else ["beta", "alpha"])


def _section_center(header, section):
    from PySide6.QtCore import QPoint

    return QPoint(header.sectionViewportPosition(section) + header.sectionSize(section) // 2, header.height() // 2)


def test_rename_keeps_selection_and_refreshes(pane, entries):
    pane.table.select_id(entries[0].id)
    renamed = pane.rename_selected("gamma ray")
    assert renamed is not None and renamed.name == "gamma-ray"
    assert sorted(_names(pane)) == ["beta", "gamma-ray"]
    assert pane.selected().id == entries[0].id
    assert registry.get_entry(entries[0].id).name == "gamma-ray"
    pane.rename_selected("   ")  # refused with a message, nothing changes
    assert _message_boxes(pane) and "empty" in _message_boxes(pane)[0].text()
    assert sorted(_names(pane)) == ["beta", "gamma-ray"]


def test_delete_undo_and_trash_restore_empty(pane, entries, monkeypatch):
    pane.table.select_id(entries[1].id)
    pane.delete_selected()
    assert _names(pane) == ["alpha"] and pane.undo_button.isVisible()
    assert [e.name for e in registry.list_trash()] == ["beta"]
    pane.undo_delete()
    assert sorted(_names(pane)) == ["alpha", "beta"] and not registry.list_trash()
    pane.table.select_id(entries[0].id)
    pane.delete_selected()
    dialog = pane.open_trash()
    assert dialog.list.count() == 1 and "alpha" in dialog.list.item(0).text()
    dialog.list.setCurrentRow(0)
    dialog.restore_selected()
    assert sorted(_names(pane)) == ["alpha", "beta"] and dialog.list.count() == 0
    pane.table.select_id(entries[0].id)
    pane.delete_selected()
    dialog.reload()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    assert dialog.empty(confirm=True) == 0 and len(registry.list_trash()) == 1
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    assert dialog.empty(confirm=True) == 1 and not registry.list_trash()
    assert _names(pane) == ["beta"]


def test_import_bad_folder_shows_message_good_folder_is_added(pane, qtbot, tmp_path, adapters):
    bad = tmp_path / "not-an-adapter"
    bad.mkdir()
    (bad / "notes.txt").write_text("hello")
    pane.import_folder(str(bad))
    qtbot.waitUntil(lambda: bool(_message_boxes(pane)), timeout=20000)
    box = _message_boxes(pane)[0]
    assert box.windowTitle() == "Import failed" and "adapter_config.json" in box.text()
    assert "Not imported" in pane.status.text() and pane.table.rowCount() == 2
    box.close()
    good = tmp_path / "downloaded"
    import shutil

    shutil.copytree(adapters[0], good)
    pane.import_folder(str(good))
    qtbot.waitUntil(lambda: pane.table.rowCount() == 3, timeout=30000)
    assert pane.selected().name == "downloaded" and "Imported" in pane.status.text()


def test_export_through_dialog_writes_folder_and_shows_proof(pane, qtbot, entries, tmp_path):
    pane.table.select_id(entries[0].id)
    qtbot.mouseClick(pane.export_button, Qt.MouseButton.LeftButton)
    dialog = pane.export_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.dest.text().endswith("alpha-merged-bf16")
    dialog.set_choice("adapter", zip_file=True)
    assert dialog.dest.text().endswith("alpha-adapter.zip")  # the suggestion follows the format
    out = tmp_path / "alpha-fp32"
    out.mkdir()
    dialog.set_choice("merged", dtype="fp32", out=out)
    assert not dialog.ok_button.isEnabled() and "already exists" in dialog.problem.text()
    out.rmdir()
    dialog.set_choice("merged", dtype="fp32", out=out)
    assert dialog.ok_button.isEnabled()
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert pane.busy
    qtbot.waitUntil(lambda: not pane.busy, timeout=120000)
    assert (out / "config.json").is_file() and any(out.glob("*.safetensors"))
    assert json.loads((out / "studio_export.json").read_text())["status"] == "passed"
    view = pane.export_result
    assert view.isVisible() and view.verdict_text().startswith("✓ Export verified")
    assert view.checks.rowCount() == 1 and view.checks.item(0, 4).text() == "PASSED"
    assert "100.0%" in view.checks.item(0, 1).text()


def test_failed_equivalence_is_shown_as_failed(qtbot):
    from studio.core.library.equivalence import EquivalenceReport
    from studio.core.library.merge import ExportReport
    from studio.qt.panes.library.export_result import ExportResultView

    view = ExportResultView()
    qtbot.addWidget(view)
    bad = EquivalenceReport(label="GGUF q8_0", kind="q8_0", prompts=4, new_tokens=16, max_abs_diff=3.2,
                            max_rel_diff=0.4, agreement=0.5, greedy_identical=False, near_tie_flips=0,
                            tokenizer_identical=True, passed=False, rule="agreement ≥ 90%")
    good = EquivalenceReport(label="merged bf16", kind="bf16", prompts=4, new_tokens=16, max_abs_diff=0.01,
                             max_rel_diff=0.001, agreement=1.0, greedy_identical=True, near_tie_flips=0,
                             tokenizer_identical=None, passed=True, rule="greedy tokens identical")
    report = ExportReport(out_dir=Path("/tmp/x"), kind="merged", dtype="bfloat16", adapter_dir="/a", base_model="/b",
                          status="failed", equivalence=[good, bad])
    view.show_report(report)
    assert "FAILED" in view.verdict_text() and "do not ship" in view.verdict_text()
    assert [view.checks.item(r, 4).text() for r in range(2)] == ["PASSED", "FAILED"]
    assert view.checks.item(1, 4).foreground().color().name() == "#b91c1c"
    assert not view.checks.isHidden()


def test_playground_streams_into_columns_and_hot_swaps(pane, qtbot, entries, base):
    pg = pane.playground
    pane.table.select_id(entries[0].id)
    pane.try_in_playground()
    assert pane.tabs.currentWidget() is pg
    assert pg.base_box.currentData() == str(base.resolve())
    assert len(pg.columns) == 3 and pg.columns[0].entry_id() is None
    pg.columns[1].select(entries[0].id)
    pg.columns[2].select(entries[1].id)
    pg.max_tokens.setValue(12)
    chunks: list[tuple[int, str]] = []
    pg.prompt.setPlainText("What is the capital of France?")
    qtbot.mouseClick(pg.run_button, Qt.MouseButton.LeftButton)
    pg.task.partial.connect(lambda ev: getattr(ev, "kind", "") == "chunk" and chunks.append((ev.column, ev.text)))
    assert pg.is_running() and not pg.run_button.isEnabled() and pg.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not pg.is_running(), timeout=120000)
    texts = [c.text() for c in pg.columns]
    assert all(texts) and texts[1] != texts[0] and texts[2] != texts[1]
    for i in range(3):  # streamed piece by piece, and the pieces are the answer
        assert "".join(t for c, t in chunks if c == i) == texts[i]
        assert pg.columns[i].chunks >= 2 and "tok/s" in pg.columns[i].stats.text()
    loaded = pg.holder.current
    assert loaded is not None and "Loaded once" in pg.base_status.text()
    # Switch a column's adapter and run again: same base object, nothing reloaded.
    base_obj = loaded.base_model
    pg.columns[2].select(entries[0].id)
    pg.run_prompt()
    qtbot.waitUntil(lambda: not pg.is_running(), timeout=120000)
    assert pg.holder.current is loaded and loaded.base_model is base_obj and loaded.base_loads == 1
    assert pg.columns[2].text() == pg.columns[1].text()


def test_playground_prompt_set_scores_each_column(pane, qtbot, entries, tmp_path):
    pg = pane.playground
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"oops": 1}\n')
    assert not pg.open_prompt_set(str(bad))
    box = _message_boxes(pg)[0]
    assert "bad.jsonl, line 2" in box.text()
    box.close()
    good = tmp_path / "set.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "What is 2+2?", "expected": "4"}, {"prompt": "Say hi."}]) + "\n")
    assert pg.open_prompt_set(str(good)) and "2 prompt(s), 1 with an expected answer" in pg.set_label.text()
    pg.max_tokens.setValue(6)
    pg.remove_column(pg.columns[2])
    assert len(pg.columns) == 2
    pg.remove_column(pg.columns[1])  # two columns is the minimum
    assert len(pg.columns) == 2
    pg.run_prompt_set()
    qtbot.waitUntil(lambda: not pg.is_running(), timeout=120000)
    report = pg.last_report
    assert report is not None and [c.scored for c in report.columns] == [1, 1]
    assert pg.results.rowCount() == 2 and pg.results.columnCount() == 4
    for col in range(2):
        assert pg.result_text(0, col) == report.columns[col].outputs[0]
        assert "loss" in pg.results.horizontalHeaderItem(2 + col).text()
        assert "Prompt set: eval loss" in pg.columns[col].score.text()
