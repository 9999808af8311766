"""Every family a workstation user brings, through the studio like the bundled model: introspection and
target presets, trainable counts equal to PEFT's, a few training steps through the engine, the merged
export reloading equal in plain transformers, and the dataset check with the family's own template.

LoRA runs for every family; DoRA, QLoRA and full fine-tuning on Llama-3, a SentencePiece family
(Mistral, Gemma 3) and Qwen2. A family that breaks fails the suite."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
from pathlib import Path

import pytest
from _lib_fixtures import one_thread  # noqa: F401
from _zoo import BYTE_LEVEL, FAMILIES, SPECS, make_family, zoo  # noqa: F401

from studio.cli import main
from studio.core.config import TARGET_PRESETS, RunConfig, apply_overrides
from studio.core.models.introspect import inspect_model, resolve_targets

METHOD_FAMILIES = FAMILIES
# What sets each family apart must be what the studio sees, or the zoo would test Llama four times.
FEATURES = {
    "llama3": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "mistral": {"q_proj", "v_proj", "gate_proj"},
    "qwen2": {"q_proj", "k_proj", "v_proj"},
    "qwen3": {"q_proj", "k_proj", "v_proj"},
    "gemma2": {"q_proj", "gate_proj"},
    "gemma3": {"q_proj", "gate_proj"},
    "phi3": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},
}


@pytest.fixture(autouse=True)
def _threads(one_thread):
    return None


def _cfg(model: Path, demo_train: Path, method: str, **over) -> RunConfig:
    values = {
        "model.path": str(model), "dataset.train": [str(demo_train)], "dataset.eval": [], "dataset.eval_ratio": 0.0,
        "method": "qlora" if method == "qlora" else ("full" if method == "full" else "lora"),
        "lora.use_dora": method == "dora", "lora.target_modules": ["all-linear"], "lora.r": 4, "lora.alpha": 8,
        "training.max_steps": 2, "training.batch_size": 2, "training.max_seq_len": 64, "training.eval_steps": 0,
        "training.save_steps": 0, "training.lr": 1e-2, "training.logging_steps": 1,
    }
    values.update(over)
    return apply_overrides(RunConfig(), values)


# ---------------------------------------------------------------- the zoo itself


def test_zoo_is_deterministic_and_of_the_real_kind(zoo, tmp_path):
    from transformers import AutoTokenizer

    again = make_family("qwen2", tmp_path / "again")
    first = zoo("qwen2")
    for name in ("tokenizer.json", "model.safetensors", "config.json"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    for family in FAMILIES:
        raw = json.loads((zoo(family) / "tokenizer.json").read_text())
        spec = SPECS[family]
        if family in BYTE_LEVEL:
            split, byte_level = raw["pre_tokenizer"]["pretokenizers"]
            assert split["type"] == "Split" and byte_level["type"] == "ByteLevel"
        else:
            assert raw["pre_tokenizer"]["type"] == "Metaspace" and raw["model"]["byte_fallback"] is True
            assert raw["model"]["vocab"]["<0x41>"] < 300
        tok = AutoTokenizer.from_pretrained(zoo(family))
        assert tok.convert_tokens_to_ids(spec.end_of_turn) != tok.unk_token_id
        chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
        assert spec.end_of_turn in tok.apply_chat_template(chat, tokenize=False), family


# ---------------------------------------------------------------- per family


@pytest.mark.parametrize("family", FAMILIES)
def test_introspection_finds_linears_and_presets_resolve(zoo, family):
    info = inspect_model(zoo(family))
    assert FEATURES[family] <= set(info.target_names), info.target_names
    assert "lm_head" not in info.target_names
    for key in TARGET_PRESETS:
        chosen = resolve_targets(info, TARGET_PRESETS[key])
        assert chosen and set(chosen) <= set(info.target_names), (key, chosen)
    assert resolve_targets(info, ["all-linear"]) == info.target_names


@pytest.mark.parametrize("method", ["lora", "dora", "full"])
@pytest.mark.parametrize("family", FAMILIES)
def test_trainable_counts_equal_peft(zoo, family, method):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from studio.core.memory import estimate
    from studio.core.training.model_setup import apply_peft, count_params

    for preset in ("all linear", "q,v"):
        cfg = _cfg(zoo(family), Path("unused.jsonl"), method, **{"lora.target_modules": TARGET_PRESETS[preset]})
        studio_count = estimate(inspect_model(zoo(family)), cfg, device_kind="cpu").trainable_params
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(
                __import__("transformers").AutoConfig.from_pretrained(zoo(family)))
        ours = apply_peft(cfg, model)
        if method == "full":
            assert studio_count == count_params(ours)[0] == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
            return
        with torch.device("meta"):
            ref = AutoModelForCausalLM.from_config(__import__("transformers").AutoConfig.from_pretrained(zoo(family)))
        targets = "all-linear" if preset == "all linear" else resolve_targets(inspect_model(zoo(family)), TARGET_PRESETS[preset])
        peft_model = get_peft_model(ref, LoraConfig(r=4, lora_alpha=8, target_modules=targets, use_dora=method == "dora"))
        peft_trainable, _ = peft_model.get_nb_trainable_parameters()
        assert studio_count == peft_trainable == count_params(ours)[0], (preset, studio_count, peft_trainable)


def _logits(model, ids):
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def _train_export_reload(zoo, family, method, demo_train, tmp_path):
    """Train ``method`` through the engine, export it through the CLI (fp32) and reload it plainly."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.core.training.engine import train

    result = train(_cfg(zoo(family), demo_train, method), run_dir=tmp_path / "run")
    assert result.status == "completed" and result.step == 2, result.reason
    assert result.library_id, "the result must be a Library entry"
    out = tmp_path / "export"
    args = ["export", result.library_id, "--out", str(out), "--json"]
    if method != "full":
        args[2:2] = ["--merge", "--dtype", "fp32"]
    assert main(args) == 0
    record = json.loads((out / "studio_export.json").read_text())
    assert record["status"] == "passed", record
    tok = AutoTokenizer.from_pretrained(out)
    chat = [{"role": "user", "content": "How many legs does a bee have?"}]
    ids = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
    exported = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, nothing studio-specific
    if method == "full":
        reference = AutoModelForCausalLM.from_pretrained(result.adapter_dir)
    else:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(zoo(family), dtype=torch.float32)
        reference = PeftModel.from_pretrained(base, str(result.adapter_dir))
    before = _logits(AutoModelForCausalLM.from_pretrained(zoo(family)), ids)
    want = _logits(reference, ids)
    got = _logits(exported, ids)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    assert not torch.allclose(want, before, atol=1e-4), "training changed nothing"
    return result


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_trains_merges_and_reloads_equal(zoo, family, demo_train, tmp_path):
    _train_export_reload(zoo, family, "lora", demo_train, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dora", "qlora", "full"])
@pytest.mark.parametrize("family", METHOD_FAMILIES)
def test_methods_train_and_export(zoo, family, method, demo_train, tmp_path):
    _train_export_reload(zoo, family, method, demo_train, tmp_path)


@pytest.mark.parametrize("family", FAMILIES)
def test_validate_with_the_family_template(zoo, family, demo_train, capsys):
    rc = main(["validate", str(demo_train), "--model", str(zoo(family)), "--max-len", "256", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["token_checked"], report
    # The counts are the family template's own: every row rendered and tokenized the way training reads it.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo(family))
    rows = [json.loads(line)["messages"] for line in demo_train.read_text().splitlines()]
    lengths = [len(tok.apply_chat_template(m, tokenize=True, return_dict=False)) for m in rows]
    tokens = report["stats"]["tokens"]
    assert (tokens["min"], tokens["max"]) == (min(lengths), max(lengths))
