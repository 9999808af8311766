"""The Train pane's worker on every zoo family: a run started with the Train button on the family's
tiny model finishes, plots its steps against the family's memory estimate, and leaves a Library entry
that names the family's model as its base — what a user who brings Qwen, Gemma or Phi-3 sees."""

# Fixtures are imported from the core helpers and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _lib_fixtures import one_thread  # noqa: F401
from _zoo import FAMILIES, zoo  # noqa: F401

from studio.core.config import apply_overrides

STEPS = 2


@pytest.fixture()
def four_rows(demo_train, tmp_path) -> Path:
    """The first rows of the demo data: the pane's dataset check and the two steps stay cheap."""
    path = tmp_path / "four.jsonl"
    path.write_text("".join(demo_train.read_text(encoding="utf-8").splitlines(keepends=True)[:4]), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _threads(one_thread):
    return None


def _stop_and_wait(pane) -> None:
    """Before pytest-qt closes the pane: a run still going (a failed assertion mid-run) is stopped and
    its thread joined, so no QThread outlives the test."""
    pane.stop_training()
    assert pane.wait_for_worker(120000), "the training thread was left running"


@pytest.mark.parametrize("family", FAMILIES)
def test_the_train_button_trains_the_family_into_the_library(qtbot, zoo, four_rows, family):
    from studio.core.library import registry
    from studio.qt.panes.train.pane import TrainPane
    from studio.qt.state import AppState, default_config

    model = zoo(family)
    state = AppState()
    state.set_config(apply_overrides(default_config(), {
        "name": f"zoo-{family}", "model.path": str(model), "dataset.train": [str(four_rows)], "dataset.eval": [],
        "dataset.eval_ratio": 0.0, "lora.target_modules": ["all-linear"], "training.max_steps": STEPS,
        "training.batch_size": 2, "training.max_seq_len": 96, "training.eval_steps": 0, "training.save_steps": 0,
        "training.lr": 1e-3,
    }))
    pane = TrainPane(state)
    qtbot.addWidget(pane, before_close_func=_stop_and_wait)
    pane.show()
    pane.set_model_ready(True)
    assert pane.train_button.isEnabled(), pane.train_button.toolTip()
    with qtbot.waitSignal(pane.run_finished, timeout=180000) as finished:
        qtbot.mouseClick(pane.train_button, Qt.MouseButton.LeftButton)
    ev = finished.args[0]
    assert ev.status == "completed" and ev.step == STEPS, ev.reason
    qtbot.waitUntil(lambda: not pane.is_running(), timeout=30000)
    assert pane.loss_plot.count("train") == STEPS
    estimate = pane.memory_plot.reference("estimate")
    assert estimate is not None and estimate > 0  # the family's estimate, drawn against its measured memory
    assert f"Completed at step {STEPS}/{STEPS}" in pane.progress.format()

    entry = registry.get_entry(ev.library_id)
    assert [e.id for e in registry.list_entries()] == [entry.id]
    assert Path(entry.base_model).resolve() == model.resolve()
    adapter_cfg = json.loads((entry.adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    assert Path(adapter_cfg["base_model_name_or_path"]).resolve() == model.resolve()
    # The family's chat template travels with the adapter, so the playground and exports chat like training.
    assert (entry.adapter_dir / "chat_template.jinja").read_text(encoding="utf-8") == \
        (model / "chat_template.jinja").read_text(encoding="utf-8")
    assert f"adapter saved: {ev.adapter_path}" in pane.log.toPlainText()
