"""Help menu (About, data folders, shortcuts, README, reset Configure), the start-up notice for an
interrupted run, the Library's full names and eval explanations, and Playground answers that never
outlive the adapter that wrote them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _lib_fixtures import make_adapter, make_base

from studio.core.config import apply_overrides
from studio.core.control import Control
from studio.core.library import registry
from studio.core.training import runs
from studio.core.training.engine import train


@pytest.fixture()
def interrupted_run(tiny_model_dir, demo_train) -> Path:
    """A real run stopped at step 2 whose journal then loses its ending: what a kill -9 leaves."""
    control = Control()
    from studio.qt.state import default_config

    cfg = apply_overrides(default_config(), {
        "model.path": str(tiny_model_dir), "dataset.train": [str(demo_train)], "dataset.eval": [],
        "training.max_steps": 4, "training.batch_size": 2, "training.max_seq_len": 96,
        "training.eval_steps": 0, "training.save_steps": 2})
    result = train(cfg, emit=lambda ev: ev.kind == "step" and ev.step == 2 and control.request_stop(),
                   control=control)
    journal = result.run_dir / runs.EVENTS_FILE
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(line for line in lines if '"run_finished"' not in line) + "\n")
    for entry in registry.list_entries():  # the kill came before the library heard of it
        registry.delete(entry.id)
    assert runs.summarize(result.run_dir).status == "interrupted"
    return result.run_dir


def test_interrupted_run_is_announced_and_resumes(interrupted_run, window, qtbot):
    banner = window.interrupted_banner
    qtbot.waitUntil(banner.isVisible, timeout=20000)
    assert "interrupted at step 2/4" in banner.text.text() and banner.resume_button.isVisible()
    qtbot.mouseClick(banner.resume_button, Qt.MouseButton.LeftButton)
    assert not banner.isVisible() and window.current_pane() == "Train"
    qtbot.waitUntil(lambda: not window.train_pane.is_running(), timeout=120000)
    assert runs.summarize(interrupted_run).status == "completed"
    # The run's events reach the log through queued signals: the worker can be done before the last ones land.
    qtbot.waitUntil(lambda: "Resuming from checkpoint-2" in window.train_pane.log.toPlainText(), timeout=10000)


def test_no_banner_without_an_interrupted_run(window, qtbot):
    qtbot.wait(500)
    window.tasks.wait_all(20000)
    qtbot.wait(100)
    assert not window.interrupted_banner.isVisible()


def test_help_menu_about_data_shortcuts(window, qtbot, monkeypatch):
    from studio.qt.dialogs import help_dialogs

    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles[-1] == "Help"
    assert set(window.help_actions) == {"About Fine-Tuning Studio", "Where my data lives…", "Keyboard shortcuts",
                                        "Open the README", "Reset Configure to defaults…"}
    about = help_dialogs.about_dialog(window)
    qtbot.addWidget(about)
    shown = " ".join(w.text() for w in about.findChildren(QLabel))
    for name in ("Python", "torch", "transformers", "peft", "Qt"):
        assert name in shown
    import torch
    import transformers

    assert torch.__version__.split("+")[0] in shown and transformers.__version__ in shown
    opened = []
    monkeypatch.setattr(help_dialogs.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    data = help_dialogs.data_dialog(window)
    qtbot.addWidget(data)
    folders = [f for f, _b in data.open_buttons]
    assert registry.paths.library_dir() in folders and registry.paths.runs_dir() in folders
    for folder, button in data.open_buttons:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert Path(opened[-1]) == folder and folder.is_dir()
    keys = help_dialogs.shortcuts_dialog(window)
    qtbot.addWidget(keys)
    assert "Open a dataset" in " ".join(w.text() for w in keys.findChildren(QLabel))
    monkeypatch.setattr("studio.qt.main_window.QDesktopServices.openUrl", lambda url: opened.append(url.toLocalFile()))
    window.help_actions["Open the README"].trigger()
    assert opened[-1].endswith("README.md") and Path(opened[-1]).is_file()


def test_reset_configure_asks_then_resets_but_keeps_the_dataset(window, monkeypatch, demo_train):
    from studio.qt.state import default_config

    window.state.update(**{"training.lr": 1e-3, "lora.r": 64})
    answers = iter([QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Reset])
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[1]) or next(answers))
    window.help_actions["Reset Configure to defaults…"].trigger()
    assert window.state.config.training.lr == 1e-3  # cancelled: nothing changed
    window.help_actions["Reset Configure to defaults…"].trigger()
    cfg = window.state.config
    assert len(asked) == 2
    assert cfg.training.lr == default_config().training.lr and cfg.lora.r == default_config().lora.r
    assert cfg.dataset.train == [str(demo_train)]


# -- Library names and the Playground ---------------------------------------------------------------

@pytest.fixture(scope="module")
def two_adapters(tmp_path_factory, smol_tokenizer_dir):
    base = make_base(tmp_path_factory.mktemp("help_base") / "tiny-llama", smol_tokenizer_dir)
    root = tmp_path_factory.mktemp("help_adapters")
    return base, make_adapter(base, root / "a" / "adapter", seed=1), make_adapter(base, root / "b" / "adapter", seed=2)


def test_table_elides_in_the_middle_and_explains_missing_eval(qtbot, two_adapters):
    from studio.qt.panes.library.table import AdapterTable

    _base, a, _b = two_adapters
    long = registry.register_adapter(a, {"metrics": {"eval_note": "No eval loss yet: the run stopped at step 3, "
                                                     "before its first evaluation (every 20 steps)."},
                                         "run_dir": "/runs/x"}, name="customer-support-answers-long-name")
    table = AdapterTable()
    qtbot.addWidget(table)
    table.set_entries([long])
    assert table.textElideMode() == Qt.TextElideMode.ElideMiddle
    assert long.name in table.item(0, 0).toolTip()
    assert table.item(0, 3).text() == "—" and "stopped at step 3" in table.item(0, 3).toolTip()


def test_playground_column_clears_an_answer_its_adapter_did_not_write(qtbot, two_adapters):
    from studio.qt.panes.playground.column import ColumnView

    _base, a, b = two_adapters
    first = registry.register_adapter(a, {"run_dir": "/runs/a", "metrics": {"steps": 5}}, name="first")
    second = registry.register_adapter(b, {"run_dir": "/runs/b"}, name="second")
    col = ColumnView()
    qtbot.addWidget(col)
    col.set_entries([first, second], select=first.id)
    col.append("answer written by first")
    col.set_entries([first, second])  # a refresh that keeps the column's adapter keeps its answer
    assert col.text() == "answer written by first"
    registry.delete(first.id)  # the Library refresh re-points the column
    col.set_entries([second], select="keep")
    assert col.entry_id() != first.id
    assert col.text() == "" and col.output.toPlainText() == ""
    col.select(second.id)
    col.append("answer written by second")
    again = registry.register_adapter(b, {"run_dir": "/runs/b", "metrics": {"steps": 9}}, name="second")
    assert again.id == second.id
    col.set_entries([again])  # same entry, newer weights from the same run: the old answer goes too
    assert col.text() == ""


def test_a_one_point_chart_has_non_negative_axes(qtbot):
    from studio.qt.widgets.curves import LivePlot

    plot = LivePlot("Speed", "tokens/s")
    qtbot.addWidget(plot)
    plot.add_curve("tokens/s", "#3182ce")
    plot.add("tokens/s", 1, 200.0)
    plot.redraw_now()
    (x0, x1), (y0, y1) = plot.getPlotItem().getViewBox().viewRange()
    assert x0 >= 0 and x1 > 1 and y0 >= 0 and y1 > 200.0
    plot.add("tokens/s", 2, 210.0)
    plot.redraw_now()
    assert plot.getPlotItem().getViewBox().autoRangeEnabled()[0]  # two points: back to auto-range


def test_an_earlier_imports_tokenizer_is_updated_before_the_model_is_ready(qtbot, tiny_model_dir, tmp_path):
    """A base model imported before the studio rebuilt the GGUF's split rules: at start-up its tokenizer.json
    gets them (before any pane loads it), the status bar says so, and the model is then ready as usual."""
    import json
    import shutil

    from studio.core.models.gguf_import import SOURCE_RECORD
    from studio.qt.main_window import MainWindow
    from studio.qt.state import AppState, default_config

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "old-import"))
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = spec["pre_tokenizer"]["pretokenizers"][1]   # GPT-2's split alone, as imports wrote
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    (folder / SOURCE_RECORD).write_text(json.dumps({
        "imported_from": "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf_architecture": "llama", "dtype": "bfloat16",
        "name": "SmolLM2 135M Instruct", "license": "apache-2.0", "config_fixes": [],
        "pre_tokenizer": {"gguf": "smollm", "imported": "gpt-2", "matches": False, "note": "differs"}}))
    state = AppState()
    state.set_config(apply_overrides(default_config(), {"model.path": str(folder)}))
    win = MainWindow(state)
    qtbot.addWidget(win)
    ready = []
    state.model_ready.connect(ready.append)
    win.start_background_work()
    qtbot.waitUntil(lambda: ready == [str(folder)], timeout=30000)
    assert "'smollm'" in win.statusBar().currentMessage() and win.model_label.text() == "Model: old-import"
    after = json.loads((folder / "tokenizer.json").read_text())
    assert after["pre_tokenizer"]["pretokenizers"][0] == {"type": "Digits", "individual_digits": True}
    assert json.loads((folder / SOURCE_RECORD).read_text())["pre_tokenizer"]["matches"] is True
    win.tasks.stop_all()
    assert win.tasks.wait_all(60000)
