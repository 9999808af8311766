"""The direct LoRA merge writes the same weights PEFT's own merge would, and hands every adapter it
cannot merge exactly back to PEFT."""

# ruff: noqa: F811
from __future__ import annotations

import json
from pathlib import Path

import pytest
from _lib_fixtures import TARGETS, adapter_copy, lib_adapter, lib_base, make_adapter, one_thread  # noqa: F401

from studio.core.library.lora_merge import plan_direct_merge
from studio.core.library.merge import EXPORT_RECORD, export_model


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch, one_thread) -> Path:
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _peft_merged_state(base: Path, adapter: Path, dtype) -> dict:
    """What PEFT's merge_and_unload gives, computed in fp32 and cast, as the export does."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload().to(dtype)
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}


def _written_state(folder: Path) -> dict:
    from safetensors.torch import load_file

    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(f))
    return state


def _assert_same_weights(written: dict, want: dict, atol: float) -> None:
    import torch

    assert written, "no weights written"
    for key, tensor in written.items():
        assert key in want, key
        assert tensor.dtype == want[key].dtype, key
        assert torch.allclose(tensor.float(), want[key].float(), atol=atol, rtol=0), key


@pytest.mark.parametrize(("dtype", "atol"), [("fp32", 1e-6), ("bf16", 0.0)])
def test_direct_merge_equals_peft_merge(lib_base, lib_adapter, tmp_path, dtype, atol):
    import torch

    plan, why = plan_direct_merge(lib_adapter, lib_base)
    assert plan is not None, why
    assert len(plan.adapter_keys) == 2 * len(TARGETS)
    out = tmp_path / f"merged-{dtype}"
    report = export_model(lib_adapter, out, dtype=dtype, check=False)
    record = json.loads((out / EXPORT_RECORD).read_text())
    assert record["merge_method"] == "direct" and not report.notes
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    want = _peft_merged_state(lib_base, lib_adapter, torch_dtype)
    # bf16: both round the same fp32 sum once, so the bits agree; fp32: summation order only.
    _assert_same_weights(_written_state(out), want, atol)
    # The adapter changed the weights (a merge that did nothing would also "match" a no-op).
    from safetensors.torch import load_file

    base_q = load_file(lib_base / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    assert not torch.equal(_written_state(out)["model.layers.0.self_attn.q_proj.weight"].float(), base_q.float())
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == {"fp32": "float32", "bf16": "bfloat16"}[dtype]
    assert {"tokenizer.json", "tokenizer_config.json", "generation_config.json"} <= {p.name for p in out.iterdir()}


def test_rslora_scaling(lib_base, tmp_path):
    adapter = make_adapter(lib_base, tmp_path / "rs", r=4, seed=3)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["use_rslora"] = True
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    import torch

    out = tmp_path / "merged"
    export_model(adapter, out, dtype="fp32", check=False)
    assert json.loads((out / EXPORT_RECORD).read_text())["merge_method"] == "direct"
    _assert_same_weights(_written_state(out), _peft_merged_state(lib_base, adapter, torch.float32), 1e-6)


def test_sharded_base_is_written_in_the_same_shards(lib_base, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "sharded-base"
    model = AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.bfloat16)
    model.save_pretrained(sharded, max_shard_size="100KB")
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (lib_base / f).exists():
            (sharded / f).write_bytes((lib_base / f).read_bytes())
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) > 1
    adapter = make_adapter(sharded, tmp_path / "adapter")
    out = tmp_path / "merged"
    report = export_model(adapter, out, dtype="bf16")
    assert report.status == "passed", report.summary()
    assert sorted(p.name for p in out.glob("*.safetensors")) == shards
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    _assert_same_weights(_written_state(out), _peft_merged_state(sharded, adapter, torch.bfloat16), 0.0)
    AutoModelForCausalLM.from_pretrained(out)  # loads plainly


@pytest.mark.parametrize(("option", "value", "why"), [
    ("use_dora", True, "DoRA"),
    ("rank_pattern", {"q_proj": 2}, "per-layer ranks"),
    ("bias", "lora_only", "biases"),
])
def test_unsupported_adapters_are_left_to_peft(adapter_copy, lib_base, option, value, why):
    cfg = json.loads((adapter_copy / "adapter_config.json").read_text())
    cfg[option] = value
    (adapter_copy / "adapter_config.json").write_text(json.dumps(cfg))
    plan, reason = plan_direct_merge(adapter_copy, lib_base)
    assert plan is None and why in reason


def test_extra_adapter_tensors_fall_back_and_still_pass(lib_base, tmp_path):
    """An adapter that also saves a whole module (here the LM head) goes through PEFT, and says so."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"],
                     init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    adapter = tmp_path / "mts"
    peft_model.save_pretrained(adapter)
    data = json.loads((adapter / "adapter_config.json").read_text())
    data["base_model_name_or_path"] = str(lib_base.resolve())
    (adapter / "adapter_config.json").write_text(json.dumps(data))
    assert plan_direct_merge(adapter, lib_base)[0] is None
    out = tmp_path / "merged"
    report = export_model(adapter, out, dtype="fp32")
    assert report.status == "passed", report.summary()
    assert json.loads((out / EXPORT_RECORD).read_text())["merge_method"] == "peft"
    assert any("merged through PEFT" in n for n in report.notes)


def test_adapter_from_another_model_is_a_clear_error(lib_adapter, tmp_path, smol_tokenizer_dir):
    from _lib_fixtures import make_base

    from studio.core.errors import StudioError

    other = make_base(tmp_path / "wider", smol_tokenizer_dir, hidden=96)
    data = json.loads((lib_adapter / "adapter_config.json").read_text())
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes((lib_adapter / "adapter_model.safetensors").read_bytes())
    (adapter / "adapter_config.json").write_text(json.dumps({**data, "base_model_name_or_path": str(other)}))
    out = tmp_path / "o"
    with pytest.raises(StudioError, match="does not fit the base model"):
        export_model(adapter, out, check=False)
    assert not out.exists()


def _drop_target_modules(adapter: Path) -> None:
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    del cfg["target_modules"]
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))


def test_missing_target_modules_is_read_the_way_peft_reads_it(adapter_copy, lib_base, tmp_path):
    """PEFT falls back to q_proj/v_proj and drops the other tensors; neither merge may do that silently."""
    from studio.core.errors import StudioError

    _drop_target_modules(adapter_copy)
    before = (adapter_copy / "adapter_config.json").read_bytes()
    with pytest.raises(StudioError, match="target_modules is missing") as err:
        plan_direct_merge(adapter_copy, lib_base)
    assert "k_proj" in err.value.message and "q_proj, v_proj" in err.value.message
    out = tmp_path / "out"
    with pytest.raises(StudioError, match="silently ignore 20 of its tensors"):
        export_model(adapter_copy, out, dtype="fp32")  # with the proof: refused, not "passed"
    assert not out.exists()
    assert (adapter_copy / "adapter_config.json").read_bytes() == before  # the user's file is untouched


def test_missing_target_modules_that_match_peft_default_still_merge_exactly(lib_base, tmp_path):
    import torch

    adapter = make_adapter(lib_base, tmp_path / "qv", targets=["q_proj", "v_proj"])
    _drop_target_modules(adapter)
    plan, why = plan_direct_merge(adapter, lib_base)
    assert plan is not None, why
    out = tmp_path / "merged"
    report = export_model(adapter, out, dtype="fp32")
    assert report.status == "passed", report.summary()
    _assert_same_weights(_written_state(out), _peft_merged_state(lib_base, adapter, torch.float32), 1e-6)


def test_config_naming_layers_without_tensors_is_refused(lib_base, tmp_path):
    from studio.core.errors import StudioError

    adapter = make_adapter(lib_base, tmp_path / "qv", targets=["q_proj", "v_proj"])
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["target_modules"] = ["q_proj", "v_proj", "up_proj"]
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(StudioError, match=r"no tensors for \(up_proj\)"):
        plan_direct_merge(adapter, lib_base)
    with pytest.raises(StudioError, match="no tensors"):
        export_model(adapter, tmp_path / "out", dtype="fp32")
