"""Model introspection on the meta device: counts, shapes, LoRA targets, and refusals."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from _arch_fixtures import TINY, write_config

from studio.core.errors import StudioError
from studio.core.models.introspect import clear_cache, inspect_model, resolve_targets


@pytest.fixture
def model_dir(tmp_path):
    def make(name: str, **extra) -> Path:
        return write_config(tmp_path / name, {**TINY[name], **extra})

    return make


def real_model(cfg_dict: dict):
    """The same architecture instantiated for real (CPU, random init): the ground truth."""
    from transformers import AutoConfig, AutoModelForCausalLM

    d = dict(cfg_dict)
    cfg = AutoConfig.for_model(d.pop("model_type"), **d)
    return AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize("name", sorted(TINY))
def test_counts_and_shapes_match_a_real_instance(model_dir, name):
    info = inspect_model(model_dir(name))
    model = real_model(TINY[name])
    assert info.total_params == sum(p.numel() for p in model.parameters())
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    linear_names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                    if isinstance(m, (nn.Linear, Conv1D)) and m is not model.get_output_embeddings()}
    assert set(info.target_names) == linear_names
    assert "lm_head" not in info.target_names
    assert info.linear_weight_params == sum(
        m.weight.numel() for m in model.modules()
        if isinstance(m, (nn.Linear, Conv1D)) and m is not model.get_output_embeddings())


def test_llama_fields(model_dir):
    info = inspect_model(model_dir("llama"))
    assert (info.architecture, info.model_type) == ("LlamaForCausalLM", "llama")
    assert (info.hidden_size, info.num_layers, info.num_heads, info.num_kv_heads) == (64, 2, 4, 2)
    assert (info.intermediate_size, info.vocab_size, info.context_length, info.head_dim) == (160, 500, 256, 16)
    assert info.tie_word_embeddings is False
    assert info.mlp_gated
    k = next(m for m in info.linear_modules if m.name == "k_proj")
    assert (k.d_in, k.d_out, k.count, k.role) == (64, 32, 2, "attn_in")
    down = next(m for m in info.linear_modules if m.name == "down_proj")
    assert (down.d_in, down.d_out, down.role) == (160, 64, "mlp_out")
    assert info.head is not None and (info.head.d_in, info.head.d_out) == (64, 500)
    assert info.weight_files == ()


def test_tied_embeddings_counted_once(model_dir, tmp_path):
    tied = inspect_model(model_dir("tied"))
    untied = inspect_model(write_config(tmp_path / "untied", {**TINY["tied"], "tie_word_embeddings": False}))
    assert tied.tie_word_embeddings and not untied.tie_word_embeddings
    assert untied.total_params - tied.total_params == 400 * 64
    assert tied.config_dtype == "bfloat16"


def test_gpt2_conv1d_shapes(model_dir):
    info = inspect_model(model_dir("gpt2"))
    assert info.context_length == 128
    c_attn = next(m for m in info.linear_modules if m.name == "c_attn")
    assert (c_attn.kind, c_attn.d_in, c_attn.d_out, c_attn.bias) == ("conv1d", 48, 144, True)
    c_proj = sorted((m.d_in, m.d_out, m.role) for m in info.linear_modules if m.name == "c_proj")
    assert c_proj == [(48, 48, "attn_out"), (192, 48, "mlp_out")]  # same leaf name, two shapes
    assert not info.mlp_gated
    assert info.tie_word_embeddings


def test_weight_files_and_pickle_policy(model_dir):
    d = model_dir("llama")
    (d / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(StudioError, match="pickle"):
        inspect_model(d)
    info = inspect_model(d, allow_pickle=True)
    assert info.has_pickle and not info.has_safetensors
    (d / "model.safetensors").write_bytes(b"")
    info = inspect_model(d)  # safetensors present: the .bin is never needed
    assert info.weight_files == ("model.safetensors", "pytorch_model.bin")


def test_missing_folder(tmp_path):
    with pytest.raises(StudioError, match="not found"):
        inspect_model(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "config.json"
    f.write_text("{}")
    with pytest.raises(StudioError, match="not a model folder"):
        inspect_model(f)


def test_no_config_json(tmp_path):
    with pytest.raises(StudioError, match=r"No config\.json"):
        inspect_model(tmp_path)


def test_bad_json_reports_line(tmp_path):
    (tmp_path / "config.json").write_text('{\n "model_type": "llama",\n oops\n}')
    with pytest.raises(StudioError) as err:
        inspect_model(tmp_path)
    assert err.value.line == 3


def test_unknown_architecture(tmp_path):
    write_config(tmp_path, {"model_type": "frobnicator", "hidden_size": 8})
    with pytest.raises(StudioError, match="Unknown architecture"):
        inspect_model(tmp_path)


def test_missing_model_type(tmp_path):
    write_config(tmp_path, {"hidden_size": 8})
    with pytest.raises(StudioError, match="no model_type"):
        inspect_model(tmp_path)


def test_not_a_causal_lm(tmp_path):
    write_config(tmp_path, {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1,
                            "num_attention_heads": 2, "intermediate_size": 64})
    with pytest.raises(StudioError, match="not a text-generation"):
        inspect_model(tmp_path)


def test_custom_code_refused_without_trust(tmp_path):
    write_config(tmp_path, {"model_type": "my_custom_lm", "auto_map": {"AutoConfig": "configuration_my.MyConfig"}})
    with pytest.raises(StudioError, match="trust remote code") as err:
        inspect_model(tmp_path)
    assert "someone else's code" in err.value.message
    # allowed, it is attempted; the folder has no such code, which is again a clear StudioError
    with pytest.raises(StudioError, match="could not be read"):
        inspect_model(tmp_path, trust_remote_code=True)


def test_auto_map_on_a_native_type_needs_no_trust(model_dir):
    info = inspect_model(model_dir("llama", auto_map={"AutoModelForCausalLM": "modeling_x.X"}))
    assert info.model_type == "llama"


def test_cache_per_config_mtime(model_dir):
    clear_cache()
    d = model_dir("llama")
    first = inspect_model(d)
    assert inspect_model(d) is first
    t0 = time.perf_counter()
    inspect_model(d)
    assert time.perf_counter() - t0 < 0.05
    data = json.loads((d / "config.json").read_text())
    data["num_hidden_layers"] = 3
    (d / "config.json").write_text(json.dumps(data))
    st = os.stat(d / "config.json")
    os.utime(d / "config.json", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    again = inspect_model(d)
    assert again is not first and again.num_layers == 3


def test_resolve_presets(model_dir):
    info = inspect_model(model_dir("llama"))
    assert resolve_targets(info, ["q,v"]) == ["q_proj", "v_proj"]
    assert resolve_targets(info, ["all attention"]) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    everything = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert resolve_targets(info, ["all-linear"]) == everything
    assert resolve_targets(info, ["all linear"]) == everything
    assert resolve_targets(info, "all-linear") == everything
    assert resolve_targets(info, ["v_proj", "q_proj", "q_proj"]) == ["q_proj", "v_proj"]
    assert resolve_targets(info, "down_proj,up_proj") == ["up_proj", "down_proj"]


def test_resolve_unknown_names_them(model_dir):
    info = inspect_model(model_dir("gpt2"))
    assert resolve_targets(info, ["all-linear"]) == ["c_attn", "c_proj", "c_fc"]
    with pytest.raises(StudioError, match="'q_proj'") as err:
        resolve_targets(info, ["q,v"])
    assert "c_attn" in err.value.message  # says what it could have been
    with pytest.raises(StudioError, match="'lm_head'"):
        resolve_targets(info, ["lm_head"])
