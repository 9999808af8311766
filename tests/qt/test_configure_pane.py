"""The Configure room driven like a user: pick a model, edit knobs, watch the estimate, fix a run
that does not fit, save and load configs, and get told plainly when a folder cannot be used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from studio.core.config import TARGET_PRESETS, apply_overrides, load_config
from studio.core.configure import default_lr
from studio.core.configure.recipes import PREFERENCE_LR
from studio.core.memory import BREAKDOWN_KEYS, GiB, estimate
from studio.core.models.introspect import inspect_model

WAIT = 60000  # inspection imports transformers in a worker: generous on a busy machine


@pytest.fixture()
def pane(qtbot, tiny_model_dir):
    from studio.qt.panes.configure.pane import ConfigurePane
    from studio.qt.state import AppState, default_config
    from studio.qt.workers.task import TaskRunner

    state = AppState()
    state.set_config(apply_overrides(default_config(), {"model.path": str(tiny_model_dir),
                                                        "training.batch_size": 2,
                                                        "training.max_seq_len": 128}))
    tasks = TaskRunner()
    p = ConfigurePane(state, tasks)
    qtbot.addWidget(p)
    p.resize(1130, 740)
    p.show()
    yield p
    tasks.stop_all()
    assert tasks.wait_all(60000), "a worker thread was left running"


def ready(qtbot, pane) -> None:
    """Wait until the model is inspected, the machine probed and an estimate shown — the one from the
    dataset's token lengths when the config has a dataset (they are counted in a worker, after the
    first, worst-case estimate)."""
    has_data = bool(pane.state.config.dataset.train)
    qtbot.waitUntil(lambda: pane.info is not None and pane.estimate is not None
                    and (not has_data or pane.estimate.basis == "dataset"), timeout=WAIT)


def expected_total(pane) -> int:
    kind, _budget, _name = pane.budget(pane.state.config)
    return estimate(inspect_model(Path(pane.state.config.model.path)), pane.state.config, device_kind=kind,
                    lengths=pane.lengths).total_bytes


def test_model_info_appears(qtbot, pane, tiny_model_dir):
    ready(qtbot, pane)
    info = inspect_model(tiny_model_dir)
    box = pane.model_box
    assert info.architecture in box.architecture.text()
    assert f"{info.total_params:,}" in box.params.text()
    assert f"{info.context_length:,}" in box.context.text()
    assert f"{info.num_layers} layers" in box.shape.text()
    names = [pane.targets.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(pane.targets.list.count())]
    assert names == info.target_names


def test_target_presets_check_the_right_layers(qtbot, pane):
    ready(qtbot, pane)
    picker = pane.targets
    qtbot.mouseClick(picker.preset_buttons["q,v"], Qt.MouseButton.LeftButton)
    assert pane.state.config.lora.target_modules == TARGET_PRESETS["q,v"]
    assert picker.checked_names() == ["q_proj", "v_proj"]
    qtbot.mouseClick(picker.preset_buttons["all attention"], Qt.MouseButton.LeftButton)
    assert picker.checked_names() == ["q_proj", "k_proj", "v_proj", "o_proj"]
    qtbot.mouseClick(picker.preset_buttons["all linear"], Qt.MouseButton.LeftButton)
    assert pane.state.config.lora.target_modules == ["all-linear"]
    assert picker.checked_names() == pane.info.target_names
    # free selection: untick one layer
    picker.item_for("down_proj").setCheckState(Qt.CheckState.Unchecked)
    assert pane.state.config.lora.target_modules == [n for n in pane.info.target_names if n != "down_proj"]
    qtbot.waitUntil(lambda: pane.estimate is not None and "down_proj" not in pane.estimate.targets, timeout=2000)


def test_alpha_follows_rank_only_while_linked(qtbot, pane):
    ready(qtbot, pane)
    assert pane.alpha_link.isChecked()
    pane.rank.setValue(16)
    assert pane.state.config.lora.r == 16 and pane.state.config.lora.alpha == 32
    assert pane.alpha.value() == 32
    pane.alpha_link.setChecked(False)
    pane.rank.setValue(4)
    assert pane.state.config.lora.r == 4 and pane.state.config.lora.alpha == 32
    pane.alpha.setValue(12)
    assert pane.state.config.lora.alpha == 12
    pane.alpha_link.setChecked(True)  # linking again snaps alpha back to 2 x rank
    assert pane.state.config.lora.alpha == 8


def test_batch_size_moves_the_bar_to_the_estimators_total(qtbot, pane):
    ready(qtbot, pane)
    bar = pane.panel.bar
    assert bar.total_bytes == expected_total(pane)
    before = bar.total_bytes
    pane.batch.setValue(pane.batch.value() * 4)
    qtbot.waitUntil(lambda: bar.total_bytes != before and pane.estimate.basis == "dataset", timeout=WAIT)
    assert bar.total_bytes == expected_total(pane)
    assert bar.total_bytes > before
    for key in BREAKDOWN_KEYS:  # the legend shows every term
        assert pane.panel.legend.sizes[key].text() not in ("", "–")


def test_a_run_that_does_not_fit_offers_suggestions_that_make_it_fit(qtbot, pane):
    ready(qtbot, pane)
    panel = pane.panel
    panel.plan_for.setCurrentIndex(1)  # the smallest GPU on the list
    budget = int(panel.planned_gpu_gib() * GiB)
    info = inspect_model(Path(pane.state.config.model.path))
    batch = pane.state.config.training.batch_size
    while estimate(info, apply_overrides(pane.state.config, {"training.batch_size": batch}),
                   device_kind="cuda", lengths=pane.lengths).total_bytes <= budget:
        batch *= 2
    pane.batch.setValue(batch)
    qtbot.waitUntil(lambda: panel.fits is False, timeout=WAIT)
    assert "not fit" in panel.badge.text()
    assert panel.suggestion_cards and panel.suggestion_buttons
    fitting = [c for c in panel.suggestion_cards if c.suggestion.fits]
    assert fitting, [c.suggestion.text for c in panel.suggestion_cards]
    card = fitting[0]
    qtbot.mouseClick(card.apply_button, Qt.MouseButton.LeftButton)
    cfg = pane.state.config
    for key, value in card.suggestion.overrides.items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value
    qtbot.waitUntil(lambda: panel.fits is True, timeout=2000)
    assert "Fits" in panel.badge.text()
    assert not panel.suggestion_cards
    assert pane.estimate.total_bytes <= budget


def test_method_switch_resets_only_untouched_knobs(qtbot, pane):
    ready(qtbot, pane)
    pane.state.update(**{"training.lr": default_lr("lora")})  # the recipe's rate: nobody chose it
    method = pane.method
    method.setCurrentIndex(method.findData("full"))
    assert pane.state.config.method == "full"
    assert pane.state.config.training.lr == default_lr("full")
    assert not pane.lora_box.isEnabled()
    pane.lr.setValue(5e-5)  # the user's own choice from now on
    pane.rank.setValue(32)
    method.setCurrentIndex(method.findData("qlora"))
    cfg = pane.state.config
    assert cfg.method == "qlora" and cfg.training.lr == 5e-5 and cfg.lora.r == 32
    assert pane.quant_box.isEnabled()


def test_method_round_trip_keeps_the_demos_learning_rate(qtbot, pane):
    """The demo's 5e-4 is a choice, not the LoRA recipe: LoRA -> QLoRA -> LoRA must keep it."""
    ready(qtbot, pane)
    assert pane.state.config.method == "lora" and pane.state.config.training.lr == 5e-4 != default_lr("lora")
    method = pane.method
    method.setCurrentIndex(method.findData("qlora"))
    assert pane.state.config.method == "qlora" and pane.state.config.training.lr == 5e-4
    method.setCurrentIndex(method.findData("lora"))
    assert pane.state.config.method == "lora" and pane.state.config.training.lr == 5e-4
    assert pane.lr.value() == pytest.approx(5e-4)


def test_choosing_dpo_brings_its_learning_rate_and_shows_beta(qtbot, pane):
    """The objective is a recipe like the method: DPO's rate replaces an untouched one, beta appears,
    and a refused combination (DPO on a full fine-tune) is said under the field."""
    ready(qtbot, pane)
    pane.state.update(**{"training.lr": default_lr("lora")})  # the recipe's rate: nobody chose it
    assert pane.preference_box.isHidden()  # SFT has no beta
    objective = pane.objective
    objective.setCurrentIndex(objective.findData("dpo"))
    cfg = pane.state.config
    assert cfg.objective == "dpo" and cfg.training.lr == PREFERENCE_LR["dpo"] == default_lr("lora", "dpo")
    assert pane.lr.value() == pytest.approx(PREFERENCE_LR["dpo"])
    assert not pane.preference_box.isHidden() and pane.loss_type.isEnabled()
    pane.beta.setValue(0.25)
    assert pane.state.config.preference.beta == 0.25
    objective.setCurrentIndex(objective.findData("orpo"))
    assert pane.state.config.training.lr == PREFERENCE_LR["orpo"]
    assert not pane.preference_box.isHidden() and not pane.loss_type.isEnabled()  # no DPO loss variants
    pane.method.setCurrentIndex(pane.method.findData("full"))
    assert pane.state.config.method == "lora" and "not full" in pane.message_for("method")
    objective.setCurrentIndex(objective.findData("sft"))
    assert pane.state.config.training.lr == default_lr("lora") and pane.preference_box.isHidden()


def test_choosing_dpo_estimates_both_answers_and_the_reference_pass(qtbot, pane):
    """The live estimate follows the objective: on a pair file, DPO's figure is the core estimate of
    the DPO run (2 x batch rows, a reference forward), above the same config trained supervised."""
    from studio.core.memory import estimate
    from studio.core.paths import demo_pref_dataset

    pane.state.update(**{"dataset.train": [str(demo_pref_dataset())], "dataset.eval_ratio": 0.0})
    pane.objective.setCurrentIndex(pane.objective.findData("dpo"))
    ready(qtbot, pane)
    qtbot.waitUntil(lambda: pane.estimate.objective == "dpo" and pane.estimate.basis == "dataset", timeout=WAIT)
    cfg, got = pane.state.config, pane.estimate
    dpo = estimate(pane.info, cfg, device_kind=got.device_kind, lengths=pane.lengths)
    sft = estimate(pane.info, cfg.model_copy(update={"objective": "sft"}), device_kind=got.device_kind,
                   lengths=pane.lengths)
    assert got.total_bytes == dpo.total_bytes > sft.total_bytes  # a fresh STUDIO_HOME: no correction
    assert got.forward_rows == 2 * got.batch_rows == 2 * cfg.training.batch_size
    assert "reference forward" in pane.panel.basis.text()
    assert f"{got.batch_rows} pairs ({got.forward_rows} rows)" in pane.panel.dataset_line.text()


def _wheel(widget, dy: int = -120) -> None:
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, dy),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(widget, event)


def test_wheel_over_an_unfocused_field_scrolls_the_form(qtbot, pane):
    ready(qtbot, pane)
    pane.resize(1130, 420)  # short enough that the form scrolls
    qtbot.waitUntil(lambda: pane.form_scroll.verticalScrollBar().maximum() > 0)
    bar = pane.form_scroll.verticalScrollBar()
    bar.setValue(0)
    rank, method = pane.rank, pane.method
    pane.form_scroll.ensureWidgetVisible(rank)
    before_scroll, before_rank, before_method = bar.value(), rank.value(), method.currentIndex()
    _wheel(rank)  # scrolling down the form with the pointer over Rank
    _wheel(method)
    assert rank.value() == before_rank and method.currentIndex() == before_method
    assert pane.state.config.lora.r == before_rank
    assert bar.value() > before_scroll, "the wheel should have scrolled the form"
    rank.setFocus()
    qtbot.waitUntil(rank.hasFocus)
    _wheel(rank, dy=120)  # once the user is in the field, the wheel steps it
    assert rank.value() != before_rank


def test_save_then_load_round_trips(qtbot, pane, tmp_path):
    ready(qtbot, pane)
    pane.rank.setValue(24)
    pane.grad_ckpt.setChecked(True)
    pane.scheduler.setCurrentIndex(pane.scheduler.findData("linear"))
    saved = pane.state.config
    path = tmp_path / "run"
    assert pane.save_to(path)
    written = path.with_suffix(".yaml")
    assert load_config(written) == saved
    pane.state.update(**{"lora.r": 4, "training.grad_checkpointing": False})
    assert pane.load_from(written)
    assert pane.state.config == saved
    assert pane.rank.value() == 24 and pane.grad_ckpt.isChecked()
    assert pane.scheduler.currentData() == "linear"


def test_bad_yaml_shows_field_messages_and_changes_nothing(qtbot, pane, tmp_path):
    ready(qtbot, pane)
    before = pane.state.config
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\ntraining:\n  lr: -1\n  batch_sise: 4\n", encoding="utf-8")
    assert pane.load_from(bad) is False
    boxes = [b for b in pane.findChildren(QMessageBox) if b.isVisible()]
    assert boxes
    text = boxes[-1].text()
    assert "training.lr" in text and "training.batch_sise" in text and str(bad) in text
    assert pane.state.config == before
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [1, 2\n", encoding="utf-8")
    assert pane.load_from(broken) is False
    assert any("line" in b.text() for b in pane.findChildren(QMessageBox) if b.isVisible())


def test_folder_without_config_json_is_explained_and_not_used(qtbot, pane, tmp_path):
    ready(qtbot, pane)
    before = pane.state.config.model.path
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    assert pane.choose_model_folder(str(empty)) is False
    assert "config.json" in pane.model_box.status.text() and pane.model_box.status.isVisible()
    assert pane.state.config.model.path == before
    assert pane.info is not None  # still on the previous model


def test_pickle_only_folder_is_refused_until_allowed(qtbot, pane, tmp_path, tiny_model_dir):
    ready(qtbot, pane)
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    assert pane.choose_model_folder(str(folder))
    qtbot.waitUntil(lambda: "pickle" in pane.model_box.status.text(), timeout=WAIT)
    assert pane.info is None and pane.estimate is None
    assert pane.panel.fits is None
    assert not pane.model_box.warning.isVisible()
    qtbot.mouseClick(pane.model_box.allow_pickle, Qt.MouseButton.LeftButton)
    assert pane.state.config.model.allow_pickle is True
    assert pane.model_box.warning.isVisible()
    qtbot.waitUntil(lambda: pane.info is not None and pane.estimate is not None, timeout=WAIT)
    assert pane.info.has_pickle


def test_sequence_longer_than_context_is_flagged_inline(qtbot, pane):
    ready(qtbot, pane)
    ctx = pane.info.context_length
    pane.seq.setValue(ctx * 2)
    assert pane.state.config.training.max_seq_len == ctx * 2
    assert f"{ctx:,}" in pane.message_for("training.max_seq_len")
    pane.seq.setValue(ctx)
    assert pane.message_for("training.max_seq_len") == ""


def test_invalid_combination_is_shown_inline_not_raised(qtbot, pane):
    ready(qtbot, pane)
    pane.device.setCurrentIndex(pane.device.findData("cpu"))
    pane.method.setCurrentIndex(pane.method.findData("qlora"))
    pane.compute_dtype.setCurrentIndex(pane.compute_dtype.findData("float16"))
    assert "compute_dtype" in pane.message_for("quant.compute_dtype")
    assert pane.state.config.quant.compute_dtype != "float16"
    pane.compute_dtype.setCurrentIndex(pane.compute_dtype.findData("float32"))
    assert pane.message_for("quant.compute_dtype") == ""
    assert pane.state.config.quant.compute_dtype == "float32"


def test_every_knob_has_a_tooltip(qtbot, pane):
    for key, widget in pane.editors.items():
        assert widget.toolTip(), key


def test_legend_covers_every_breakdown_term():
    from studio.qt.widgets.memory_bar import TERM_COLORS, TERM_LABELS

    assert tuple(TERM_COLORS) == BREAKDOWN_KEYS and tuple(TERM_LABELS) == BREAKDOWN_KEYS


def test_model_from_the_store_can_be_picked(qtbot, pane, tiny_model_dir):
    from studio.core import paths

    ready(qtbot, pane)
    stored = paths.models_dir() / "tiny-stored"
    shutil.copytree(tiny_model_dir, stored)
    pane.state.model_ready.emit(str(stored))  # what the window says after a conversion or import
    combo = pane.model_box.store
    index = combo.findData(str(stored))
    assert index > 0 and "tiny-stored" in combo.itemText(index)
    combo.activated.emit(index)
    assert pane.state.config.model.path == str(stored)
    qtbot.waitUntil(lambda: pane.info is not None and pane.info.path == str(stored), timeout=WAIT)


def test_estimate_uses_the_datasets_lengths_and_shows_the_worst_case(qtbot, pane):
    from studio.core.memory import DatasetLengths, count_lengths

    ready(qtbot, pane)
    qtbot.waitUntil(lambda: pane.estimate is not None and pane.estimate.basis == "dataset", timeout=WAIT)
    cfg = pane.state.config
    lengths = count_lengths(cfg)
    assert isinstance(pane.lengths, DatasetLengths) and pane.lengths.lengths == lengths.lengths
    assert pane.estimate.batch_tokens == min(lengths.longest, cfg.training.max_seq_len) < cfg.training.max_seq_len
    text = pane.panel.dataset_line.text()
    assert f"× {pane.estimate.batch_tokens} tokens" in text
    assert f"× {cfg.training.max_seq_len} tokens" in pane.panel.worst_line.text()
    assert "run" in pane.panel.calibration.text()  # "No runs on this machine yet ..." in a fresh STUDIO_HOME
    # a new max length is counted again and the estimate follows it
    pane.seq.setValue(48)
    qtbot.waitUntil(lambda: pane.estimate is not None and pane.estimate.basis == "dataset"
                    and pane.estimate.batch_tokens == 48, timeout=WAIT)


def test_models_in_the_hugging_face_cache_can_be_picked(qtbot, pane, tiny_model_dir, hf_cache_home):
    from _hf_cache_layout import add_cached_repo

    ready(qtbot, pane)
    snapshot = add_cached_repo(hf_cache_home, "org/tiny-cached", tiny_model_dir)
    config_only = hf_cache_home / "models--org--no-weights" / "snapshots" / "r"
    config_only.mkdir(parents=True)
    (config_only / "config.json").write_text('{"model_type": "qwen2"}')
    pane.state.model_ready.emit(str(tiny_model_dir))  # any refresh of the picker re-lists the cache
    combo = pane.model_box.store
    header = combo.findText("Hugging Face cache")
    index = combo.findData(str(snapshot))
    assert 0 < header < index
    assert combo.itemText(index).startswith("org/tiny-cached  (llama, ") and "trainable" in combo.itemText(index)
    unusable = combo.findText("org/no-weights", Qt.MatchFlag.MatchStartsWith)
    assert "not trainable" in combo.itemText(unusable)
    assert "no weights" in combo.itemData(unusable, Qt.ItemDataRole.ToolTipRole)
    assert not combo.model().item(header).isEnabled()
    combo.activated.emit(index)
    assert pane.state.config.model.path == str(snapshot)
    qtbot.waitUntil(lambda: pane.info is not None and pane.info.path == str(snapshot), timeout=WAIT)
    assert "LlamaForCausalLM" in pane.model_box.architecture.text()
    assert combo.currentIndex() == index


def test_chat_format_is_a_choice_with_the_models_own_first(qtbot, pane):
    ready(qtbot, pane)
    box = pane.chat_template
    assert box.itemData(0) == "" and "Model's own" in box.itemText(0)
    assert {box.itemData(i) for i in range(box.count())} == {"", "chatml", "llama3", "gemma", "mistral", "alpaca"}
    box.setCurrentIndex(box.findData("gemma"))
    assert pane.state.config.model.chat_template == "gemma"


def test_a_deleted_pane_stops_listening_to_the_session(qtbot, tiny_model_dir):
    """The session is the app's and outlives a pane; edits made elsewhere must not reach dead widgets."""
    import shiboken6

    from studio.qt.panes.configure.pane import ConfigurePane
    from studio.qt.state import AppState
    from studio.qt.workers.task import TaskRunner

    state = AppState()
    tasks = TaskRunner()
    listening = len(state.session.events.config)
    p = ConfigurePane(state, tasks)
    assert len(state.session.events.config) == listening + 1
    tasks.stop_all()
    assert tasks.wait_all(60000)
    shiboken6.delete(p)
    assert len(state.session.events.config) == listening
    state.update(**{"lora.r": 16, "training.batch_size": 3})  # would raise on a deleted widget
    assert state.config.lora.r == 16


def test_a_model_read_that_was_superseded_does_not_land(qtbot, pane, tmp_path, monkeypatch):
    """Reading a model can take seconds; choosing another meanwhile must keep the late answer of the
    first from painting over the second (the inspection's task slot drops it)."""
    import threading

    from studio.qt.panes.configure import model_source

    ready(qtbot, pane)
    good = pane.state.config.model.path
    slow = tmp_path / "slow_model"
    slow.mkdir()
    shutil.copy(Path(good) / "config.json", slow / "config.json")
    release = threading.Event()
    real_job = model_source._inspect_job

    def job_for(key):
        if key[0] != str(slow):
            return real_job(key)
        return lambda _state: (release.wait(WAIT / 1000), (None, "the slow model's late answer"))[1]

    monkeypatch.setattr(model_source, "_inspect_job", job_for)
    assert pane.choose_model_folder(str(slow))
    stale = pane._inspecting.task
    assert stale is not None and pane.inspecting and pane.info is None
    assert pane.choose_model_folder(good)
    qtbot.waitUntil(lambda: pane.info is not None, timeout=WAIT)
    release.set()
    qtbot.waitUntil(lambda: not stale.is_running(), timeout=WAIT)
    qtbot.wait(100)  # the late answer, had it been kept, is queued for this thread by now
    assert "late answer" not in pane.model_box.status.text()
    assert pane.info is not None and not pane.inspecting


def test_a_token_count_that_was_superseded_does_not_land(qtbot, pane, monkeypatch):
    """A max length changed twice in a row counts twice; only the newer count may reach the estimate."""
    import threading

    from studio.qt.panes.configure import pane as pane_module

    ready(qtbot, pane)
    release = threading.Event()
    real_job = pane_module.lengths_job

    def job_for(cfg):
        if cfg.training.max_seq_len != 40:
            return real_job(cfg)
        return lambda _state: (release.wait(WAIT / 1000), (None, "the late count"))[1]

    monkeypatch.setattr(pane_module, "lengths_job", job_for)
    pane.seq.setValue(40)
    stale = pane._counting.task
    assert stale is not None and pane.lengths is None
    pane.seq.setValue(48)
    qtbot.waitUntil(lambda: pane.estimate is not None and pane.estimate.basis == "dataset"
                    and pane.estimate.batch_tokens == 48, timeout=WAIT)
    release.set()
    qtbot.waitUntil(lambda: not stale.is_running(), timeout=WAIT)
    qtbot.wait(100)  # the late count, had it been kept, is queued for this thread by now
    pane.refresh_estimate()
    assert pane.lengths is not None and pane.estimate.basis == "dataset" and pane.estimate.batch_tokens == 48
    assert "late count" not in pane.panel.dataset_line.text() + pane.panel.worst_line.text()


def test_clearing_the_model_while_it_is_read_says_what_to_choose(qtbot, pane, tmp_path, monkeypatch):
    """The cancelled read never reports back, so the pane must stop saying "Reading the model…" itself."""
    import threading

    from studio.qt.panes.configure import model_source

    ready(qtbot, pane)
    slow = tmp_path / "slow_model"
    slow.mkdir()
    shutil.copy(Path(pane.state.config.model.path) / "config.json", slow / "config.json")
    release = threading.Event()
    monkeypatch.setattr(model_source, "_inspect_job",
                        lambda key: lambda _state: (release.wait(WAIT / 1000), (None, "late"))[1])
    assert pane.choose_model_folder(str(slow))
    assert pane.inspecting
    pane.state.update(**{"model.path": ""})
    assert not pane.inspecting
    assert "Choose a model folder" in pane.model_box.status.text()
    release.set()
    qtbot.waitUntil(lambda: not pane._inspecting.is_running(), timeout=WAIT)
