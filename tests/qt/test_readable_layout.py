"""What a newcomer found cut off or forgotten: the export dialog's destination and wrapped text, the
status bar's progress words, the Multi-GPU dialog's width, the findings' long columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel, QProgressBar

from studio.core.library.registry import LibraryEntry


def _entry(entry_id: str, name: str) -> LibraryEntry:
    # The dialog reads only the entry's id and name; the export itself is not run here.
    return LibraryEntry(id=entry_id, name=name, path=Path("/nonexistent") / name, base_model="base",
                        base_model_hash="", dataset_fingerprint="", config={}, metrics={}, run_dir="",
                        created="", size_bytes=0, method="lora")


@pytest.fixture()
def export_dialog(qtbot):
    from studio.qt.panes.library.export import ExportDialog

    def make(entry: LibraryEntry) -> ExportDialog:
        dialog = ExportDialog(entry)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        return dialog

    return make


def test_export_dialog_remembers_a_custom_destination(export_dialog, tmp_path):
    alpha, beta = _entry("a1", "alpha"), _entry("b2", "beta")
    first = export_dialog(alpha)
    assert first.dest.text().endswith("alpha-merged-bf16")
    mine = tmp_path / "my-exports"
    mine.mkdir()
    first.set_choice("gguf", gguf_type="q4_k_m", out=mine / "alpha for ollama")
    assert first.ok_button.isEnabled()
    first.accept()

    again = export_dialog(alpha)  # same adapter: the format and the exact destination come back
    assert again.choice().kind == "gguf" and again.choice().gguf_type == "q4_k_m"
    assert again.dest.text() == str(mine / "alpha for ollama")
    again.set_choice("merged", dtype="fp32")  # another format: a suggestion in the chosen folder
    assert Path(again.dest.text()) == mine / "alpha-merged-fp32"
    again.reject()

    other = export_dialog(beta)  # another adapter: the folder is kept, the name is its own
    assert Path(other.dest.text()) == mine / "beta-gguf-q4_k_m"


def test_export_dialog_forgets_a_folder_that_is_gone(export_dialog, tmp_path):
    from studio.core import paths

    gone = tmp_path / "gone"
    gone.mkdir()
    first = export_dialog(_entry("a1", "alpha"))
    first.set_choice("merged", out=gone / "alpha-merged-bf16")
    first.accept()
    gone.rmdir()
    nxt = export_dialog(_entry("b2", "beta"))
    assert Path(nxt.dest.text()) == paths.exports_dir() / "beta-merged-bf16"


def test_export_dialog_grows_when_the_exists_message_shows(export_dialog, tmp_path):
    dialog = export_dialog(_entry("a1", "alpha"))
    height = dialog.height()
    taken = tmp_path / "taken"
    taken.mkdir()
    dialog.set_choice("merged", out=taken)
    assert dialog.problem.isVisible() and "already exists" in dialog.problem.text()
    assert dialog.height() > height
    for label in dialog.findChildren(QLabel):  # every wrapped line still has its room
        if label.isVisible() and label.wordWrap():
            assert label.height() >= label.heightForWidth(label.width()), label.text()


def test_launch_dialog_wraps_instead_of_stretching(qtbot, tmp_path):
    from studio.qt.dialogs.launch_dialog import LaunchDialog
    from studio.qt.state import default_config

    dialog = LaunchDialog(default_config(), tmp_path / "launch")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert not dialog.result_label.isVisible()
    intro = next(lb for lb in dialog.findChildren(QLabel) if lb.text().startswith("Writes config.yaml"))
    assert intro.wordWrap() and dialog.width() < intro.fontMetrics().horizontalAdvance(intro.text())
    files = dialog.write()
    assert all(Path(p).exists() for p in files.values())
    assert dialog.result_label.isVisible() and "accelerate launch" in dialog.result_label.text()
    assert dialog.result_label.height() >= dialog.result_label.heightForWidth(dialog.result_label.width())


def test_status_bar_says_the_progress_once(window):
    message = "Preparing the bundled model (once)…"
    window._show_model_progress(0.4, message)
    texts = [w.text() for w in window.statusBar().findChildren(QLabel) if w.isVisible()]
    texts += [w.text() for w in window.statusBar().findChildren(QProgressBar) if w.isVisible()]
    assert sum(message in t for t in texts) == 1
    assert window.model_progress.isVisible() and window.model_progress.text() == "40%"


def test_findings_long_places_are_whole_in_tooltips(qtbot, tmp_path):
    from studio.core.datasets.scan import scan
    from studio.core.datasets.validate import validate
    from studio.qt.panes.dataset.findings_view import FindingsView

    data = tmp_path / "a-dataset-file-with-a-rather-long-name.jsonl"
    data.write_text('{"prompt": "p", "completion": "c"}\n' * 3 + "{broken\n", encoding="utf-8")
    evals = tmp_path / "eval.jsonl"
    evals.write_text('{"prompt": "q", "completion": "d"}\n', encoding="utf-8")
    view = FindingsView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    view.set_report(validate(scan([data]), eval_result=scan([evals])))
    assert view.items()
    header = view.tree.header()
    assert 150 <= header.sectionSize(0) <= 240 and 110 <= header.sectionSize(1) <= 260
    for item in view.items():
        assert item.text(1) in item.toolTip(1) and str(data) in item.toolTip(1)
        assert item.toolTip(2) == item.text(2)
