"""Adapter library: register, list, rename, trash/restore, import with validation, CLI."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from _lib_fixtures import adapter_copy, lib_adapter, lib_base, make_adapter, make_base, one_thread  # noqa: F401

from studio.cli import main
from studio.core import paths
from studio.core.errors import StudioError
from studio.core.library import registry
from studio.core.library.registry import AdapterMeta


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch, one_thread) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


def _meta(**kw) -> AdapterMeta:
    # A run folder per call: a second registration from the same run refreshes its entry.
    run_dir = kw.pop("run_dir", f"/runs/demo-{next(_runs)}")
    return AdapterMeta(dataset_fingerprint="sha256:abc", config={"method": "lora", "lora": {"r": 4}},
                       metrics={"eval_loss": 1.25}, run_dir=run_dir, **kw)


_runs = itertools.count()


def test_register_list_get(lib_adapter, lib_base, _home):
    entry = registry.register_adapter(lib_adapter, _meta(), name="my adapter")
    assert entry.path.parent == paths.library_dir()
    assert entry.path.is_relative_to(_home)
    assert entry.name == "my-adapter"
    assert (entry.adapter_dir / "adapter_model.safetensors").is_file()
    assert (entry.adapter_dir / "adapter_config.json").is_file()
    meta = json.loads((entry.path / "meta.json").read_text())
    for key in ("name", "id", "base_model", "base_model_hash", "dataset_fingerprint", "config", "metrics",
                "run_dir", "created", "size_bytes", "method"):
        assert key in meta, key
    assert meta["base_model"] == str(lib_base.resolve())  # read from adapter_config when meta has none
    assert meta["base_model_hash"] == registry.base_model_hash(lib_base)
    assert meta["size_bytes"] > 0 and meta["method"] == "lora" and meta["metrics"]["eval_loss"] == 1.25
    assert [e.id for e in registry.list_entries()] == [entry.id]
    assert registry.get_entry(entry.id).name == "my-adapter"
    assert registry.get_entry("my-adapter").id == entry.id
    with pytest.raises(StudioError, match="No adapter"):
        registry.get_entry("nope")
    # Registering the same name again gives a unique folder, never overwrites.
    second = registry.register_adapter(lib_adapter, {"metrics": {}}, name="my adapter")
    assert second.name == "my-adapter-2" and second.id != entry.id


def test_base_hash_is_cheap_and_tracks_changes(tmp_path, lib_base):
    copy = tmp_path / "base"
    shutil.copytree(lib_base, copy)
    h = registry.base_model_hash(copy)
    assert h == registry.base_model_hash(lib_base)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-3
    (copy / "config.json").write_text(json.dumps(cfg))
    assert registry.base_model_hash(copy) != h


@pytest.mark.parametrize("evil", ["../../etc", "/etc/passwd", "..", "a/../../b", "..\\..\\x", ".hidden", ""])
def test_malicious_names_stay_inside_the_library(lib_adapter, evil):
    entry = registry.register_adapter(lib_adapter, _meta(), name=evil or None)
    root = paths.library_dir().resolve()
    assert entry.path.resolve().parent == root
    assert not entry.name.startswith(".") and "/" not in entry.name and ".." not in entry.name
    renamed = registry.rename(entry.id, "../../../tmp/owned")
    assert renamed.path.resolve().parent == root
    assert not (Path("/tmp/owned").exists() and (Path("/tmp/owned") / "meta.json").exists())


def test_rename_delete_restore_empty_trash(lib_adapter):
    a = registry.register_adapter(lib_adapter, _meta(), name="alpha")
    b = registry.register_adapter(lib_adapter, _meta(), name="beta")
    renamed = registry.rename(a.id, "gamma")
    assert renamed.name == "gamma" and renamed.id == a.id and renamed.path.name == "gamma"
    assert not (paths.library_dir() / "alpha").exists()
    with pytest.raises(StudioError):
        registry.rename(a.id, "   ")
    # Renaming onto a taken name picks a free one.
    assert registry.rename(b.id, "gamma").name == "gamma-2"

    gone = registry.delete(a.id)
    assert a.id not in {e.id for e in registry.list_entries()}
    assert [e.id for e in registry.list_trash()] == [a.id]
    assert gone.path.parent.name == ".trash"
    back = registry.restore(a.id)
    assert back.name == "gamma" and (back.adapter_dir / "adapter_model.safetensors").is_file()
    assert {e.id for e in registry.list_entries()} == {a.id, b.id}

    registry.delete(b.id)
    assert registry.empty_trash() == 1
    assert registry.list_trash() == []
    with pytest.raises(StudioError, match="trash"):
        registry.restore(b.id)


def test_restore_into_a_taken_name(lib_adapter):
    a = registry.register_adapter(lib_adapter, _meta(), name="same")
    registry.delete(a.id)
    newer = registry.register_adapter(lib_adapter, _meta(), name="same")
    assert newer.name == "same-2"  # the trash still holds "same"
    registry.rename(newer.id, "other")
    shutil.copytree(registry.get_entry("other").path, paths.library_dir() / "same")  # a folder put there by hand
    back = registry.restore(a.id)
    assert back.name == "same-3"
    assert json.loads((back.path / "meta.json").read_text())["name"] == "same-3"


def test_import_valid_adapter_points_at_local_base(adapter_copy, lib_base):
    entry = registry.import_adapter(adapter_copy, name="imported")
    assert entry.base_model == str(lib_base.resolve())
    cfg = json.loads((entry.adapter_dir / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(lib_base.resolve())


def test_import_finds_base_in_model_store_by_name(adapter_copy, lib_base):
    store_copy = paths.models_dir() / lib_base.name
    shutil.copytree(lib_base, store_copy)
    cfg = json.loads((adapter_copy / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = f"/somewhere/else/{lib_base.name}"
    (adapter_copy / "adapter_config.json").write_text(json.dumps(cfg))
    entry = registry.import_adapter(adapter_copy)
    assert Path(entry.base_model) == store_copy.resolve()


def test_import_rejects_incomplete_or_pickled(adapter_copy, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StudioError, match=r"adapter_config\.json"):
        registry.import_adapter(empty)
    (adapter_copy / "adapter_model.safetensors").rename(adapter_copy / "adapter_model.bin")
    with pytest.raises(StudioError, match="pickle"):
        registry.import_adapter(adapter_copy)
    (adapter_copy / "adapter_model.bin").unlink()
    with pytest.raises(StudioError, match=r"no adapter_model\.safetensors"):
        registry.import_adapter(adapter_copy)
    assert registry.list_entries() == []


def test_import_rejects_missing_base(adapter_copy):
    cfg = json.loads((adapter_copy / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "/nowhere/NoSuchModel-7B"
    (adapter_copy / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(StudioError, match="not on this machine"):
        registry.import_adapter(adapter_copy)


def test_import_rejects_adapter_of_another_shape(tmp_path, smol_tokenizer_dir, lib_base):
    other_base = make_base(tmp_path / "other", smol_tokenizer_dir, hidden=32)
    other = make_adapter(other_base, tmp_path / "other_adapter", targets=["q_proj", "v_proj"])
    cfg = json.loads((other / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(lib_base)
    (other / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(StudioError, match="different model") as err:
        registry.import_adapter(other)
    assert "q_proj" in err.value.detail
    assert registry.list_entries() == []
    # The explicit --base route works when the right base is given.
    entry = registry.import_adapter(other, base_model=other_base)
    assert entry.base_model == str(other_base.resolve())


def test_cli_library_roundtrip(adapter_copy, capsys):
    assert main(["library", "import", str(adapter_copy), "--name", "cli one", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry["name"] == "cli-one"
    assert main(["library", "list", "--json"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == [entry["id"]]
    assert main(["library", "rename", entry["id"], "cli two"]) == 0
    assert "cli-two" in capsys.readouterr().out
    assert main(["library", "delete", "cli-two"]) == 0
    assert "trash" in capsys.readouterr().out
    assert main(["library", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["library", "restore", entry["id"]]) == 0
    assert main(["library", "list"]) == 0
    assert "cli-two" in capsys.readouterr().out
    # A user error is a message and exit code 2, never a traceback.
    assert main(["library", "rename", "missing-id", "x"]) == 2
    assert "No adapter" in capsys.readouterr().err
