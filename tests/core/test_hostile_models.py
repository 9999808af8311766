"""Damaged or hostile adapter and base model folders: a StudioError that names the file and says what
to do, never a traceback, and the user's files left as they were."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _lib_fixtures import adapter_copy, lib_adapter, lib_base, one_thread  # noqa: F401

from studio.core.errors import StudioError
from studio.core.library import registry
from studio.core.library.adapter_keys import check_peft_loads_all
from studio.core.library.merge import export_model
from studio.core.library.playground import Playground
from studio.core.models.identity import base_identity, weight_files


@pytest.fixture(autouse=True)
def _threads(one_thread) -> None:
    return None


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


def _edit_config(adapter: Path, edit) -> None:
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    edit(cfg)
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))


_BAD_CONFIGS = {
    "garbage JSON": lambda a: (a / "adapter_config.json").write_text("{this is not json"),
    "a list, not an object": lambda a: (a / "adapter_config.json").write_text("[1, 2]"),
    "no peft_type": lambda a: _edit_config(a, lambda c: c.pop("peft_type")),
    "r as text": lambda a: _edit_config(a, lambda c: c.update(r="eight")),
    "lora_alpha as text": lambda a: _edit_config(a, lambda c: c.update(lora_alpha="sixteen")),
    "target_modules as a number": lambda a: _edit_config(a, lambda c: c.update(target_modules=5)),
    "rank that does not match the weights": lambda a: _edit_config(a, lambda c: c.update(r=2)),
}


@pytest.mark.parametrize("case", sorted(_BAD_CONFIGS))
def test_bad_adapter_config_is_a_clear_error_everywhere(adapter_copy, lib_base, tmp_path, case):
    _BAD_CONFIGS[case](adapter_copy)
    before = _snapshot(adapter_copy)
    with pytest.raises(StudioError) as err:
        check_peft_loads_all(adapter_copy, lib_base)
    assert "adapter_config.json" in err.value.user_text() or "does not fit" in err.value.message
    out = tmp_path / "out"
    with pytest.raises(StudioError):
        export_model(adapter_copy, out, dtype="fp32", check=False)
    assert not out.exists()
    with pytest.raises(StudioError):
        registry.import_adapter(adapter_copy, base_model=lib_base)
    assert registry.list_entries() == []
    assert _snapshot(adapter_copy) == before


def test_playground_refuses_an_adapter_peft_would_load_in_part(adapter_copy, lib_base):
    _edit_config(adapter_copy, lambda c: c.pop("target_modules"))
    pg = Playground(lib_base, device="cpu", dtype="fp32")
    with pytest.raises(StudioError, match="target_modules is missing"):
        pg.ensure_adapter(adapter_copy)
    assert pg.loaded_adapters == []


def test_garbage_adapter_weights_header(adapter_copy, lib_base, tmp_path):
    (adapter_copy / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    for call in (lambda: check_peft_loads_all(adapter_copy, lib_base),
                 lambda: export_model(adapter_copy, tmp_path / "out", dtype="fp32", check=False),
                 lambda: registry.import_adapter(adapter_copy, base_model=lib_base)):
        with pytest.raises(StudioError, match="unreadable header"):
            call()
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def base(tmp_path, lib_base) -> Path:
    dest = tmp_path / "base"
    shutil.copytree(lib_base, dest)
    return dest


def _adapter_on(base: Path, lib_adapter: Path, dest: Path) -> Path:
    shutil.copytree(lib_adapter, dest)
    _edit_config(dest, lambda c: c.update(base_model_name_or_path=str(base)))
    return dest


def test_garbage_base_weights_header(base, lib_adapter, tmp_path):
    adapter = _adapter_on(base, lib_adapter, tmp_path / "adapter")
    (base / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(StudioError, match="implausible header"):
        export_model(adapter, tmp_path / "out", dtype="fp32", check=False)
    assert not (tmp_path / "out").exists()


def test_base_folder_without_config(base, lib_adapter, tmp_path):
    adapter = _adapter_on(base, lib_adapter, tmp_path / "adapter")
    (base / "config.json").unlink()
    with pytest.raises(StudioError, match=r"no config\.json") as err:
        base_identity(base)
    assert str(base) in err.value.user_text()
    with pytest.raises(StudioError, match="not on this machine"):
        export_model(adapter, tmp_path / "out", dtype="fp32", check=False)


@pytest.fixture()
def sharded(tmp_path, lib_base) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.bfloat16).save_pretrained(out, max_shard_size="100KB")
    return out


def test_base_with_a_missing_shard(sharded, lib_adapter, tmp_path):
    adapter = _adapter_on(sharded, lib_adapter, tmp_path / "adapter")
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 1
    shards[1].unlink()
    with pytest.raises(StudioError, match=f"lists {shards[1].name}, which is not in the folder"):
        weight_files(sharded)
    out = tmp_path / "out"
    with pytest.raises(StudioError, match="The model is incomplete"):
        export_model(adapter, out, dtype="fp32", check=False)
    assert not out.exists()


def test_extra_weight_files_are_not_part_of_the_base(sharded):
    """transformers loads what the index names; a stray file beside it does not change the model."""
    before = base_identity(sharded)
    shutil.copyfile(sorted(sharded.glob("model-*.safetensors"))[0], sharded / "stray.safetensors")
    assert base_identity(sharded) == before
    assert sharded / "stray.safetensors" not in weight_files(sharded)


@pytest.mark.parametrize("index", ["{broken", "[]", '{"weight_map": {}}', '{"weight_map": {"a": "../outside.safetensors"}}'])
def test_bad_shard_index(sharded, index):
    (sharded / "model.safetensors.index.json").write_text(index)
    with pytest.raises(StudioError) as err:
        base_identity(sharded)
    assert "model.safetensors.index.json" in err.value.user_text()
