"""The real window, driven like a user would: rooms, drops, train, library, errors, persistence."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox


def test_window_has_four_rooms_and_title(window):
    assert window.windowTitle() == "Fine-Tuning Studio"
    names = [window.sidebar.item(i).text() for i in range(window.sidebar.count())]
    assert names == ["Dataset", "Configure", "Train", "Library"]
    window.show_pane("Train")
    assert window.stack.currentWidget() is window.train_pane


def test_status_bar_shows_device(window, qtbot):
    qtbot.waitUntil(lambda: "CPU" in window.device_label.text() or "GPU" in window.device_label.text(), timeout=30000)


def test_drop_dataset_selects_it(window, qtbot, tmp_path, demo_train):
    copy = tmp_path / "mine.jsonl"
    copy.write_bytes(demo_train.read_bytes())
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(copy))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert window.state.config.dataset.train == [str(copy)]
    assert window.current_pane() == "Dataset"
    qtbot.waitUntil(lambda: window.dataset_pane.model.rowCount() == 215, timeout=20000)


def test_train_streams_loss_then_adapter_in_library_then_export(window, qtbot, tmp_path):
    window.show_pane("Train")
    qtbot.waitUntil(lambda: window.train_pane.train_button.isEnabled(), timeout=30000)
    with qtbot.waitSignal(window.train_pane.run_finished, timeout=120000) as finished:
        qtbot.mouseClick(window.train_pane.train_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.train_pane.loss_plot.count("train") >= 2, timeout=120000)
    assert finished.args[0].status == "completed"
    assert window.train_pane.loss_plot.count("eval") >= 2  # baseline + later
    qtbot.waitUntil(lambda: not window.train_pane.is_running(), timeout=30000)
    # Redraws come from the timer, not from each event.
    assert window.train_pane.loss_plot.redraws <= window.train_pane.loss_plot.count("train") + 5
    lib = window.library_pane
    qtbot.waitUntil(lambda: lib.table.rowCount() == 1, timeout=10000)
    lib.select_row(0)
    assert lib.export_button.isEnabled()
    out = tmp_path / "merged"
    lib._export(str(out))
    assert lib.busy
    qtbot.waitUntil(lambda: not lib.busy, timeout=120000)
    assert (out / "config.json").exists() and any(out.glob("*.safetensors"))
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)


def test_stop_button_stops_at_next_step(window, qtbot):
    window.state.update(**{"training.max_steps": 200, "training.save_steps": 50})
    qtbot.waitUntil(lambda: window.train_pane.train_button.isEnabled(), timeout=30000)
    with qtbot.waitSignal(window.train_pane.run_finished, timeout=120000) as finished:
        window.train_pane.start_training()
        qtbot.waitUntil(lambda: window.train_pane.loss_plot.count("train") >= 1, timeout=120000)
        qtbot.mouseClick(window.train_pane.stop_button, Qt.MouseButton.LeftButton)
    ev = finished.args[0]
    assert ev.status == "stopped" and ev.step < 200


def test_exception_in_any_thread_shows_dialog_and_app_survives(window, qtbot):
    def boom():
        raise RuntimeError("disk on fire")

    t = threading.Thread(target=boom)
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(window.reporter.shown) == 1, timeout=5000)
    message, detail = window.reporter.shown[0]
    assert "disk on fire" in message and "Traceback" in detail
    dialogs = [w for w in window.findChildren(QMessageBox) if w.isVisible()]
    assert dialogs and dialogs[0].detailedText()
    window.show_pane("Configure")  # still alive
    assert window.current_pane() == "Configure"


def test_settings_and_geometry_persist(qtbot, window):
    from studio.qt.main_window import MainWindow

    window.resize(701, 555)  # within the offscreen screen (800x600), which restoreGeometry clamps to
    window.show_pane("Library")
    window.state.update(**{"lora.r": 16})
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.current_pane() == "Library"
    assert again.size().width() == 701
    assert again.state.config.lora.r == 16


def test_close_during_training_asks_then_stops_cleanly(window, qtbot, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.state.update(**{"training.max_steps": 500})
    qtbot.waitUntil(lambda: window.train_pane.train_button.isEnabled(), timeout=30000)
    window.train_pane.start_training()
    qtbot.waitUntil(lambda: window.train_pane.loss_plot.count("train") >= 1, timeout=120000)
    window.close()
    assert not window.train_pane.is_running()
    from studio.core.training import runs

    [summary] = runs.list_runs()
    assert summary.status == "stopped" and summary.resumable


def test_window_module_does_not_import_heavy_ml_libraries():
    code = (
        "import sys, json; import studio.qt.app, studio.qt.main_window; "
        "print(json.dumps([m for m in ('torch','transformers','peft','bitsandbytes','trl') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
