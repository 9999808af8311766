"""GGUF export: files that llama.cpp itself loads and runs (through llama-cpp-python, a dev
dependency) and that transformers' GGUF loader reads back, both proven against base + adapter; the
pre-tokenizer name is one llama.cpp knows and splits alike; the Q/K permutation is exactly what the
loader undoes."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
from pathlib import Path

import pytest
from _lib_fixtures import lib_adapter, lib_base, one_thread  # noqa: F401

from studio.core.errors import StudioError
from studio.core.library import llamacpp_runner
from studio.core.library.gguf_export import gguf_file_name, llama_permute, write_gguf
from studio.core.library.merge import EXPORT_RECORD, export_model


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch, one_thread) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


@pytest.mark.parametrize(("n_head", "n_kv"), [(4, 4), (4, 2), (9, 3)])
def test_permute_is_undone_by_transformers_loader(n_head, n_kv):
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    head_dim, hidden = 8, 16
    rows = n_kv * head_dim
    w = np.arange(rows * hidden, dtype=np.float32).reshape(rows, hidden)
    permuted = llama_permute(w, n_head, n_kv)
    assert not np.array_equal(permuted, w)
    proc = LlamaTensorProcessor(config={"num_attention_heads": n_head, "num_key_value_heads": n_kv})
    back = proc.process(permuted, "blk.0.attn_k.weight").weights
    assert np.array_equal(back, w)


def test_non_llama_is_refused_clearly(tmp_path):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(StudioError, match=r"convert_hf_to_gguf\.py") as err:
        write_gguf(folder, tmp_path / "x.gguf")
    assert "'gpt2'" in err.value.message


@pytest.mark.slow
@pytest.mark.parametrize(("gguf_type", "min_agreement", "max_rel"), [("f16", 0.95, 0.01), ("q8_0", 0.75, 0.2)])
def test_gguf_roundtrips_through_transformers(lib_adapter, tmp_path, gguf_type, min_agreement, max_rel):
    """f16 must pass its rule. q8_0 on a *random* tiny model sits near the 90 % line (its near-uniform
    logits are all near-ties; SmolLM2 measures 98.4 %), so here the verdict must follow the rule and
    the agreement must be far above what a broken file gives (~0)."""
    assert llamacpp_runner.available(), "llama-cpp-python is a dev dependency: ./bootstrap.sh test installs it"
    out = tmp_path / f"export-{gguf_type}"
    report = export_model(lib_adapter, out, dtype="fp32", gguf=gguf_type)
    merged_eq, gguf_eq, llamacpp_eq = report.equivalence
    print(f"\n{gguf_eq.summary()}\n{llamacpp_eq.summary()}")  # the measured agreement, shown with -s
    assert merged_eq.passed
    for eq in (gguf_eq, llamacpp_eq):
        assert eq.kind == gguf_type and eq.tokenizer_identical is True
        assert eq.agreement >= min_agreement and eq.max_rel_diff <= max_rel
        assert eq.passed == (eq.agreement >= 0.9 if gguf_type == "q8_0" else True)
    assert report.status == ("passed" if gguf_eq.passed and llamacpp_eq.passed else "failed")

    gdir = out / "gguf"
    name = gguf_file_name(gguf_type, out.name)
    assert name == f"export-{gguf_type}-{gguf_type.upper()}.gguf"
    assert report.gguf_files == [f"gguf/{name}"]
    # The proof loaded the file with nothing but transformers (model and tokenizer); an identical
    # tokenizer means the GGUF's chat template rendered the prompts exactly like the HF one.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gdir), gguf_file=name)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template

    modelfile = (gdir / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{name}\n") and 'PARAMETER stop "<|im_end|>"' in modelfile
    record = json.loads((out / EXPORT_RECORD).read_text())
    assert record["status"] == report.status and record["equivalence"][1]["agreement"] == gguf_eq.agreement
    assert [e["label"] for e in record["equivalence"]] == [
        "merged fp32", f"GGUF {gguf_type} in transformers", f"GGUF {gguf_type} in llama.cpp"]


def test_gguf_metadata_matches_llama_cpp_conventions(lib_base, tmp_path):
    from gguf import GGUFReader

    path = write_gguf(lib_base, tmp_path / "m.gguf", "q8_0")
    reader = GGUFReader(str(path))

    def field(key):
        return reader.fields[key].contents()

    assert field("general.architecture") == "llama"
    assert field("general.name") == "tiny-llama"  # the model's own name, never a temp folder's
    assert field("general.file_type") == 7
    # Chosen by behaviour: the bundled tokenizer cuts every digit off, as llama.cpp's "smollm" rules do.
    assert field("tokenizer.ggml.pre") == "smollm"
    assert field("tokenizer.ggml.model") == "gpt2"
    assert field("tokenizer.ggml.eos_token_id") == 2 and field("tokenizer.ggml.bos_token_id") == 1
    assert field("tokenizer.ggml.add_bos_token") is False
    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == field("llama.vocab_size")
    assert tokens[2] == "<|im_end|>" and types[2] == 3  # control token
    assert len(field("tokenizer.ggml.merges")) > 40000
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.attn_q.weight"] == "Q8_0" and kinds["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in kinds  # tied embeddings are written once, as llama.cpp does


def test_a_wrong_permutation_fails_the_16bit_rule(lib_base):
    """The rule is not vacuous: Q/K rows left in llama.cpp's order (the classic GGUF bug) must fail."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.core.library.equivalence import check_equivalence, reference_trace

    tok = AutoTokenizer.from_pretrained(lib_base)
    ref = AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.float32)
    trace = reference_trace(ref, tok, new_tokens=8)
    assert check_equivalence(trace, ref, tok, kind="f16").passed  # the model against itself passes
    broken = AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.float32)
    cfg = broken.config
    with torch.no_grad():
        for layer in broken.model.layers:
            q, k = layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight
            q.copy_(llama_permute(q, cfg.num_attention_heads, cfg.num_attention_heads))
            k.copy_(llama_permute(k, cfg.num_attention_heads, cfg.num_key_value_heads))
    report = check_equivalence(trace, broken, tok, kind="f16")
    assert not report.passed and report.max_rel_diff > 0.05, report.summary()


# ---------------------------------------------------------------- every family the studio trains

FAMILY_ARCH = {"llama3": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2",
               "gemma3": "gemma3", "phi3": "phi3"}
LORA_TARGETS = {"phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]}


def _peaked_family(family: str, out: Path) -> Path:
    """The zoo model re-initialised with a wide initialiser, so its logits are peaked like a trained
    model's (the default 0.02 makes every next token a near-tie and a greedy comparison meaningless).
    Mistral drops its 16-token window (as Mistral v0.2+ does): llama.cpp's Llama has no window, so a
    binding one is written as the declared context instead (``test_a_binding_window_becomes_the_context``)."""
    import torch
    from _zoo import make_family
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    make_family(family, out)
    stops = GenerationConfig.from_pretrained(out)  # the zoo's stop ids (eos and end of turn)
    cfg = AutoConfig.from_pretrained(out)
    cfg.initializer_range = 0.3
    if family == "mistral":
        cfg.sliding_window = None
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.generation_config = stops
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def family_adapter(tmp_path_factory):
    """``family_adapter(family)``: a LoRA trained for 30 steps by the studio's engine on the demo
    data, on the family's peaked tiny model (its own tokenizer and chat template), built once."""
    from studio.core.config import RunConfig, apply_overrides
    from studio.core.paths import demo_dataset
    from studio.core.training.engine import train

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            root = tmp_path_factory.mktemp(f"gguf-{family}")
            base = _peaked_family(family, root / family)
            cfg = apply_overrides(RunConfig(), {
                "model.path": str(base), "dataset.train": [str(demo_dataset())], "dataset.eval_ratio": 0.0,
                "training.max_steps": 30, "training.batch_size": 2, "training.max_seq_len": 96,
                "training.lr": 5e-3, "training.save_steps": 0, "training.eval_steps": 0,
                "lora.target_modules": LORA_TARGETS.get(family, ["all-linear"]),
            })
            result = train(cfg, run_dir=root / "run")
            assert result.status == "completed" and result.adapter_dir is not None
            built[family] = result.adapter_dir
        return built[family]

    return get


@pytest.mark.parametrize("gguf_type", ["f16", "q8_0"])
@pytest.mark.parametrize("family", list(FAMILY_ARCH))
def test_every_family_runs_in_llamacpp(family_adapter, tmp_path, family, gguf_type):
    """Each family's GGUF loads in llama.cpp, which tokenizes the chat text exactly like the trained
    tokenizer and predicts like base + adapter by the proof's own rule. f16 must pass. q8_0 on a tiny
    random model sits near its 90 % line (hidden 64: two quantisation blocks per row, and logits far
    less decisive than a trained model's; the bundled model measures 92-95 %), so there the verdict
    must follow the rule and the agreement must be far above what a broken file gives (~0)."""
    from gguf import GGUFReader

    assert llamacpp_runner.available(), "llama-cpp-python is a dev dependency: ./bootstrap.sh test installs it"
    out = tmp_path / f"{family}-export"
    report = export_model(family_adapter(family), out, dtype="fp32", gguf=gguf_type)
    by_label = {e.label: e for e in report.equivalence}
    lcpp = by_label[f"GGUF {gguf_type} in llama.cpp"]
    print(f"\n{lcpp.summary()}")  # the measured agreement, shown with -s
    assert lcpp.tokenizer_identical is True, lcpp.summary()
    if gguf_type == "f16":
        assert lcpp.passed and lcpp.decisive_misses == 0 and lcpp.max_rel_diff <= 0.05, lcpp.summary()
    else:
        assert lcpp.passed == (lcpp.agreement >= 0.9) and lcpp.agreement >= 0.75, lcpp.summary()
    assert report.status == ("passed" if all(e.passed for e in report.equivalence) else "failed")
    assert report.equivalence[0].passed  # the merged fp32 folder itself
    # transformers' reader judges the file too, except where it is known to rebuild the family differently.
    in_hf = f"GGUF {gguf_type} in transformers" in by_label
    assert in_hf == (family in ("llama3", "qwen2")), (family, report.notes)
    assert in_hf or any("proven in llama.cpp only" in n for n in report.notes)
    reader = GGUFReader(str(out / report.gguf_files[0]))
    assert reader.fields["general.architecture"].contents() == FAMILY_ARCH[family]


def test_family_metadata_follows_llama_cpp(family_adapter, tmp_path):
    """What llama.cpp's converter writes per family: norms stored as 1 + w for Gemma, the sliding layers
    as a per-layer pattern, Qwen biases and q/k norms, Phi-3's fused tensors, SentencePiece pieces typed
    BYTE with scores, and the space-prefix flag off for tokenizers that prepend only at the very start."""
    import torch
    from gguf import GGUFReader
    from safetensors.torch import load_file

    from studio.core.library.gguf_vocab import BYTE

    def read(family: str):
        base = family_adapter(family).parent.parent / family
        path = write_gguf(base, tmp_path / f"{family}.gguf", "f16", name=f"{family}-model")
        reader = GGUFReader(str(path))
        return base, {k: f.contents() for k, f in reader.fields.items()}, {t.name: t for t in reader.tensors}

    base, fields, tensors = read("gemma2")
    norm = load_file(str(base / "model.safetensors"))["model.layers.0.post_feedforward_layernorm.weight"]
    assert torch.allclose(torch.from_numpy(tensors["blk.0.post_ffw_norm.weight"].data.copy()), norm + 1)
    assert fields["gemma2.attention.sliding_window"] == 16
    assert fields["gemma2.attention.sliding_window_pattern"] == [True, False]
    assert fields["gemma2.final_logit_softcapping"] == 30.0 and fields["gemma2.attn_logit_softcapping"] == 50.0
    assert "output.weight" not in tensors  # tied: llama.cpp reads token_embd
    assert fields["tokenizer.ggml.model"] == "llama" and fields["tokenizer.ggml.add_space_prefix"] is False
    assert fields["tokenizer.ggml.eot_token_id"] == fields["tokenizer.ggml.tokens"].index("<end_of_turn>")
    types, tokens = fields["tokenizer.ggml.token_type"], fields["tokenizer.ggml.tokens"]
    assert types[tokens.index("<0x41>")] == BYTE and len(fields["tokenizer.ggml.scores"]) == len(tokens)

    _, fields, tensors = read("gemma3")
    assert fields["gemma3.rope.freq_base"] == 1_000_000.0 and fields["gemma3.rope.freq_base_swa"] == 10_000.0
    assert "blk.1.attn_q_norm.weight" in tensors
    _, fields, tensors = read("qwen2")
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= set(tensors)
    assert fields["tokenizer.ggml.pre"] == "qwen2" and fields["tokenizer.ggml.model"] == "gpt2"
    _, fields, tensors = read("qwen3")
    assert {"blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight"} <= set(tensors)
    _, fields, tensors = read("llama3")
    assert fields["tokenizer.ggml.pre"] == "llama-bpe"
    _, fields, tensors = read("phi3")
    assert {"blk.0.attn_qkv.weight", "blk.0.ffn_up.weight"} <= set(tensors) and "blk.0.ffn_gate.weight" not in tensors
    assert list(tensors["blk.0.ffn_up.weight"].shape)[::-1] == [2 * 128, 64]
    # llama.cpp strips whitespace after special tokens when the name says Phi-3; this tokenizer does not.
    assert "phi3" not in fields["general.name"].lower() and "phi-3" not in fields["general.name"].lower()


def test_a_binding_window_becomes_the_context(tmp_path):
    """llama.cpp runs Mistral without a sliding window: exact only within the window, so the file says so."""
    from _zoo import make_family
    from gguf import GGUFReader

    base = make_family("mistral", tmp_path / "mistral")  # the zoo's own 16-token window
    reader = GGUFReader(str(write_gguf(base, tmp_path / "m.gguf", "f16")))
    assert reader.fields["llama.context_length"].contents() == 16


def test_unmappable_models_are_refused_before_merging(tmp_path, monkeypatch):
    """Refused with the converter to use, before a single weight is merged."""
    from _zoo import make_family

    import studio.core.library.merge as merge_mod
    from studio.core.library.gguf_export import check_exportable

    base = make_family("gemma2", tmp_path / "gemma2")
    cfg = json.loads((base / "config.json").read_text())
    cfg["query_pre_attn_scalar"] = 144  # llama.cpp would scale by 1/sqrt(head_dim) = 1/4 instead
    (base / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(StudioError, match=r"convert_hf_to_gguf\.py"):
        check_exportable(base)
    cfg.update(query_pre_attn_scalar=16, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4})
    (base / "config.json").write_text(json.dumps(cfg))
    from _lib_fixtures import make_adapter

    adapter = make_adapter(make_family("qwen2", tmp_path / "qwen2"), tmp_path / "adapter")
    qcfg = json.loads((tmp_path / "qwen2" / "config.json").read_text())
    qcfg["use_sliding_window"] = True
    (tmp_path / "qwen2" / "config.json").write_text(json.dumps(qcfg))
    monkeypatch.setattr(merge_mod, "_export_merged", lambda *a, **k: pytest.fail("merged before refusing"))
    with pytest.raises(StudioError, match=r"convert_hf_to_gguf\.py"):
        export_model(adapter, tmp_path / "out", dtype="fp32", gguf="f16")
    with pytest.raises(StudioError, match="yarn"):
        check_exportable(base)
