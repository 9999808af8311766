"""What the status bar says about the chosen model folder, one case per way it can be unusable."""

from __future__ import annotations

from studio.core.models.store import is_model_folder, model_folder_problem


def test_missing_folder(tmp_path):
    assert "not found" in model_folder_problem(tmp_path / "nope")


def test_folder_without_config(tmp_path):
    assert "No config.json" in model_folder_problem(tmp_path)


def test_config_only_folder_is_estimable_but_not_trainable(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    problem = model_folder_problem(tmp_path)
    assert "no weights" in problem and "estimates work" in problem
    assert not is_model_folder(tmp_path)


def test_pickle_only_weights_point_at_the_setting(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    assert "pickle" in model_folder_problem(tmp_path)


def test_safetensors_folder_is_ready(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert model_folder_problem(tmp_path) is None and is_model_folder(tmp_path)
