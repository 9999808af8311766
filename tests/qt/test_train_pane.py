"""The Train room on a tiny real model: live curves (loss, eval, memory vs estimate), pause/resume,
stop with a checkpoint, and the Runs view (history, overlay, ranking, interrupted runs with Resume)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PySide6.QtCore import Qt

from studio.core.config import apply_overrides
from studio.core.training import runs


@pytest.fixture()
def state(tiny_model_dir, demo_train, demo_eval):
    from studio.qt.state import AppState, default_config

    st = AppState()
    st.set_config(apply_overrides(default_config(), {
        "name": "pane-test",
        "model.path": str(tiny_model_dir),
        "dataset.train": [str(demo_train)],
        "dataset.eval": [str(demo_eval)],
        "training.max_steps": 4,
        "training.batch_size": 2,
        "training.max_seq_len": 96,
        "training.eval_steps": 2,
        "training.save_steps": 2,
        "training.lr": 1e-3,
    }))
    return st


@pytest.fixture()
def pane(qtbot, state):
    from studio.qt.panes.train.pane import TrainPane

    p = TrainPane(state)
    qtbot.addWidget(p)
    p.resize(1200, 800)
    p.show()
    p.set_model_ready(True)
    yield p
    p.stop_training()
    assert p.wait_for_worker(120000), "the training thread was left running"


def _log(pane) -> str:
    return pane.log.toPlainText()


def test_a_run_streams_loss_eval_memory_against_the_estimate(pane, qtbot):
    with qtbot.waitSignal(pane.run_finished, timeout=180000) as finished:
        qtbot.mouseClick(pane.train_button, Qt.MouseButton.LeftButton)
        assert pane.stop_button.isEnabled() and not pane.train_button.isEnabled()
    assert finished.args[0].status == "completed"
    qtbot.waitUntil(lambda: not pane.is_running(), timeout=30000)
    assert pane.loss_plot.count("train") == 4
    assert pane.loss_plot.count("eval") == 3  # baseline at step 0, then steps 2 and 4
    assert pane.lr_plot.count("lr") == 4 and pane.speed_plot.count("tokens/s") == 4
    assert pane.memory_plot.count("measured") == 4
    estimate = pane.memory_plot.reference("estimate")
    assert estimate is not None and estimate > 0
    pane.memory_plot.redraw_now()
    xs, ys = pane.memory_plot._references["estimate"][1].getData()
    assert list(ys) == [estimate, estimate] and xs[-1] == 4  # a flat line across the plotted steps
    # Peak downsampling and clip-to-view reach every curve (they keep long runs cheap to redraw).
    for plot in pane.plots:
        for name in plot.curve_names():
            opts = plot.item(name).opts
            assert opts["autoDownsample"] and opts["downsampleMethod"] == "peak" and opts["clipToView"]
    assert "estimated peak" in _log(pane) and "checkpoint written at step 2" in _log(pane)
    ev = finished.args[0]  # "will it stop?" on the eval prompts, in the end-of-run log
    assert ev.eos_checked == 8 and f"{round(ev.eos_share * 8)} of 8 eval answers ended with EOS" in _log(pane)
    assert "Completed at step 4/4" in pane.progress.format()
    # Before/after beside the curves: the base at step 0 against the saved adapter, as journaled.
    table = pane.before_after.table
    rows = {table.item(i, 0).text(): (table.item(i, 1).text(), table.item(i, 2).text())
            for i in range(table.rowCount())}
    rep = ev.before_after
    assert rows["Eval loss"] == (f"{rep['eval_loss']['before']:.4f}", f"{rep['eval_loss']['after']:.4f}")
    assert set(rows) == {"Eval loss", "Perplexity", "Exact match (short answers)", "Answers end with EOS"}
    assert "before → after, on the eval split:" in _log(pane)
    qtbot.waitUntil(pane.train_button.isEnabled, timeout=10000)  # after the thread's finished signal
    assert not pane.stop_button.isEnabled() and not pane.pause_button.isEnabled()
    # The Runs tab already lists it.
    view = pane.runs_view
    assert view.table.rowCount() == 1 and view.summaries[0].status == "completed"
    assert view.ranking.rowCount() == 1 and "Recommended" in view.recommendation.text()


def test_pause_resume_then_stop_writes_a_checkpoint(pane, qtbot, state):
    state.update(**{"training.max_steps": 300, "training.save_steps": 0, "training.eval_steps": 0})
    with qtbot.waitSignal(pane.run_finished, timeout=180000) as finished:
        pane.start_training()
        qtbot.waitUntil(lambda: pane.loss_plot.count("train") >= 1, timeout=120000)
        qtbot.mouseClick(pane.pause_button, Qt.MouseButton.LeftButton)
        assert pane.pause_button.text() == "Resume"
        qtbot.waitUntil(lambda: pane.progress.format().startswith("Paused at step"), timeout=60000)
        held = pane.loss_plot.count("train")
        qtbot.wait(800)
        assert pane.loss_plot.count("train") == held  # nothing trains while paused
        assert "ETA" in pane.progress.format() and "elapsed" in pane.progress.format()
        qtbot.mouseClick(pane.pause_button, Qt.MouseButton.LeftButton)
        assert pane.pause_button.text() == "Pause"
        qtbot.waitUntil(lambda: pane.loss_plot.count("train") >= held + 2, timeout=60000)
        qtbot.mouseClick(pane.stop_button, Qt.MouseButton.LeftButton)
        assert not pane.stop_button.isEnabled()
    ev = finished.args[0]
    assert ev.status == "stopped" and ev.step < 300
    log = _log(pane)
    assert "Paused at step" in log and "Resumed" in log and "Stopping after the current step" in log
    assert f"checkpoint written at step {ev.step}" in log and "checkpoint saved" in log
    run_dir = runs.list_runs()[0].run_dir
    assert runs.last_checkpoint(run_dir).name == f"checkpoint-{ev.step}"


def _two_finished_runs(tiny_model_dir, demo_train, demo_eval):
    from studio.core.config import RunConfig
    from studio.core.training.engine import train

    out = []
    for name, r in (("rank-8", 8), ("rank-2", 2)):
        cfg = apply_overrides(RunConfig(name=name), {
            "model.path": str(tiny_model_dir), "dataset.train": [str(demo_train)],
            "dataset.eval": [str(demo_eval)], "lora.r": r, "training.max_steps": 3, "training.batch_size": 2,
            "training.max_seq_len": 96, "training.eval_steps": 3, "training.save_steps": 3,
        })
        out.append(train(cfg))
    return out


def test_runs_view_reopens_history_and_overlays_two_runs(qtbot, tiny_model_dir, demo_train, demo_eval):
    from studio.qt.panes.train.runs_view import RunsView

    _two_finished_runs(tiny_model_dir, demo_train, demo_eval)
    view = RunsView()  # a fresh view, as after reopening the app: everything comes from disk
    qtbot.addWidget(view)
    view.resize(1100, 700)
    view.show()
    assert view.table.rowCount() == 2
    header = [view.table.horizontalHeaderItem(j).text() for j in range(view.table.columnCount())]
    for col in ("Run", "Status", "Model", "Dataset", "Method", "Train loss", "Eval loss", "Duration",
                "Tokens/s", "Peak memory"):
        assert col in header
    row = {header[j]: view.table.item(0, j).text() for j in range(len(header))}
    assert row["Status"] == "completed" and row["Method"] == "LoRA" and row["Model"] == tiny_model_dir.name
    assert row["Peak memory"].endswith("GiB") and row["Eval loss"] != "—"
    view.select_rows([0, 1])
    assert len(view.overlay.curve_names()) == 2
    assert all(view.overlay.count(n) == 3 for n in view.overlay.curve_names())
    view.metric_box.setCurrentText("Eval loss")
    assert [view.overlay.count(n) for n in view.overlay.curve_names()] == [2, 2]  # baseline + step 3
    assert not view.resume_button.isEnabled()  # completed runs have nothing to resume
    # Ranking: both runs, ordered by best eval loss, one marked as the recommendation.
    assert view.ranking.rowCount() == 2
    losses = [float(view.ranking.item(i, 2).text()) for i in range(2)]
    assert losses == sorted(losses)
    marked = [view.ranking.item(i, 1).text() for i in range(2) if view.ranking.item(i, 1).text().startswith("★")]
    assert len(marked) == 1 and marked[0][2:] in view.recommendation.text()


def test_a_dpo_run_draws_rewards_and_accuracy_and_the_overlay_offers_them(pane, qtbot, state, tmp_path):
    """A preference run: the header says DPO, rewards and preference accuracy replace the learning-rate
    and throughput plots and get every step's points, and the Runs overlay offers the reward curves."""
    import json

    pairs = [("What is 2 + 2?", "4", "Maybe 5."), ("Name a primary colour.", "Red.", "Purple."),
             ("Capital of France?", "Paris.", "London."), ("Legs on a spider?", "Eight.", "Six."),
             ("Frozen water?", "Ice.", "Steam."), ("Closest planet to the sun?", "Mercury.", "Jupiter.")]
    rows = [json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in pairs]
    train_file, eval_file = tmp_path / "pairs_train.jsonl", tmp_path / "pairs_eval.jsonl"
    train_file.write_text("".join(rows[:4]), encoding="utf-8")
    eval_file.write_text("".join(rows[4:]), encoding="utf-8")
    state.update(**{"objective": "dpo", "dataset.train": [str(train_file)], "dataset.eval": [str(eval_file)],
                    "training.max_steps": 3, "training.eval_steps": 0, "training.save_steps": 0})
    assert "DPO (β 0.1) on LoRA r=" in pane.summary.text()
    assert pane.rewards_plot.isVisibleTo(pane) and not pane.lr_plot.isVisibleTo(pane)
    with qtbot.waitSignal(pane.run_finished, timeout=180000) as finished:
        qtbot.mouseClick(pane.train_button, Qt.MouseButton.LeftButton)
    assert finished.args[0].status == "completed"
    for name in ("chosen", "rejected", "margin"):
        assert pane.rewards_plot.count(name) == 3
    assert pane.accuracy_plot.count("train") == 3
    assert pane.accuracy_plot.count("eval") == 2 and pane.rewards_plot.count("eval margin") == 2  # step 0 and 3
    pane.accuracy_plot.redraw_now()
    xs, ys = pane.accuracy_plot.item("eval").getData()
    assert list(xs) == [0, 3] and all(0.0 <= y <= 1.0 for y in ys)
    assert "preference accuracy" in _log(pane) and "margin" in pane.status.text()
    assert "DPO on LoRA on " in _log(pane)  # the run-start line names the objective the engine journaled
    # A DPO loss of 0.69 is labelled as such, not "690" under "loss (x0.001)".
    assert not any(plot.getAxis("left").autoSIPrefix for plot in pane.plots)
    table = pane.before_after.table
    labels = [table.item(i, 0).text() for i in range(table.rowCount())]
    assert "Prefers the chosen answer" in labels and "Perplexity" not in labels  # a DPO loss is no next-token loss
    qtbot.waitUntil(lambda: not pane.is_running(), timeout=30000)
    state.update(objective="sft")  # the finished run's curves stay in view until the next run
    assert pane.rewards_plot.isVisibleTo(pane)
    view = pane.runs_view
    offered = [view.metric_box.itemText(i) for i in range(view.metric_box.count())]
    assert "Reward margin" not in offered  # nothing selected: only the curves every run has
    view.select_rows([0])
    view.metric_box.setCurrentText("Eval preference accuracy")
    [curve] = view.overlay.curve_names()
    assert view.overlay.count(curve) == 2


def _journaled_run(name: str, objective: str, evals) -> None:
    """A finished run as the engine journals it (RunStarted, evals, RunFinished), in the runs folder."""
    import json

    from studio.core import paths
    from studio.core.training.events import Evaluation, RunFinished, RunStarted

    run_dir = paths.runs_dir() / name
    run_dir.mkdir(parents=True)
    events = [RunStarted(run_id=name, run_dir=str(run_dir), model="m", dataset=["d.jsonl"], dataset_fingerprint="",
                         method="lora", device="cpu", total_steps=4, train_rows=8, eval_rows=2,
                         trainable_params=1000, total_params=10**6, objective=objective, t=1.0)]
    events += [Evaluation(step=step, eval_loss=loss, perplexity=float("nan"), rewards=rewards, t=2.0 + step)
               for step, loss, rewards in evals]
    events.append(RunFinished(status="completed", reason="Finished.", step=4, t=9.0))
    (run_dir / runs.EVENTS_FILE).write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events), "utf-8")


def test_runs_ranking_ranks_each_objective_by_its_own_measure(qtbot):
    from studio.qt.panes.train.runs_view import RunsView

    _journaled_run("sft-a", "sft", [(0, 3.0, {}), (4, 0.9, {})])
    _journaled_run("sft-b", "sft", [(0, 3.0, {}), (4, 0.4, {})])
    # The lower DPO loss belongs to the run that ranks the chosen answers worse: loss must not decide.
    _journaled_run("dpo-low-loss", "dpo", [(0, 0.69, {"accuracy": 0.0}), (4, 0.30, {"accuracy": 0.5, "margin": 0.2})])
    _journaled_run("dpo-accurate", "dpo", [(0, 0.69, {"accuracy": 0.0}), (4, 0.60, {"accuracy": 1.0, "margin": 0.05})])
    view = RunsView()
    qtbot.addWidget(view)
    view.show()
    cells = [[view.ranking.item(r, c).text() if view.ranking.item(r, c) else "" for c in range(5)]
             for r in range(view.ranking.rowCount())]
    assert [row[0] for row in cells] == ["SFT runs, by best eval loss", "1", "2",
                                         "DPO runs, by best eval preference accuracy, then reward margin", "1", "2"]
    assert [row[1] for row in cells if row[0].isdigit()] == ["★ sft-b", "sft-a", "★ dpo-accurate", "dpo-low-loss"]
    assert cells[4][2] == "100%, margin +0.050" and cells[4][4] == "DPO on LoRA"
    assert "within each objective" in view.rank_title.text()
    text = view.recommendation.text()
    assert "SFT: sft-b: lowest eval loss" in text and "DPO: dpo-accurate: highest eval preference accuracy" in text
    methods = {view.table.item(r, 0).text(): view.table.item(r, 4).text() for r in range(view.table.rowCount())}
    assert methods["dpo-accurate"] == "DPO on LoRA" and methods["sft-a"] == "LoRA"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_interrupted_run_shows_resume_and_continues_in_the_pane(pane, qtbot, state):
    """A run whose owner died mid-way (journal without run_finished, dead pid) is interrupted;
    Resume in the Runs tab continues it in the Train tab from its checkpoint, with the config it was
    started with, and leaves the user's current config (in memory and on disk) as it was."""
    from studio.core.control import Control
    from studio.core.training.engine import train
    from studio.qt.state import _state_file

    state.update(**{"training.max_steps": 6, "training.eval_steps": 0, "training.save_steps": 2})
    control = Control()

    def stop_at_3(ev):
        if ev.kind == "step" and ev.step == 3:
            control.request_stop()

    result = train(state.config, control=control, emit=stop_at_3)
    run_dir = result.run_dir
    # Make it look like the process was killed after step 3: no finish line, owner gone, last
    # checkpoint at step 2 (the stop checkpoint never made it to disk).
    import shutil

    shutil.rmtree(run_dir / runs.CHECKPOINTS_DIR / "checkpoint-3")
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines()
    (run_dir / runs.EVENTS_FILE).write_text("\n".join(ln for ln in lines if '"run_finished"' not in ln) + "\n")
    (run_dir / runs.LOCK_FILE).write_text(str(_dead_pid()))
    # Meanwhile the user set up their next run differently.
    state.update(**{"name": "next-idea", "training.max_steps": 2, "lora.r": 4, "training.lr": 2e-4})
    user_cfg, user_file = state.config, _state_file().read_bytes()
    changes = []
    state.config_changed.connect(changes.append)

    view = pane.runs_view
    view.refresh()
    assert view.table.rowCount() == 1
    assert view.table.item(0, 1).text() == "interrupted"
    assert "Resume continues" in view.table.item(0, 1).toolTip()
    assert not view.resume_button.isEnabled()
    view.select_rows([0])
    assert view.resume_button.isEnabled()
    with qtbot.waitSignal(pane.run_finished, timeout=180000) as finished:
        qtbot.mouseClick(view.resume_button, Qt.MouseButton.LeftButton)
        assert pane.tabs.currentIndex() == 0
        assert "r=8" in pane.summary.text() and "lr 0.001" in pane.summary.text()  # the header shows the run's config
    assert finished.args[0].status == "completed" and finished.args[0].step == 6  # the run's 6 steps, not 2
    qtbot.waitUntil(pane.train_button.isEnabled, timeout=30000)  # after the thread's finished signal
    assert state.config == user_cfg and _state_file().read_bytes() == user_file and changes == []
    assert "next run" not in pane.summary.text() and "r=4" in pane.summary.text()
    # The replayed steps 1-2 and the resumed 3-6 make one curve.
    assert pane.loss_plot.count("train") == 6
    qtbot.waitUntil(lambda: view.summaries and view.summaries[0].status == "completed", timeout=10000)
    assert "Resuming from checkpoint-2" in _log(pane)


def test_tracker_boxes_follow_what_is_installed(pane, state, monkeypatch):
    from studio.core.training import trackers

    installed = set(trackers.available())
    for name, box in pane.tracker_boxes.items():
        assert box.isEnabled() == (name in installed)
        if name not in installed:
            assert "not installed" in box.toolTip()
    # Enabled boxes write the config field; the choice comes back from the config on restart.
    pane._installed_trackers = set(trackers.TRACKERS)
    pane._sync_buttons()
    pane.tracker_boxes["mlflow"].setChecked(True)
    assert state.config.training.report_to == ["mlflow"]
    state.update(**{"training.report_to": []})
    assert not pane.tracker_boxes["mlflow"].isChecked()


def test_header_names_the_running_runs_dataset_not_the_current_one(pane, qtbot, state, tmp_path, demo_train):
    other = tmp_path / "other_data.jsonl"
    other.write_bytes(demo_train.read_bytes())
    with qtbot.waitSignal(pane.run_finished, timeout=180000):
        qtbot.mouseClick(pane.train_button, Qt.MouseButton.LeftButton)
        state.update(**{"dataset.train": [str(other)]})  # the Dataset pane opens another file meanwhile
        assert demo_train.name in pane.summary.text() and "other_data" not in pane.summary.text()
        assert "next run" in pane.summary.text()
    qtbot.waitUntil(lambda: not pane.is_running(), timeout=30000)
    assert "other_data.jsonl" in pane.summary.text(), "once it ends, the header shows what trains next"


def test_train_is_disabled_with_the_reason_for_an_unreadable_dataset(pane, state, tmp_path, demo_train):
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(bytes(range(256)) * 40)
    state.update(**{"dataset.train": [str(junk)]})
    assert not pane.train_button.isEnabled()
    assert "junk.jsonl" in pane.train_button.toolTip() and "binary" in pane.train_button.toolTip()
    assert "binary" in pane.summary.text()
    pane.start_training()  # a programmatic start is refused the same way
    assert not pane.is_running() and pane.task is None
    state.update(**{"dataset.train": [str(tmp_path / "gone.jsonl")]})
    assert not pane.train_button.isEnabled() and "not found" in pane.train_button.toolTip()
    state.update(**{"dataset.train": [str(demo_train)]})
    assert pane.train_button.isEnabled()


def test_a_failed_run_shows_no_traceback_and_can_be_deleted(pane, qtbot, state, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from studio.core.errors import describe_exception

    def boom(*_a, **_k):
        raise RuntimeError('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
                           "ValueError: the tokenizer has no pad token")

    monkeypatch.setattr("studio.core.training.engine._train", boom)
    with qtbot.waitSignal(pane.run_failed, timeout=60000) as failed:
        qtbot.mouseClick(pane.train_button, Qt.MouseButton.LeftButton)
    message = failed.args[0]
    assert "Traceback" not in message and 'File "' not in message and "no pad token" in message
    assert describe_exception(RuntimeError("x\n" * 300))[0].count("\n") == 0
    qtbot.waitUntil(lambda: not pane.is_running(), timeout=30000)
    view = pane.runs_view
    view.refresh()
    blank = [s for s in view.summaries if s.status == "failed"]
    assert len(blank) == 1 and blank[0].step == 0 and "Traceback" not in blank[0].reason
    view.select_rows([view.summaries.index(blank[0])])
    assert view.delete_button.isEnabled()
    monkeypatch.setattr(QMessageBox, "question", lambda *_a, **_k: QMessageBox.StandardButton.Yes)
    view.delete_button.click()
    assert not blank[0].run_dir.exists()
    assert all(s.run_dir != blank[0].run_dir for s in view.summaries)
