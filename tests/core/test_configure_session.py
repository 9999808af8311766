"""The Configure room's rules without Qt: the alpha link, method recipes, touched fields, length mode,
the budget and field errors, as the pane and the command line see them through ``ConfigureSession``
and ``apply_choices``."""

from __future__ import annotations

import gc

import pytest

from studio.cli import build_parser
from studio.core.config import ConfigError, RunConfig, apply_overrides
from studio.core.configure import (
    DEFAULT_RANK,
    ConfigureSession,
    apply_choices,
    budget_for,
    default_lr,
    linked_alpha,
    method_recipe,
    model_limits,
    touched_in,
)
from studio.core.configure.fields import field_keys
from studio.core.memory import GiB
from studio.core.models.device import DeviceInfo

CPU_BOX = DeviceInfo("cpu", "Some CPU", 16 * GiB, 16 * GiB, 8)
GPU_BOX = DeviceInfo("cuda", "Some GPU", 24 * GiB, 64 * GiB, 8)


class Recorder:
    """Every event a session sends, in order, as (name, payload)."""

    def __init__(self, session: ConfigureSession) -> None:
        self.seen: list[tuple[str, object]] = []
        session.events.changed.connect(self.on_changed)
        session.events.config.connect(self.on_config)
        session.events.alpha_linked.connect(self.on_alpha_linked)
        session.events.errors.connect(self.on_errors)

    def on_changed(self, key, value) -> None:
        self.seen.append((key, value))

    def on_config(self, cfg) -> None:
        self.seen.append(("config", cfg))

    def on_alpha_linked(self, linked) -> None:
        self.seen.append(("alpha_linked", linked))

    def on_errors(self, errors) -> None:
        self.seen.append(("errors", errors))

    def fields(self) -> dict[str, object]:
        return {k: v for k, v in self.seen if k not in ("config", "alpha_linked", "errors")}


@pytest.fixture
def session() -> ConfigureSession:
    return ConfigureSession(RunConfig())


# -- the alpha link -------------------------------------------------------------------------------
def test_alpha_follows_rank_only_while_linked(session):
    assert session.alpha_linked
    assert session.set("lora.r", 16)
    assert (session.config.lora.r, session.config.lora.alpha) == (16, linked_alpha(16))
    session.set_alpha_linked(False)
    session.set("lora.r", 4)
    assert (session.config.lora.r, session.config.lora.alpha) == (4, linked_alpha(16))
    session.set("lora.alpha", 12.0)
    assert session.config.lora.alpha == 12.0
    session.set_alpha_linked(True)  # linking again snaps alpha back to 2 x rank
    assert session.config.lora.alpha == linked_alpha(4)


def test_alpha_set_from_elsewhere_unlinks_and_says_so(session):
    events = Recorder(session)
    session.update({"lora.alpha": 7.0})  # another pane, or a suggestion
    assert not session.alpha_linked
    assert ("alpha_linked", False) in events.seen
    session.set("lora.r", 32)
    assert session.config.lora.alpha == 7.0


def test_a_session_starts_unlinked_when_its_config_set_alpha_on_its_own():
    cfg = apply_overrides(RunConfig(), {"lora.r": 8, "lora.alpha": 8.0})
    assert not ConfigureSession(cfg).alpha_linked
    assert ConfigureSession(apply_overrides(cfg, {"lora.alpha": linked_alpha(8)})).alpha_linked


# -- recipes and touched fields ------------------------------------------------------------------
def test_method_switch_resets_only_untouched_knobs(session):
    assert session.set("method", "full")
    assert session.config.training.lr == default_lr("full")
    session.set("training.lr", 5e-5)  # the user's own choice from now on
    session.set("lora.r", 32)
    assert session.touched >= {"training.lr", "lora.r"}
    session.set("method", "qlora")
    cfg = session.config
    assert (cfg.method, cfg.training.lr, cfg.lora.r, cfg.lora.alpha) == ("qlora", 5e-5, 32, linked_alpha(32))


def test_objective_switch_brings_the_preference_rate_unless_the_user_chose_one(session):
    assert session.set("objective", "dpo")
    assert (session.config.objective, session.config.training.lr) == ("dpo", default_lr("lora", "dpo"))
    assert session.config.training.lr != default_lr("lora")
    assert session.set("objective", "orpo") and session.config.training.lr == default_lr("lora", "orpo")
    session.set("training.lr", 3e-6)  # the user's own choice from now on
    assert session.set("objective", "sft") and session.config.training.lr == 3e-6
    session.set("objective", "dpo")
    assert not session.set("method", "full") and "not full" in session.errors["method"]  # DPO trains an adapter
    assert session.config.method == "lora"


def test_values_that_differ_from_the_recipe_survive_a_round_trip():
    """The demo's 5e-4 is a choice, not the LoRA recipe: LoRA -> QLoRA -> LoRA keeps it."""
    session = ConfigureSession(apply_overrides(RunConfig(), {"training.lr": 5e-4}))
    session.set("method", "qlora")
    session.set("method", "lora")
    assert session.config.training.lr == 5e-4


def test_choosing_the_current_method_changes_nothing(session):
    events = Recorder(session)
    assert session.set("method", session.config.method)
    assert events.seen == []
    assert method_recipe(session.config, session.config.method, set(), alpha_linked=True) == {}


def test_recipe_for_full_leaves_the_adapter_knobs_alone():
    cfg = apply_overrides(RunConfig(), {"lora.r": 64, "lora.alpha": 3.0})
    assert method_recipe(cfg, "full", set(), alpha_linked=False) == {"method": "full",
                                                                      "training.lr": default_lr("full")}


def test_recipe_brings_an_untouched_rank_back_to_the_default():
    cfg = apply_overrides(RunConfig(), {"method": "full", "training.lr": default_lr("full")})
    over = method_recipe(cfg, "lora", set(), alpha_linked=True)
    assert over == {"method": "lora", "training.lr": default_lr("lora"), "lora.r": DEFAULT_RANK,
                    "lora.alpha": linked_alpha(DEFAULT_RANK)}


def test_touched_in_names_what_a_file_chose():
    assert touched_in(RunConfig()) == set()
    cfg = apply_overrides(RunConfig(), {"training.lr": 1e-3, "lora.r": 16, "lora.alpha": 16.0})
    assert touched_in(cfg) == {"training.lr", "lora.r", "lora.alpha"}


def test_loading_a_file_replaces_the_users_touched_fields_with_the_files(session):
    session.set("training.lr", 1e-3)
    session.set("lora.dropout", 0.1)
    loaded = apply_overrides(RunConfig(), {"lora.r": 16, "lora.alpha": linked_alpha(16)})
    session.load(loaded)
    assert session.config == loaded
    assert session.touched == {"lora.r"}
    session.set("method", "full")
    assert session.config.training.lr == default_lr("full")  # the file kept the recipe's rate


def test_a_clicked_suggestion_counts_as_the_users_choice(session):
    assert session.apply_suggestion({"training.batch_size": 1, "training.grad_checkpointing": True})
    assert session.touched >= {"training.batch_size", "training.grad_checkpointing"}
    assert session.config.training.batch_size == 1 and session.config.training.grad_checkpointing


# -- length mode ----------------------------------------------------------------------------------
def test_length_mode_switches_between_epochs_and_the_last_step_count(session):
    assert session.length_mode == "epochs"
    session.set_length_mode("steps")
    assert session.length_mode == "steps" and session.config.training.max_steps >= 1
    session.set("training.max_steps", 120)
    session.set_length_mode("epochs")
    assert session.config.training.max_steps == -1 and session.length_mode == "epochs"
    session.set_length_mode("steps")
    assert session.config.training.max_steps == 120


def test_a_loaded_step_count_is_the_one_offered_later(session):
    session.load(apply_overrides(RunConfig(), {"training.max_steps": 75}))
    session.set_length_mode("epochs")
    session.set_length_mode("steps")
    assert session.config.training.max_steps == 75


# -- field errors ---------------------------------------------------------------------------------
def test_a_refused_edit_names_its_field_and_changes_nothing(session):
    before = session.config
    events = Recorder(session)
    assert session.set("training.lr", -1.0) is False
    assert session.config == before
    assert session.errors == {"training.lr": "training.lr: Input should be greater than 0"}
    assert events.seen[-1] == ("errors", session.errors)
    assert not events.fields()
    assert session.set("training.lr", 1e-4)
    assert session.errors == {}


def test_a_rule_about_the_whole_config_is_shown_beside_the_edit_that_broke_it(session):
    session.set("training.device", "cpu")
    session.set("method", "qlora")
    assert session.set("quant.compute_dtype", "float16") is False
    assert "compute_dtype" in session.errors["quant.compute_dtype"]
    assert session.config.quant.compute_dtype != "float16"
    assert session.set("quant.compute_dtype", "float32")
    assert "quant.compute_dtype" not in session.errors


def test_config_errors_carry_the_fields_as_data():
    with pytest.raises(ConfigError) as caught:
        apply_overrides(RunConfig(), {"training.lr": -1, "lora.r": 0})
    assert sorted(caught.value.fields) == ["lora.r", "training.lr"]
    with pytest.raises(ConfigError) as caught:
        apply_overrides(RunConfig(), {"method": "qlora", "training.device": "cpu", "quant.compute_dtype": "float16"})
    assert caught.value.fields == [""]
    assert caught.value.problem_lines() == ["(top level): qlora on CPU needs compute_dtype bfloat16 or float32"]
    with pytest.raises(ConfigError) as caught:
        apply_overrides(RunConfig(), {"training.lr": -1}, labels={"training.lr": "--lr"})
    assert caught.value.message == "--lr: Input should be greater than 0"
    assert caught.value.fields == ["training.lr"]


def test_loading_a_file_clears_the_refused_edits(session):
    session.set("training.lr", -1.0)
    session.load(RunConfig())
    assert session.errors == {}


# -- events ---------------------------------------------------------------------------------------
def test_each_changed_field_has_its_own_event(session):
    events = Recorder(session)
    ranks: list[int] = []
    session.events["lora.r"].connect(ranks.append)
    session.set("lora.r", 16)
    assert events.fields() == {"lora.r": 16, "lora.alpha": linked_alpha(16)}
    assert ranks == [16]
    assert [k for k, _ in events.seen].count("config") == 1
    session.set("training.batch_size", 8)
    assert ranks == [16]  # the rank did not move
    assert set(session.events) == set(field_keys())


def test_a_replaced_config_is_announced_even_when_nothing_moved(session):
    events = Recorder(session)
    session.replace(session.config)
    assert [k for k, _ in events.seen] == ["config"]


def test_a_listener_that_is_gone_stops_listening(session):
    events = Recorder(session)
    del events
    gc.collect()
    assert len(session.events.config) == 0
    session.set("lora.r", 16)  # nobody to call, and no error


# -- the budget -----------------------------------------------------------------------------------
def test_budget_waits_for_the_machine_then_follows_the_device_choice(session):
    assert session.budget() is None
    session.set_machine(GPU_BOX)
    assert session.budget() == ("cuda", 24 * GiB, "GPU")
    session.set("training.device", "cpu")
    assert session.budget() == ("cpu", 64 * GiB, "RAM")
    session.plan_for(48)
    assert session.budget() == ("cuda", 48 * GiB, "GPU")
    session.plan_for(None)
    assert session.budget().kind == "cpu"


def test_budget_without_a_gpu_or_without_a_probe():
    assert budget_for("auto", CPU_BOX) == ("cpu", 16 * GiB, "RAM")
    assert budget_for("cuda", CPU_BOX).bytes is None  # no GPU here: plan for one
    assert budget_for("auto", None, probe_failed=True) == ("cpu", None, "this machine's memory is unknown")
    assert budget_for("cuda", None, probe_failed=True).kind == "cuda"


def test_budget_changes_are_announced(session):
    calls: list[int] = []

    def on_budget() -> None:
        calls.append(1)

    session.events.budget.connect(on_budget)
    session.set_machine(CPU_BOX)
    session.machine_unknown()
    session.plan_for(8)
    assert len(calls) == 3


def test_sequence_past_the_models_context_is_a_limit(tiny_model_dir):
    from studio.core.models.introspect import inspect_model

    info = inspect_model(tiny_model_dir)
    cfg = apply_overrides(RunConfig(), {"training.max_seq_len": info.context_length * 2})
    assert f"{info.context_length:,}" in model_limits(cfg, info)["training.max_seq_len"]
    assert model_limits(apply_overrides(cfg, {"training.max_seq_len": info.context_length}), info) == {}
    assert model_limits(cfg, None) == {}


# -- the command line uses the same recipes ------------------------------------------------------
def _train_config(argv: list[str], tmp_path) -> RunConfig:
    from studio.cli.train import _build_config

    model, data = tmp_path / "model", tmp_path / "rows.jsonl"
    return _build_config(build_parser().parse_args(["train", *argv, "--model", str(model), "--dataset", str(data)]))


def test_train_method_flag_applies_the_recipe_like_the_pane(tmp_path):
    assert _train_config(["--method", "full"], tmp_path).training.lr == default_lr("full")
    assert _train_config(["--method", "full", "--lr", "0.01"], tmp_path).training.lr == 0.01
    path = tmp_path / "run.yaml"
    RunConfig().save(path)  # the LoRA recipe's rate: nobody chose it
    assert _train_config([str(path), "--method", "full"], tmp_path).training.lr == default_lr("full")
    apply_overrides(RunConfig(), {"training.lr": 1e-3}).save(path)  # chosen: kept
    assert _train_config([str(path), "--method", "full"], tmp_path).training.lr == 1e-3
    pane = ConfigureSession(apply_overrides(RunConfig(), {"training.lr": 1e-3}))
    pane.set("method", "full")
    assert pane.config.training.lr == 1e-3


def test_train_rank_flag_moves_alpha_unless_the_file_set_it(tmp_path):
    cfg = _train_config(["--rank", "16", "--method", "qlora"], tmp_path)
    assert (cfg.method, cfg.lora.r, cfg.lora.alpha) == ("qlora", 16, linked_alpha(16))
    path = tmp_path / "run.yaml"
    apply_overrides(RunConfig(), {"lora.alpha": 4.0}).save(path)
    cfg = _train_config([str(path), "--rank", "16"], tmp_path)
    assert (cfg.lora.r, cfg.lora.alpha) == (16, 4.0)


def test_a_bad_flag_is_still_named_by_its_flag():
    with pytest.raises(ConfigError) as caught:
        apply_choices(RunConfig(), {"lora.r": 0, "method": "qlora"}, {"lora.r": "--rank", "method": "--method"})
    assert caught.value.message.startswith("--rank:")
