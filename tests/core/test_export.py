"""Merge & export: merged folders load in plain transformers and match base + adapter; failures are
loud; a crash mid-export leaves nothing behind."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import errno
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from _lib_fixtures import adapter_copy, lib_adapter, lib_base, one_thread  # noqa: F401

from studio.cli import main
from studio.core.errors import StudioError
from studio.core.fsutil import TMP_PREFIX
from studio.core.library import equivalence, registry
from studio.core.library.adapter_files import resolve_base
from studio.core.library.merge import EXPORT_RECORD, export_model
from studio.core.library.ollama import ollama_modelfile

PROMPT = "Name two colours."


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch, one_thread) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def merged_fp32(tmp_path_factory, lib_adapter, one_thread):
    out = tmp_path_factory.mktemp("exports") / "merged-fp32"
    report = export_model(lib_adapter, out, dtype="fp32")
    return out, report


def _logits(model, tokenizer):
    import torch

    ids = torch.tensor([equivalence.chat_ids(tokenizer, PROMPT)])
    with torch.inference_mode():
        return model(input_ids=ids).logits[0].float()


def test_merged_fp32_loads_plainly_and_matches_unmerged(merged_fp32, lib_base, lib_adapter):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, report = merged_fp32
    assert report.status == "passed", report.summary()
    (eq,) = report.equivalence
    assert eq.greedy_identical and eq.max_rel_diff <= 1e-4 and eq.prompts == 4

    tok = AutoTokenizer.from_pretrained(out)
    merged = AutoModelForCausalLM.from_pretrained(out)  # plain load, nothing studio-specific
    assert merged.dtype == torch.float32
    base = AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.float32)
    base_logits = _logits(base, tok)
    unmerged = PeftModel.from_pretrained(base, lib_adapter)
    want, got = _logits(unmerged, tok), _logits(merged, tok)
    rel = float((got - want).abs().max() / want.abs().max())
    assert rel <= 1e-4
    # The adapter matters: without it the outputs are far off, so the comparison above is not vacuous.
    assert float((base_logits - want).abs().max() / want.abs().max()) > 1e-2


def test_merged_folder_keeps_tokenizer_template_and_stop_tokens(merged_fp32, lib_base):
    out, _report = merged_fp32
    for name in ("config.json", "tokenizer.json", "chat_template.jinja", "generation_config.json", EXPORT_RECORD):
        assert (out / name).is_file(), name
    assert list(out.glob("*.safetensors"))
    assert (out / "chat_template.jinja").read_text() == (lib_base / "chat_template.jinja").read_text()
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == json.loads((lib_base / "generation_config.json").read_text())["eos_token_id"]
    record = json.loads((out / EXPORT_RECORD).read_text())
    assert record["status"] == "passed" and record["kind"] == "merged" and record["dtype"] == "float32"
    assert record["adapter_dir"] and record["base_model"] == str(lib_base.resolve())
    assert record["equivalence"][0]["passed"] is True
    assert record["adapter_config"]["peft_type"] == "LORA"
    assert not list(out.parent.glob(TMP_PREFIX + "*"))


def test_bf16_export_is_bf16_on_disk(lib_adapter, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "bf16"
    report = export_model(lib_adapter, out, dtype="bf16", check=False)
    assert report.status == "unchecked" and report.equivalence == []
    with safe_open(str(next(out.glob("*.safetensors"))), framework="pt") as fh:
        dtypes = {fh.get_tensor(k).dtype for k in fh.keys()}  # noqa: SIM118
    import torch

    assert dtypes == {torch.bfloat16}
    assert json.loads((out / EXPORT_RECORD).read_text())["status"] == "unchecked"


def test_failed_check_is_recorded_not_hidden(lib_adapter, tmp_path, monkeypatch):
    # An impossible rule (zero logit difference) makes the proof fail on a correct export.
    monkeypatch.setitem(equivalence.THRESHOLDS, "fp32", equivalence.Rule(identical=True, max_rel=0.0, min_agreement=1.0))
    out = tmp_path / "strict"
    report = export_model(lib_adapter, out, dtype="fp32")
    assert report.status == "failed" and not report.passed
    assert "FAILED" in report.summary()
    assert json.loads((out / EXPORT_RECORD).read_text())["status"] == "failed"


@pytest.mark.parametrize("stage", ["Loading base model", "Merging", "Proving", "Writing export record"])
def test_exception_mid_export_leaves_nothing(lib_adapter, tmp_path, stage):
    out = tmp_path / "exports" / "killed"

    def progress(_f: float, message: str) -> None:
        if message.startswith(stage):
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        export_model(lib_adapter, out, dtype="fp32", progress=progress)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_disk_full_is_a_clear_error(adapter_copy, tmp_path, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", full)
    out = tmp_path / "x" / "adapter-export"
    with pytest.raises(StudioError, match="disk is full"):
        export_model(adapter_copy, out, merge=False)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_adapter_only_export_loads_in_plain_peft(lib_adapter, lib_base, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "adapter-only"
    report = export_model(lib_adapter, out, merge=False)
    assert report.status == "passed" and report.kind == "adapter"
    assert (out / "adapter_model.safetensors").is_file() and (out / EXPORT_RECORD).is_file()
    tok = AutoTokenizer.from_pretrained(lib_base)
    a = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.float32), out)
    b = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.float32), lib_adapter)
    assert torch.equal(_logits(a, tok), _logits(b, tok))

    zipped = tmp_path / "adapter.zip"
    zreport = export_model(lib_adapter, zipped, merge=False)
    assert zreport.status == "passed"
    with zipfile.ZipFile(zipped) as zf:
        names = set(zf.namelist())
    assert {"adapter_config.json", "adapter_model.safetensors", EXPORT_RECORD} <= names
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


def test_refusals(lib_adapter, adapter_copy, lib_base, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    with pytest.raises(StudioError, match="already exists"):
        export_model(lib_adapter, out)
    with pytest.raises(StudioError, match="Unknown dtype"):
        export_model(lib_adapter, tmp_path / "a", dtype="int3")
    with pytest.raises(StudioError, match="GGUF needs a merged"):
        export_model(lib_adapter, tmp_path / "b", merge=False, gguf="f16")

    # A base stored as pickle is refused unless allowed.
    pickled = tmp_path / "pickled-base"
    shutil.copytree(lib_base, pickled)
    for f in pickled.glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    cfg = json.loads((adapter_copy / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(pickled)
    (adapter_copy / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(StudioError, match="pickle"):
        export_model(adapter_copy, tmp_path / "c")

    # A base that ships code is refused without trust_remote_code.
    coded = tmp_path / "coded-base"
    shutil.copytree(lib_base, coded)
    bcfg = json.loads((coded / "config.json").read_text())
    bcfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (coded / "config.json").write_text(json.dumps(bcfg))
    cfg["base_model_name_or_path"] = str(coded)
    (adapter_copy / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(StudioError, match="trust_remote_code"):
        export_model(adapter_copy, tmp_path / "d")

    # A pre-quantised base is refused: merging into 4-bit would discard the update.
    quant = tmp_path / "quant-base"
    shutil.copytree(lib_base, quant)
    qcfg = json.loads((quant / "config.json").read_text())
    qcfg["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quant / "config.json").write_text(json.dumps(qcfg))
    cfg["base_model_name_or_path"] = str(quant)
    (adapter_copy / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(StudioError, match="16-bit base"):
        export_model(adapter_copy, tmp_path / "e")
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_modelfile_for_chatml_template(lib_base):
    from transformers import AutoTokenizer

    text = ollama_modelfile(AutoTokenizer.from_pretrained(lib_base), "model-f16.gguf", ["<|im_end|>"])
    lines = text.splitlines()
    assert lines[0] == "FROM ./model-f16.gguf"
    assert '{{ .Content }}<|im_end|>' in text and "<|im_start|>assistant" in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in text  # the template's default system turn
    assert 'PARAMETER stop "<|im_end|>"' in lines


def test_cli_export_from_library_entry(lib_adapter, tmp_path, capsys):
    entry = registry.register_adapter(lib_adapter, {"metrics": {"eval_loss": 2.0}}, name="for-cli")
    out = tmp_path / "cli-export"
    rc = main(["export", "for-cli", "--merge", "--out", str(out), "--dtype", "fp32", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert report["status"] == "passed" and report["adapter_dir"] == str(entry.adapter_dir.resolve())
    assert "%]" in captured.err  # progress lines go to stderr
    assert main(["export", str(lib_adapter), "--out", str(out)]) == 2  # exists: a message, not a traceback
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "no-such-entry", "--out", str(tmp_path / "y")]) == 2


def test_qlora_adapter_merges_into_a_16bit_base(lib_base, tmp_path):
    """An adapter trained on a 4-bit base is merged into the unquantised base, never into NF4."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    four_bit = AutoModelForCausalLM.from_pretrained(lib_base, quantization_config=quant, dtype=torch.float32)
    cfg = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    adapter = tmp_path / "qlora-adapter"
    get_peft_model(four_bit, cfg).save_pretrained(adapter)

    out = tmp_path / "merged"
    report = export_model(adapter, out, dtype="bf16")
    assert report.status == "passed", report.summary()
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert merged.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert merged.model.layers[0].self_attn.q_proj.weight.shape == (64, 64)


def test_too_little_disk_is_said_before_any_merging(lib_adapter, tmp_path, monkeypatch):
    """A full disk half-way through a merge costs minutes and leaves nothing: the export says so first,
    with the sizes, and writes nothing."""
    from studio.core.library import export_preflight

    params = export_preflight.parameter_count(resolve_base(lib_adapter))
    assert params > 0
    need = export_preflight.needed_bytes(params, "bfloat16", "q4_k_m")
    assert need > export_preflight.needed_bytes(params, "bfloat16", None)  # the GGUF and its f16 step count
    merge_only = export_preflight.needed_bytes(params, "bfloat16", None)
    monkeypatch.setattr(export_preflight, "_free_bytes", lambda _out: merge_only - 1)
    merged = []
    monkeypatch.setattr("studio.core.library.merge._export_merged", lambda *a, **k: merged.append(a))
    out = tmp_path / "no-room"
    with pytest.raises(StudioError, match=r"needs about .* GiB on the destination's disk") as err:
        export_model(lib_adapter, out, dtype="bf16")
    assert err.value.path == out and not out.exists() and not merged
