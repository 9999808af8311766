"""End to end on the real bundled SmolLM2-135M: GGUF → store → LoRA steps → merge → plain transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.core.config import RunConfig, apply_overrides
from studio.core.training.engine import train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _merged_and_adapter_logits(merged_dir, base_dir, adapter_dir, question: str):
    """Logits of the merged folder, of base + adapter (PEFT, unmerged) and of the base alone, on one chat
    prompt rendered with the merged folder's own tokenizer and template (which must be there)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(merged_dir)
    assert tok.chat_template
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, adapter_dir).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        merged_logits, adapter_logits = merged(**ids).logits, reference(**ids).logits
        with reference.disable_adapter():
            base_logits = reference(**ids).logits
    return merged_logits, adapter_logits, base_logits


def test_gguf_conversion_is_a_plain_hf_folder(bundled_model_dir):
    cfg = json.loads((bundled_model_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
    assert (bundled_model_dir / "model.safetensors").exists()
    assert (bundled_model_dir / "chat_template.jinja").exists() or "chat_template" in (
        bundled_model_dir / "tokenizer_config.json").read_text()


def test_store_tokenizer_tokenizes_the_demo_like_llamacpp(bundled_model_dir, bundled_gguf, demo_train):
    """What training sees (the store's tokenizer on each demo row's chat text, numbers and all) is what
    llama.cpp makes of the bundled GGUF: the import applied the file's "smollm" split rules."""
    from transformers import AutoTokenizer

    from studio.core.library import llamacpp_runner
    from studio.core.models.gguf_import import SOURCE_RECORD

    assert llamacpp_runner.available(), "llama-cpp-python is a dev dependency: ./bootstrap.sh test installs it"
    record = json.loads((bundled_model_dir / SOURCE_RECORD).read_text())
    assert record["pre_tokenizer"] == {"gguf": "smollm", "imported": "smollm", "matches": True}
    assert any("'smollm' rules" in fix for fix in record["config_fixes"])
    tok = AutoTokenizer.from_pretrained(bundled_model_dir)
    rows = [json.loads(line) for line in demo_train.read_text().splitlines() if line.strip()]
    texts = [tok.apply_chat_template(r["messages"], tokenize=False) if "messages" in r else json.dumps(r)
             for r in rows] + ["Table:\n  id  qty\n   1   12\n  22    3\n", "v1.2.3 costs $3.50 (x2) in 2024."]
    want = llamacpp_runner.gguf_tokens(bundled_gguf, texts)
    got = [tok(t, add_special_tokens=False).input_ids for t in texts]
    assert [t for t, g, w in zip(texts, got, want, strict=True) if g != w] == []


def test_train_merge_reload_matches_adapter(bundled_model_dir, demo_train, tmp_path):
    cfg = apply_overrides(RunConfig(), {
        "model.path": str(bundled_model_dir),
        "dataset.train": [str(demo_train)],
        "dataset.eval_ratio": 0.0,
        "training.max_steps": 3,
        "training.batch_size": 2,
        "training.max_seq_len": 96,
        "training.lr": 2e-3,
        "training.save_steps": 0,
        "training.eval_steps": 0,
    })
    result = train(cfg, run_dir=tmp_path / "run")
    assert result.status == "completed" and result.step == 3

    from studio.core.library.merge import export_model

    out = tmp_path / "merged"
    report = export_model(result.adapter_dir, out, merge=True, dtype="float32")
    assert report.passed, report.summary()

    a, b, c = _merged_and_adapter_logits(out, bundled_model_dir, result.adapter_dir, "What is the capital of Peru?")
    rel = (a - b).abs().max() / b.abs().max()
    assert rel < 1e-4, f"merged logits differ from base+adapter by {rel:.2e} (relative)"
    # And the adapter really changed the model: merged != base without the adapter.
    assert (a - c).abs().max() / c.abs().max() > 1e-3


def test_default_export_with_gguf_passes_in_llama_cpp(bundled_model_dir, demo_train, tmp_path):
    """The user's first export, as the CLI does it with no dtype (bf16 merged) plus a q8_0 GGUF: its own
    proof passes — the merge judged against what bf16 itself costs — and llama.cpp loads the GGUF,
    tokenizes every prompt like the trained model and predicts like base + adapter."""
    from studio.cli import main
    from studio.core.library import llamacpp_runner

    assert llamacpp_runner.available(), "llama-cpp-python is a dev dependency: ./bootstrap.sh test installs it"
    cfg = apply_overrides(RunConfig(), {
        "model.path": str(bundled_model_dir), "dataset.train": [str(demo_train)], "dataset.eval_ratio": 0.0,
        "training.max_steps": 4, "training.batch_size": 2, "training.max_seq_len": 96, "training.lr": 1e-3,
        "training.save_steps": 0, "training.eval_steps": 0,
    })
    result = train(cfg, run_dir=tmp_path / "run")
    out = tmp_path / "my-export"
    assert main(["export", str(result.adapter_dir), "--gguf", "q8_0", "--out", str(out), "--json"]) == 0
    record = json.loads((out / "studio_export.json").read_text())
    labels = {e["label"]: e for e in record["equivalence"]}
    assert record["dtype"] == "bfloat16" and record["status"] == "passed", record["equivalence"]
    merged = labels["merged bf16"]
    assert merged["passed"] and merged["dtype_agreement"] is not None
    in_llamacpp = labels["GGUF q8_0 in llama.cpp"]
    assert in_llamacpp["passed"] and in_llamacpp["tokenizer_identical"] is True
    assert in_llamacpp["agreement"] >= 0.9

    from gguf import GGUFReader

    reader = GGUFReader(str(out / "gguf" / "my-export-Q8_0.gguf"))
    assert reader.fields["general.name"].contents() == "my-export"
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"   # the bundled file's own rules
    assert "<|im_start|>" in reader.fields["tokenizer.chat_template"].contents()


def test_dpo_on_demo_pairs_merges_and_reloads(bundled_model_dir, tmp_path):
    """A DPO adapter is exported like any other (issue 16, must-have 5): a few DPO steps on the demo
    pairs, the Library entry knows it is DPO and keeps its reward metrics, `studio export --merge` of
    that entry passes its own proof, and the merged folder reloads in plain transformers with the
    logits of base + adapter."""
    from studio.cli import main
    from studio.core.library import registry
    from studio.core.training import runs

    pairs = REPO / "resources" / "datasets"
    eval_file = tmp_path / "pref_eval.jsonl"  # a few held-out pairs keep the two evals short
    eval_file.write_text("".join((pairs / "demo_pref_eval.jsonl").read_text(encoding="utf-8").splitlines(True)[:4]),
                         encoding="utf-8")
    cfg = apply_overrides(RunConfig(), {
        "objective": "dpo", "model.path": str(bundled_model_dir),
        "dataset.train": [str(pairs / "demo_pref_train.jsonl")], "dataset.eval": [str(eval_file)],
        "training.max_steps": 3, "training.batch_size": 2, "training.max_seq_len": 96, "training.lr": 5e-4,
        "training.save_steps": 0, "training.eval_steps": 0, "preference.beta": 0.1,
    })
    result = train(cfg, run_dir=tmp_path / "run")
    assert result.status == "completed" and result.step == 3, result.reason

    evals = [e for e in runs.read_events(tmp_path / "run") if e.kind == "eval"]
    assert [e.step for e in evals] == [0, 3]
    assert evals[0].rewards["margin"] == pytest.approx(0.0, abs=1e-4)  # the policy is the reference at step 0
    entry = registry.get_entry(result.library_id)
    assert entry.objective == "dpo" and entry.method == "lora"
    for key in ("chosen", "rejected", "margin", "accuracy"):
        assert entry.metrics[f"eval_reward_{key}"] == evals[-1].rewards[key]
    assert entry.metrics["eval_reward_margin"] != 0.0  # three steps moved the policy off the reference

    out = tmp_path / "merged"
    assert main(["export", entry.id, "--merge", "--dtype", "fp32", "--out", str(out), "--json"]) == 0
    record = json.loads((out / "studio_export.json").read_text())
    assert record["status"] == "passed", record["equivalence"]

    a, b, c = _merged_and_adapter_logits(out, bundled_model_dir, entry.adapter_dir, "What is the plural of 'mouse'?")
    rel = (a - b).abs().max() / b.abs().max()
    assert rel < 1e-4, f"merged logits differ from base+adapter by {rel:.2e} (relative)"
    assert (a - c).abs().max() / c.abs().max() > 1e-4  # and the DPO adapter is really in the merge
