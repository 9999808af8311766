"""The one model-folder module, the one device/dtype rule and the one adapter reader: each way a folder
can be refused, and the choices every loader (training, merge, playground, estimate) now shares."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from _lib_fixtures import lib_adapter, lib_base  # noqa: F401

from studio.core.config import RunConfig
from studio.core.errors import StudioError
from studio.core.library.adapter_files import AdapterFiles, adapter_base, read_adapter, resolve_base
from studio.core.library.merge import export_model
from studio.core.models.device import normalise_dtype, pick_device, resolve_dtype
from studio.core.models.folder import (
    AT_EXPORT,
    IN_PLAYGROUND,
    IN_SETTINGS,
    check_safety,
    is_loadable,
    open_model_folder,
    stored_dtype,
)


def _folder(tmp_path, config: dict | str = "{}", weights: tuple[str, ...] = ()):
    (tmp_path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    for name in weights:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_folder_without_config_uses_the_callers_words(tmp_path):
    with pytest.raises(StudioError, match=r"No config\.json in this folder"):
        open_model_folder(tmp_path)
    with pytest.raises(StudioError) as err:
        open_model_folder(tmp_path, missing="The base model folder has no config.json.")
    assert err.value.message == "The base model folder has no config.json."


def test_broken_config_names_the_line(tmp_path):
    _folder(tmp_path, '{\n "model_type": "llama",\n oops\n}')
    with pytest.raises(StudioError, match="not valid JSON") as err:
        open_model_folder(tmp_path)
    assert err.value.line == 3


@pytest.mark.parametrize(("weights", "required", "refused"), [
    (("pytorch_model.bin",), False, True),    # pickle only: refused everywhere
    (("pytorch_model.bin",), True, True),
    ((), False, False),                       # config only: the estimate can still describe it
    ((), True, True),                         # but a loader would fall back to pickle files
    (("model.safetensors", "pytorch_model.bin"), True, False),  # safetensors are what is read
])
def test_pickle_policy(tmp_path, weights, required, refused):
    folder = open_model_folder(_folder(tmp_path, weights=weights))
    if refused:
        with pytest.raises(StudioError, match="pickle"):
            check_safety(folder, allow_pickle=False, trust_remote_code=False, weights_required=required)
    else:
        check_safety(folder, allow_pickle=False, trust_remote_code=False, weights_required=required)
    check_safety(folder, allow_pickle=True, trust_remote_code=False, weights_required=required)  # opted in


@pytest.mark.parametrize(("words", "switch"), [(IN_SETTINGS, "model settings"), (AT_EXPORT, "--allow-pickle"),
                                               (IN_PLAYGROUND, "playground")])
def test_each_refusal_names_its_own_switch(tmp_path, words, switch):
    folder = open_model_folder(_folder(tmp_path, weights=("pytorch_model.bin",)))
    with pytest.raises(StudioError, match="pickle") as err:
        check_safety(folder, allow_pickle=False, trust_remote_code=False, words=words)
    assert switch in err.value.message and err.value.path == tmp_path


def test_shipped_code_needs_trust(tmp_path):
    folder = open_model_folder(_folder(tmp_path, {"auto_map": {"AutoModel": "x.Y"}}, ("model.safetensors",)))
    assert folder.ships_code
    with pytest.raises(StudioError, match="--trust-remote-code"):
        check_safety(folder, allow_pickle=False, trust_remote_code=False, words=AT_EXPORT)
    check_safety(folder, allow_pickle=False, trust_remote_code=True, words=AT_EXPORT)
    check_safety(folder, allow_pickle=False, trust_remote_code=None)  # training leaves it to transformers


def test_loadable_and_stored_dtype(tmp_path):
    _folder(tmp_path, {"torch_dtype": "bfloat16"})
    assert not is_loadable(tmp_path) and stored_dtype(tmp_path) == "bfloat16"
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert is_loadable(tmp_path)
    (tmp_path / "config.json").write_text("{")
    assert stored_dtype(tmp_path) == "float32"  # unreadable: what transformers assumes


def test_training_refuses_a_folder_without_safetensors_before_loading(tmp_path):
    from studio.core.training.model_setup import load_model

    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    _folder(tmp_path, {"model_type": "llama"})
    cfg = RunConfig().model_copy(update={"model": RunConfig().model.model_copy(update={"path": str(tmp_path)})})
    with pytest.raises(StudioError, match="allow pickle weights in the model settings"):
        load_model(cfg, "cpu", "float32")


@pytest.mark.parametrize(("want", "device", "bf16", "expected"), [
    ("auto", "cpu", None, "float32"),
    ("auto", "cuda", True, "bfloat16"),
    ("auto", "cuda", False, "float16"),   # a GPU without bf16 (pre-Ampere)
    ("auto", "cuda:1", True, "bfloat16"),
    ("bf16", "cpu", None, "bfloat16"),    # asked for: kept, in torch's spelling
    ("fp16", "cuda", True, "float16"),
    ("float32", "cuda", True, "float32"),
])
def test_one_dtype_rule(want, device, bf16, expected):
    assert resolve_dtype(want, device, bf16=bf16) == expected


def test_unknown_dtype_is_refused():
    with pytest.raises(StudioError, match="choose bf16, fp16 or fp32"):
        normalise_dtype("int4")


def test_device_choice(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == pick_device(None) == pick_device("cpu") == "cpu"
    assert pick_device("cuda:1") == "cuda:1"  # a named device is the caller's choice
    with pytest.raises(StudioError, match="no CUDA GPU is visible"):
        pick_device("cuda")


def test_adapter_is_read_once_into_one_record(lib_adapter, lib_base):  # noqa: F811
    adapter = read_adapter(lib_adapter)
    assert isinstance(adapter, AdapterFiles) and adapter.config["peft_type"] == "LORA"
    assert adapter.base_model == adapter_base(lib_adapter) == str(lib_base)
    assert resolve_base(adapter) == resolve_base(lib_adapter) == lib_base.resolve()


def test_adapter_problems(tmp_path):
    with pytest.raises(StudioError, match="Adapter folder not found"):
        read_adapter(tmp_path / "nope")
    (tmp_path / "adapter_config.json").write_text("[1]")
    (tmp_path / "adapter_model.bin").write_bytes(b"")
    with pytest.raises(StudioError, match="stored as a pickle"):
        read_adapter(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(StudioError, match="must hold a JSON object"):
        read_adapter(tmp_path)
    assert adapter_base(tmp_path) == ""  # labels never fail on a broken adapter


@pytest.mark.parametrize("merge", [False, True])
def test_export_parses_the_adapter_config_once(lib_adapter, tmp_path, monkeypatch, merge):  # noqa: F811
    """The export, its record, the base lookup and the direct merge all use the one ``AdapterFiles``
    (PEFT's own read in ``check_peft_loads_all`` is the point of that check, so it is not counted)."""
    reads = []
    real = json.loads

    def counting(text, *args, **kwargs):
        data = real(text, *args, **kwargs)
        if isinstance(data, dict) and "peft_type" in data and "/studio/" in sys._getframe(1).f_code.co_filename:
            reads.append(1)
        return data

    monkeypatch.setattr(json, "loads", counting)
    report = export_model(lib_adapter, tmp_path / "out", merge=merge, dtype="fp32", check=False)
    assert len(reads) == 1
    assert report.base_model.endswith(Path(adapter_base(lib_adapter)).name)
